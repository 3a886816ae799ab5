"""Training entry: the method a config selects trains through its registry hook.

The root scripts are thin Hydra shims over :func:`train_from_config` (``train_diffusion.py``, ``train_lifting.py``;
``train_autoencoder.py`` runs SkeletonDiffusion's first stage through the ``train_autoencoder`` hook).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from skeleton_diffusion.config.cli import run_cli
from skeleton_diffusion.methods import registry


def train_from_config(cfg: DictConfig, hook: str = "train") -> Any:
    """Train the method ``cfg`` selects (``model.method``, ``model.lifter.method`` or the resumed run's), with user
    errors as one paragraph and exit status 2."""
    return run_cli(lambda c: registry.train(c, None, hook=hook), cfg)
