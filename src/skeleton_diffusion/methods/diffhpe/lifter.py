"""DiffHPE as a lifter on our diffusion core (``method=diffhpe``): registry hooks.

Training and evaluation share :mod:`skeleton_diffusion.training.lifting` (one lifting trainer) and the network
builder :func:`skeleton_diffusion.nn.lifting.lifter.build_lifter`, selected by ``configs/method/<name>.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from skeleton_diffusion.training.lifting import LiftingRun, load_lifting_run
from skeleton_diffusion.training.lifting import main as _train_lifting


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """``python train_lifting.py method=...``: the shared lifting trainer."""
    return _train_lifting(cfg, overrides)


def load_run(path: str | Path, device: Any = "auto", **options: Any) -> LiftingRun:
    """One of our lifting runs -> a :class:`~skeleton_diffusion.training.lifting.LiftingRun` (``lift(...)``)."""
    return load_lifting_run(path, device, **options)
