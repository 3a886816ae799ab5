"""What the demos' commands leave behind, in miniature, for tests that replace ``run_commands``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_fake_demo_outputs(out: Path, stems: tuple[str, ...] = ("pred_quick",),
                            ades: dict[str, float] | None = None) -> None:
    """Writes ``<out>/<stem>.npz`` predictions (2 samples × 6 frames, AMASS-22, 60 fps) for every stem, the ground
    truth future ``obs_gt_future.npy``, and for every ``{results folder: ADE}`` a results file (FDE = ADE + 0.2)."""
    from skeleton_diffusion.tasks.results import write_results

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    obs = rng.normal(scale=0.3, size=(4, 22, 3)).astype(np.float32)
    pred = (obs[-1] + np.linspace(0, 0.2, 6)[:, None, None] * rng.normal(size=(2, 1, 22, 3)))[None]
    for stem in stems:
        np.savez(out / f"{stem}.npz", pred=pred.astype(np.float32), obs=obs[None], fps=np.float32(60),
                 skeleton=np.array("amass"))
    np.save(out / "obs_gt_future.npy", pred[0, 0].astype(np.float32))
    for name, ade in (ades or {}).items():
        write_results(out / name, {"metrics": {"ADE": ade, "FDE": ade + 0.2}, "num_windows": 3, "num_samples": 10,
                                   "seed": 0}, dataset="synthetic", overwrite=True)
