"""Hydra/OmegaConf glue: the config folder, safe resolvers and config helpers.

No ``eval`` resolver: derived values use small named resolvers (``sd.frames``) registered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The repository's ``configs/`` folder (entry scripts point Hydra at it).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def seconds_to_frames(seconds: Any, fps: Any) -> int:
    """``int(seconds * fps)`` — e.g. 0.5 s at 60 fps -> 30 frames (official: ``int(history_sec * fps)``)."""
    return int(float(seconds) * float(fps))


def register_resolvers() -> None:
    """Register the project's OmegaConf resolvers (idempotent)."""
    if not OmegaConf.has_resolver("sd.frames"):
        OmegaConf.register_new_resolver("sd.frames", seconds_to_frames)


register_resolvers()


def to_yaml(cfg: DictConfig, resolve: bool = True) -> str:
    return OmegaConf.to_yaml(cfg, resolve=resolve)


def save_config(cfg: DictConfig, path: str | Path, resolve: bool = True) -> None:
    """Write ``cfg`` as YAML atomically (resolved by default so the run folder is self-contained)."""
    from .utils.io import atomic_write

    text = OmegaConf.to_yaml(cfg, resolve=resolve)
    with atomic_write(path, "w") as fh:
        fh.write(text)


def load_config(path: str | Path) -> DictConfig:
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg
