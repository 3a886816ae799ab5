"""Hydra/OmegaConf glue: the config folder, safe resolvers and config helpers.

No ``eval`` resolver: derived values use small named resolvers (``sd.frames``) registered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The repository's ``configs/`` folder (entry scripts point Hydra at it).
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"


def seconds_to_frames(seconds: Any, fps: Any) -> int:
    """``int(seconds * fps)`` — e.g. 0.5 s at 60 fps -> 30 frames (official: ``int(history_sec * fps)``)."""
    return int(float(seconds) * float(fps))


def register_resolvers() -> None:
    """Register the project's OmegaConf resolvers (idempotent)."""
    if not OmegaConf.has_resolver("sd.frames"):
        OmegaConf.register_new_resolver("sd.frames", seconds_to_frames)


register_resolvers()


def register_dataset_configs() -> None:
    """Make datasets built under ``<dataset_main_path>/processed/*/hmp/`` usable as ``dataset=<name>``
    (see :mod:`skeleton_diffusion.config.datasets`); idempotent."""
    from skeleton_diffusion.config.datasets import register

    register()


register_dataset_configs()


def to_yaml(cfg: DictConfig, resolve: bool = True) -> str:
    return OmegaConf.to_yaml(cfg, resolve=resolve)


def save_config(cfg: DictConfig, path: str | Path, resolve: bool = True) -> None:
    """Write ``cfg`` as YAML atomically (resolved by default so the run folder is self-contained)."""
    from skeleton_diffusion.utils.io import atomic_write

    text = OmegaConf.to_yaml(cfg, resolve=resolve)
    with atomic_write(path, "w") as fh:
        fh.write(text)


def load_config(path: str | Path, what: str = "config") -> DictConfig:
    """Load a YAML config file (e.g. a run folder's ``config.yaml``) as a ``DictConfig``.

    Raises :class:`~skeleton_diffusion.utils.errors.ConfigError` naming the file when it is missing, empty, not
    valid YAML (with the line of the problem) or not a mapping; ``what`` says what the file is for.
    """
    from skeleton_diffusion.utils.errors import ConfigError

    path = Path(path)
    expected = f"expected the {what} as a YAML mapping (key: value), as written by the training run"
    if not path.is_file():
        raise ConfigError(f"{what} file not found: '{path}'; {expected}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"'{path}' is not valid YAML (not UTF-8 text: {exc}); {expected}") from exc
    if not text.strip():
        raise ConfigError(f"'{path}' is empty; {expected}. Restore it, or repeat the original overrides on the "
                          "command line")
    try:
        cfg = OmegaConf.create(text)
    except Exception as exc:  # noqa: BLE001 - yaml/omegaconf errors: one line with the position
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        if mark is not None and problem:  # yaml.MarkedYAMLError
            detail = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        else:
            detail = f"{type(exc).__name__}: " + " ".join(str(exc).split())[:300]
        raise ConfigError(f"'{path}' is not valid YAML ({detail}); {expected}") from exc
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"'{path}' holds a YAML {type(cfg).__name__.removesuffix('Config').lower()}, not a "
                          f"mapping; {expected}")
    from skeleton_diffusion.config.compat import upgrade_targets

    return upgrade_targets(cfg)


def compose_cli_config(config_name: str, overrides: "list[str] | tuple[str, ...]", keys_hint: str | None = None) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with command-line ``key=value`` overrides, for the non-Hydra-main
    CLIs (``predict``, ``edit``, the generation evaluator); a bad override raises
    :class:`~skeleton_diffusion.utils.errors.ConfigError` naming where the valid keys are (``keys_hint``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from skeleton_diffusion.utils.errors import ConfigError

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name, overrides=list(overrides))
    except HydraException as exc:
        hint = keys_hint or f"the keys of configs/{config_name}.yaml"
        raise ConfigError(f"bad argument: {exc}. Options are {hint} (key=value)") from exc

