"""DiffHPE lifters (``method=diffhpe`` official, ``diffhpe_ours``): registry hooks.

Training and evaluation share :mod:`skeleton_diffusion.training.lifting` (one lifting trainer); the config's
``model.lifter._target_`` picks the network: the official one (:class:`skeleton_diffusion.methods.diffhpe.trainable.OfficialDiffHPE`,
``configs/method/diffhpe.yaml``) or ours (:func:`skeleton_diffusion.nn.lifting.lifter.build_lifter`,
``configs/method/diffhpe_ours.yaml``).
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
    """A converted official DiffHPE run (``meta.official_config``) -> the official lifter
    (:func:`skeleton_diffusion.methods.diffhpe.run.load_run`); one of our lifting runs -> a
    :class:`~skeleton_diffusion.training.lifting.LiftingRun`. Both offer ``lift(keypoints_2d, num_samples)``."""
    from skeleton_diffusion.checkpoints.format import read_meta

    if "official_config" in read_meta(path):
        from skeleton_diffusion.methods.diffhpe.run import load_run as load_official

        return load_official(path, device=device, **options)
    return load_lifting_run(path, device, **options)
