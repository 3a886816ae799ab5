"""Human3.6M lifting dataset (train S1 S5 S6 S7 S8 / test S9 S11) from the VideoPose3D files or our processed H36M.

    python -m skeleton_diffusion.apps.create_h36m_lifting_dataset --data-3d datasets/raw/VideoPose3D/data_3d_h36m.npz --data-2d datasets/raw/VideoPose3D/data_2d_h36m_cpn_ft_h36m_dbb.npz
    python -m skeleton_diffusion.apps.create_h36m_lifting_dataset --from-processed datasets/processed/Human36M/hmp/data_3d_h36m.npz

The first form reads the 2D detections (``gt``, ``cpn_ft_h36m_dbb`` or ``detectron_ft_h36m``); the second projects
our processed 3D through the published cameras (2D = ``gt`` projections). ``joint_noise_std`` (the per-joint 2D
error, used by the ``diagonal`` noise option) is measured against the camera projections of the 3D when both
are available. Output: ``<out>/data_lifting_h36m_<detector>.npz`` (:mod:`skeleton_diffusion.data.windows.lifting`).
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.data.builders.videopose3d import TEST_SUBJECTS, TRAIN_SUBJECTS, lifting_sequences, load_videopose3d_2d, load_videopose3d_3d, project_world_sequences
from skeleton_diffusion.data.windows.lifting import lifting_file_path, save_lifting

__all__ = ["create_h36m_lifting", "main"]


def _detector_name(path: Path) -> str:
    stem = path.stem
    return stem[len("data_2d_h36m_"):] if stem.startswith("data_2d_h36m_") else stem


def create_h36m_lifting(out_dir: str | Path, *, data_3d: str | Path | None = None, data_2d: str | Path | None = None,
                        from_processed: str | Path | None = None) -> Path:
    """Write the lifting file; returns its path (see module docstring)."""
    subjects = TRAIN_SUBJECTS + TEST_SUBJECTS
    split_of = {s: "train" for s in TRAIN_SUBJECTS} | {s: "test" for s in TEST_SUBJECTS}
    skel = get_skeleton("h36m")
    if from_processed is not None:
        from skeleton_diffusion.data.processed import read_processed

        world = {s: {str(a): np.asarray(v, np.float32) for a, v in acts.items()}
                 for s, acts in read_processed(from_processed).items() if s in subjects}
        seqs = project_world_sequences(world)
        name, noise = "h36m_gt", None
    else:
        if data_3d is None or data_2d is None:
            raise ConfigError("give --data-3d and --data-2d (VideoPose3D files) or --from-processed")
        pos3d = load_videopose3d_3d(data_3d)
        pos2d, _ = load_videopose3d_2d(data_2d)
        present = [s for s in subjects if s in pos3d]
        seqs = lifting_sequences(pos3d, pos2d, present)
        ref = {(r["subject"], r["action"], r["camera"]): r["pose_2d"] for r in project_world_sequences(
            {s: pos3d[s] for s in present})}
        errs = [s["pose_2d"] - ref[(s["subject"], s["action"], s["camera"])] for s in seqs]
        noise = np.sqrt(np.mean(np.concatenate(errs) ** 2, axis=(0, 2))).astype(np.float32)
        name = "h36m_" + _detector_name(Path(data_2d))
    return save_lifting(lifting_file_path(out_dir, name), seqs, split_of=split_of, joint_names=skel.joint_names,
                        skeleton="h36m", fps=50.0, joint_noise_std=noise)


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="datasets/processed/Human36M/lifting")
    p.add_argument("--data-3d", default=None)
    p.add_argument("--data-2d", default=None)
    p.add_argument("--from-processed", default=None)
    a = p.parse_args(argv)
    path = run_cli(create_h36m_lifting, a.out, data_3d=a.data_3d, data_2d=a.data_2d, from_processed=a.from_processed)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
