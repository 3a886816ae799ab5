"""DiffPose lifters (``method=diffpose`` official, ``gcnpose`` its prior, ``diffpose_ours``): registry hooks.

Training and evaluation share :mod:`skeleton_diffusion.training.lifting` (one lifting trainer); the config's
``model.lifter._target_`` picks the network: the official one (:class:`skeleton_diffusion.methods.diffpose.trainable.OfficialDiffPose`,
``configs/method/diffpose.yaml``) or ours (:func:`skeleton_diffusion.nn.lifting.lifter.build_lifter`,
``configs/method/diffpose_ours.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from skeleton_diffusion.training.lifting import load_lifting_run
from skeleton_diffusion.training.lifting import main as _train_lifting


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """``python train_lifting.py method=...``: the shared lifting trainer."""
    return _train_lifting(cfg, overrides)


def load_run(path: str | Path, device: Any = "auto", **options: Any) -> Any:
    """A converted official DiffPose run (``meta.variant`` frame/video) -> the official lifter
    (:func:`skeleton_diffusion.methods.diffpose.checkpoint.load_run`); one of our lifting runs -> a
    :class:`~skeleton_diffusion.training.lifting.LiftingRun`. Both offer ``lift(keypoints_2d, num_samples)``."""
    from skeleton_diffusion.checkpoints.format import read_meta

    if read_meta(path).get("variant") in ("frame", "video"):
        from skeleton_diffusion.methods.diffpose.checkpoint import load_run as load_official

        return load_official(path, device=device, **options)
    return load_lifting_run(path, device, **options)
