"""Safe readers for DiffHPE's files: checkpoints, the Hydra config YAML and the error-statistics ``.npy`` files.

* ``model.pth``: ``torch.save(model.state_dict())`` of ``LiftingDiffusionModel`` (no diffusion-embedding table);
* ``prt_mixste_*.pt``: a dict with ``model_pos`` (MixSTE weights) and training extras, possibly numpy RNG states;
* ``config.yaml`` (``conf/config.yaml`` or a run's ``.hydra/config.yaml``): read with ``yaml.safe_load``;
* ``err_var_path`` / ``err_ave_path``: ``[J, 3]`` per joint × coordinate variance / mean of the 2D-lifting error
  that shapes the anisotropic noise, read with ``np.load(allow_pickle=False)`` by the data layer
  (:func:`skeleton_diffusion.data.lifting_files.read_error_stats`, re-exported here).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skeleton_diffusion.data.lifting_files import read_error_stats
from skeleton_diffusion.utils.errors import (
    CheckpointError,
    ConfigError,
    FileAccessError,
)

__all__ = ["OFFICIAL_DIFFUSION_DEFAULTS", "read_error_stats", "read_official_config", "safe_load_official"]

# conf/config.yaml "diffusion" defaults of valeoai/diffhpe @ 444aef9 (the DiffHPE-Wrapper); DiffHPE-2D overrides
# conditioning: raw and p_dropout: 0.032 (conf/diffusion/diffhpe-2d.yaml).
OFFICIAL_DIFFUSION_DEFAULTS: dict[str, Any] = {
    "layers": 16, "channels": 64, "use_nonlocal": True, "diffusion_embedding_dim": 128, "beta_start": 0.0001,
    "beta_end": 0.5, "num_steps": 50, "schedule": "cosine", "arch": "gcn", "p_dropout": 0.2703806090969092,
    "conditioning": "pt_mixste", "cond_mix_mode": "concat", "cond_encode_3d": True, "cond_keep_pt_head": False,
    "cond_layers": 8, "cond_channels": 64, "cond_nheads": 8, "p_uncond": 0.0, "guidance": 0.0,
    "anisotropic": False, "err_var_path": "", "err_ave_path": "", "skeleton_time_regularization": 0.0,
    "skeleton_side_regularization": 0.0,
}


def _numpy_rng_globals() -> list[Any]:
    out: list[Any] = [np.ndarray, np.dtype]
    try:
        from numpy.core.multiarray import _reconstruct, scalar
        out += [_reconstruct, scalar]
    except ImportError:  # pragma: no cover - numpy 2 layout
        from numpy._core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
        out += [_reconstruct, scalar]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in ("UInt32DType", "Float64DType", "Int64DType") if hasattr(dtypes, n)]
    return out


def safe_load_official(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)``; retried with only numpy's array/RNG-state classes allow-listed.
    Anything else (arbitrary Python objects) is refused with :class:`CheckpointError`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileAccessError(f"cannot access '{path}': no such file (expected an official DiffHPE checkpoint)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as exc:
        raise CheckpointError(f"could not read '{path}': {exc} (corrupt or not a torch file?)") from exc
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"refusing to load '{path}': it holds Python objects beyond tensors, containers and "
                              f"numpy arrays ({first}); only weights_only-safe files are accepted") from exc


def read_official_config(path: str | Path) -> dict[str, Any]:
    """The ``diffusion`` (+ ``data.seq_len``/``data.joints``) settings of an official Hydra YAML, merged over
    :data:`OFFICIAL_DIFFUSION_DEFAULTS`. Accepts a full ``config.yaml`` or a bare ``conf/diffusion/*.yaml``."""
    import yaml

    path = Path(path).expanduser()
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FileAccessError(f"cannot access '{path}': {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"'{path}' is not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{path}' must hold a mapping (an official DiffHPE Hydra config), got {type(raw).__name__}")
    diff = raw.get("diffusion", raw)
    if not isinstance(diff, Mapping):
        raise ConfigError(f"'{path}': 'diffusion' must be a mapping")
    cfg = {**OFFICIAL_DIFFUSION_DEFAULTS, **{str(k): v for k, v in diff.items()}}
    data = raw.get("data")
    if isinstance(data, Mapping):
        for key in ("seq_len", "joints", "miss_type", "miss_rate", "noise_sigma", "keypoints"):
            if key in data:
                cfg[f"data_{key}" if key != "seq_len" else "seq_len"] = data[key]
    return cfg
