"""Reading official release files safely, for every method's converter.

* :func:`load_official_file`: ``torch.load(weights_only=True)``, retried with only the numpy classes that official
  RNG states need allow-listed (:data:`OFFICIAL_NUMPY_GLOBALS`); anything else is refused with the file named.
* :func:`read_flat_config`: an official (flat or nested) YAML run config, read with ``yaml.safe_load``.
* :func:`overlay_flat`: map official key/value pairs onto our nested config, key by key.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

_log = logging.getLogger("skeleton_diffusion.convert")


def _numpy_globals() -> list[Any]:
    """The numpy classes an official checkpoint's ``random_states`` needs (and nothing else)."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allowed: list[Any] = [
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),   # files written with numpy 1.x
        (_reconstruct, "numpy._core.multiarray._reconstruct"),  # files written with numpy 2.x
        np.ndarray,
        np.dtype,
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "UInt32DType"):
        allowed.append(dtypes.UInt32DType)
    return allowed


#: Names of the extra globals allowed when reading official files (for messages and docs).
OFFICIAL_NUMPY_GLOBALS = ("numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
                          "numpy.dtypes.UInt32DType")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "Unsupported global" in line or "GLOBAL" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_official_file(path: str | Path) -> dict[str, Any]:
    """Load an official (or our) checkpoint safely: ``weights_only=True``, retried with only the numpy RNG-state
    classes allow-listed. Raises :class:`CheckpointError` naming the file for anything else."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: '{path}'")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        if not isinstance(exc, pickle.UnpicklingError) and "weights_only" not in str(exc):
            raise CheckpointError(f"could not read '{path}': {_first_line(exc)} (corrupt or not a torch file?)") from exc
        _log.info("'%s' holds numpy objects (official RNG states); loading with weights_only=True and only these "
                  "numpy classes allow-listed: %s", path.name, ", ".join(OFFICIAL_NUMPY_GLOBALS))
        try:
            with torch.serialization.safe_globals(_numpy_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc2:  # noqa: BLE001
            raise CheckpointError(
                f"refusing to load '{path}': it contains Python objects beyond tensors, containers and the numpy "
                f"RNG-state classes ({_first_line(exc2)}). Only weights_only-safe files are accepted; this is not "
                "an official release checkpoint, or it was modified.") from exc2
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, expected a checkpoint dictionary")
    return dict(obj)



# ---------------------------------------------------------------------------------------------- configs
def read_flat_config(path: str | Path) -> dict[str, Any]:
    """An official ``config.yaml`` as one flat dict (plain YAML, interpolations kept as strings). Nested configs
    (ours, or a Hydra dump) are flattened like the official ``flat_hydra_config``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"could not read config '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config '{path}' is not a mapping")
    for group in ("model", "task", "dataset", "cov_matrix"):
        if isinstance(data.get(group), dict):
            sub = data.pop(group)
            data = {**data, **sub}
    return data


def is_literal(value: Any) -> bool:
    if isinstance(value, str):
        return "${" not in value
    if isinstance(value, dict):
        return True
    if isinstance(value, list):
        return all(is_literal(v) for v in value)
    return value is None or isinstance(value, (int, float, bool))


def overlay_flat(ours: DictConfig, flat: Mapping[str, Any], *, skip: Iterable[str] = (), prefix: str = "",
                 object_nodes: Iterable[str] = ("network", "diffusion", "optimizer")) -> list[str]:
    """Set every key of ``ours`` (recursively into sub-dicts) that ``flat`` also has to the official value.

    Values that are interpolations in the official file (``${eval:...}``) are ignored; our object nodes
    (``object_nodes``: by default ``network``, ``diffusion``, ``optimizer``) are never replaced. Returns the dotted keys that changed."""
    changed: list[str] = []
    skip = set(skip) | set(object_nodes)
    for key in list(ours.keys()):
        key = str(key)
        if key in skip or key not in flat or not is_literal(flat[key]):
            continue
        node = ours._get_node(key)
        val = flat[key]
        if isinstance(node, DictConfig):
            if isinstance(val, Mapping):
                changed += overlay_flat(node, val, prefix=f"{prefix}{key}.", object_nodes=object_nodes)
            continue
        old = None if OmegaConf.is_interpolation(ours, key) else ours[key]
        if OmegaConf.is_interpolation(ours, key) or old != val:
            ours[key] = val
            changed.append(f"{prefix}{key}")
    return changed


