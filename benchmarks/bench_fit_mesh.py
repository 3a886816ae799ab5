"""Benchmark: fit SMPL to a 120-frame sequence (CPU; also the GPU when present) and print the time and error.

    python benchmarks/bench_fit_mesh.py [--model-dir DIR] [--frames 120] [--threads 2]

Without ``--model-dir`` the synthetic SMPL-format model (same sizes as SMPL: 6890 vertices, 24 joints) is used;
the target is a smooth random motion made by the model itself, so the error shows convergence.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "mesh"))
from _mesh_helpers import model_joints, random_params  # noqa: E402

from skeleton_diffusion.mesh import fit_smpl, load_body_model  # noqa: E402
from skeleton_diffusion.mesh.synthetic import write_synthetic_smpl  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", default=None)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = a.model_dir or write_synthetic_smpl(tmp, seed=0).parent.parent
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for dev in devices:
            model = load_body_model(model_dir, device=dev)
            target = model_joints(load_body_model(model_dir), random_params(a.frames, seed=1))
            if dev == "cuda":
                fit_smpl(target[:8], model)  # warm-up
                torch.cuda.synchronize()
            start = time.perf_counter()
            fit = fit_smpl(target, model)
            if dev == "cuda":
                torch.cuda.synchronize()
            total = time.perf_counter() - start
            print(f"{dev}: {a.frames} frames fitted in {total:.2f} s (threads={torch.get_num_threads()}), "
                  f"mean joint error {fit.mean_error_mm:.3f} mm, max frame {float(np.max(fit.per_frame_error_mm)):.3f} mm, "
                  f"vertices {tuple(fit.vertices.shape)}")


if __name__ == "__main__":
    main()
