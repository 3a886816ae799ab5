"""Training entry: the method a config selects trains through its registry hook.

The root scripts are thin Hydra shims over :func:`train_from_config` (``train_diffusion.py``, ``train_lifting.py``;
``train_autoencoder.py`` runs SkeletonDiffusion's first stage through the ``train_autoencoder`` hook).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from skeleton_diffusion.config.cli import run_cli
from skeleton_diffusion.config.model_keys import check_model_overrides
from skeleton_diffusion.methods import registry
from skeleton_diffusion.training.launch import cli_overrides
from skeleton_diffusion.training.run_dir import check_resume_stage


def train_from_config(cfg: DictConfig, hook: str = "train") -> Any:
    """Train the method ``cfg`` selects (``model.method``, ``model.lifter.method`` or the resumed run's), with user
    errors as one paragraph and exit status 2."""
    def _train(c: DictConfig) -> Any:
        check_resume_stage(c)  # before anything reads the wrong run's config (issue 28 item 5)
        check_model_overrides(cli_overrides())  # +model.num_epoch=1: refused, not ignored (issue 28 item 11)
        return registry.train(c, None, hook=hook)

    return run_cli(_train, cfg)
