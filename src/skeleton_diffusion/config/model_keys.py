"""Refuse unknown keys under ``model`` given on the command line (``+model.num_epoch=1``, Hydra's own suggestion for a
typo, used to be accepted and ignored), naming the nearest valid key.

A key is known when a model group or preset (``configs/model``, ``configs/method``, ``configs/debug``,
``configs/experiment``, the ``train_*.yaml`` files) sets it, or when the package reads it as an optional key
(``.get("<key>"`` / ``oc.select:model.<key>`` somewhere in its source).
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["known_model_keys", "check_model_overrides"]

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"
_OPTIONAL = re.compile(r"""\.get\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']|oc\.select:model\.([A-Za-z_][A-Za-z0-9_]*)""")


def _yaml_model_keys(path: Path, *, whole_file: bool) -> set[str]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return set()
    if not isinstance(data, dict):
        return set()
    keys = set(data) if whole_file else set()
    node = data.get("model")
    if isinstance(node, dict):
        keys |= set(node)
    for key in data:  # "model.num_epochs: 3" style (a preset with ``# @package _global_``)
        if isinstance(key, str) and key.startswith("model."):
            keys.add(key.split(".")[1])
    return {str(k) for k in keys}


@lru_cache(maxsize=1)
def known_model_keys() -> frozenset[str]:
    """Every top-level key under ``model`` that a config sets or the package reads (see the module docstring)."""
    keys: set[str] = set()
    for group in ("model", "method"):
        for path in (_CONFIG_DIR / group).glob("*.yaml"):
            keys |= _yaml_model_keys(path, whole_file=True)
    for folder in ("debug", "experiment", "condition", "noise", "text_encoder", "cov_matrix", "method_specs"):
        for path in (_CONFIG_DIR / folder).glob("**/*.yaml"):
            keys |= _yaml_model_keys(path, whole_file=False)
    for path in _CONFIG_DIR.glob("*.yaml"):
        keys |= _yaml_model_keys(path, whole_file=False)
    for path in _PACKAGE_DIR.rglob("*.py"):
        for a, b in _OPTIONAL.findall(path.read_text(errors="ignore")):
            keys.add(a or b)
    for path in _CONFIG_DIR.rglob("*.yaml"):
        for a, b in _OPTIONAL.findall(path.read_text(errors="ignore")):
            keys.add(a or b)
    return frozenset(keys)


def check_model_overrides(overrides: Iterable[str], model_cfg: Any = None) -> None:
    """Raise :class:`ConfigError` for the first override ``[+|++]model.<key>...=...`` whose ``<key>`` is unknown
    (:func:`known_model_keys` and the keys of ``model_cfg``, the composed ``model`` node), naming the nearest
    valid key."""
    valid = set(known_model_keys())
    if model_cfg is not None:
        valid |= {str(k) for k in model_cfg.keys()}
    for raw in overrides:
        key = raw.strip().lstrip("+~").split("=", 1)[0]
        if not key.startswith("model."):
            continue
        name = key.split(".")[1]
        if name in valid:
            continue
        near = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
        hint = f"did you mean model.{near[0]}? " if near else ""
        raise ConfigError(f"override {raw!r}: '{name}' is not a key of the model config, so it would be ignored; "
                          f"{hint}Valid keys are those of configs/model/<model>.yaml (print them with --cfg job).")
