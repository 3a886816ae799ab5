"""Configs written by earlier versions of the package: ``_target_`` paths of classes that have since moved.

Run folders and checkpoints store their full config (``config.yaml``, ``meta["config"]``), including the
``_target_`` of each object node. When a class moves, :func:`upgrade_targets` rewrites the old path to the new one,
so old runs, converted official checkpoints and the shipped demo model load unchanged.
"""

from __future__ import annotations

from typing import Any

#: old ``_target_`` -> current one (the package layout of December 2026 moved the networks into methods/)
LEGACY_TARGETS: dict[str, str] = {
    "skeleton_diffusion.nn.autoencoder.AutoEncoder": "skeleton_diffusion.methods.skeleton_diffusion.autoencoder.AutoEncoder",
    "skeleton_diffusion.nn.denoiser.Denoiser": "skeleton_diffusion.methods.skeleton_diffusion.denoiser.Denoiser",
    "skeleton_diffusion.nn.AutoEncoder": "skeleton_diffusion.methods.skeleton_diffusion.autoencoder.AutoEncoder",
    "skeleton_diffusion.nn.Denoiser": "skeleton_diffusion.methods.skeleton_diffusion.denoiser.Denoiser",
    "skeleton_diffusion.nn.lifting.build_lifter": "skeleton_diffusion.nn.lifting.lifter.build_lifter",
}


def upgrade_targets(cfg: Any) -> Any:
    """Rewrite legacy ``_target_`` values in place (a ``DictConfig``/``dict``, recursively); returns ``cfg``."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (dict, DictConfig)):
        for key in list(cfg.keys()):
            if isinstance(cfg, DictConfig) and OmegaConf.is_interpolation(cfg, key):
                continue
            value = cfg[key]
            if key == "_target_" and isinstance(value, str) and value in LEGACY_TARGETS:
                cfg[key] = LEGACY_TARGETS[value]
            elif isinstance(value, (dict, list, DictConfig, ListConfig)):
                upgrade_targets(value)
    elif isinstance(cfg, (list, ListConfig)):
        for item in cfg:
            upgrade_targets(item)
    return cfg
