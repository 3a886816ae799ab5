"""Seeding and RNG-state capture/restore for exact resume.

The official loop seeds everything with ``seed + epoch`` at every ``EPOCH_STARTED`` and reseeds the
DataLoader generator the same way; checkpoints hold the Python, numpy, torch-CPU, CUDA and DataLoader
generator states. Here the states are stored as plain tensors / ints / strings only, so a checkpoint loads
with ``torch.load(weights_only=True)``, and CUDA states are captured only when CUDA is available (the
official code hard-codes ``device='cuda'`` and crashes on CPU-only machines, spec §9.11).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, Mapping

import numpy as np
import torch

from skeleton_diffusion.utils.errors import CheckpointError

__all__ = [
    "seed_everything",
    "set_determinism",
    "capture_rng_state",
    "restore_rng_state",
    "RNGState",
]

_log = logging.getLogger(__name__)


def set_determinism(enabled: bool = True) -> None:
    """Turn deterministic algorithms on/off (official: always on; spec §7.1, §9.6 makes it an option).

    Sets ``torch.use_deterministic_algorithms`` (``warn_only`` so unsupported ops warn instead of failing),
    cuDNN ``deterministic`` / ``benchmark`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (needed by cuBLAS).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def seed_everything(seed: int, generator: torch.Generator | None = None) -> None:
    """Seed Python ``random``, numpy's global RNG, torch (CPU and every CUDA device) and ``generator``.

    This is the official ``set_seed`` minus the global determinism switch (see :func:`set_determinism`).
    ``PYTHONHASHSEED`` is exported for child processes (it cannot change the running interpreter's hashing).
    """
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds all CUDA devices (lazily when CUDA is not initialised)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if generator is not None:
        generator.manual_seed(seed)


def _python_state_to_tensor(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _python_state_from(obj: Any) -> tuple:
    if isinstance(obj, Mapping):
        return (int(obj["version"]), tuple(int(v) for v in obj["state"].tolist()), obj["gauss"])
    # official RandomStateDict layout: the raw random.getstate() tuple
    version, internal, gauss = obj
    return (int(version), tuple(int(v) for v in internal), gauss)


def _numpy_state_to_tensor(state: tuple) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _numpy_state_from(obj: Any) -> tuple:
    if isinstance(obj, Mapping):
        keys = obj["keys"]
        keys = keys.cpu().numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
        return (obj["name"], keys.astype(np.uint32), int(obj["pos"]), int(obj["has_gauss"]), float(obj["cached_gaussian"]))
    name, keys, pos, has_gauss, cached = obj  # official layout (np.random.get_state() tuple)
    return (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Snapshot all RNG states as weights_only-safe containers.

    Returns a dict with keys ``python``, ``numpy``, ``torch`` (uint8 tensor), ``cuda`` (list of uint8
    tensors, one per visible device; empty without CUDA) and ``generator`` (uint8 tensor or ``None``).
    """
    cuda_states: list[torch.Tensor] = []
    if torch.cuda.is_available():
        cuda_states = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return {
        "python": _python_state_to_tensor(random.getstate()),
        "numpy": _numpy_state_to_tensor(np.random.get_state()),
        "torch": torch.get_rng_state(),
        "cuda": cuda_states,
        "generator": generator.get_state() if generator is not None else None,
    }


def restore_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore a snapshot from :func:`capture_rng_state` (also accepts the official ``RandomStateDict`` keys).

    CUDA states are restored only when CUDA is available; a count mismatch restores the common prefix and
    warns. A saved generator state is loaded into ``generator`` when one is given.
    """
    try:
        py = state["python"] if "python" in state else state["random"]
        random.setstate(_python_state_from(py))
        np.random.set_state(_numpy_state_from(state["numpy"]))
        torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    except KeyError as exc:
        raise CheckpointError(
            f"RNG state is missing key {exc}; expected keys python/numpy/torch/cuda/generator "
            "(or the official random/numpy/torch/torch_cuda/generator)."
        ) from exc
    cuda = state.get("cuda", state.get("torch_cuda"))
    if isinstance(cuda, torch.Tensor):
        cuda = [cuda]
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        if n != len(cuda) or n != torch.cuda.device_count():
            _log.warning("restoring %d of %d saved CUDA RNG states (%d devices visible)", n, len(cuda),
                         torch.cuda.device_count())
        for i in range(n):
            torch.cuda.set_rng_state(cuda[i].cpu().to(torch.uint8), device=i)
    elif cuda and not torch.cuda.is_available():
        _log.info("checkpoint holds CUDA RNG states but CUDA is not available; they are ignored")
    gen_state = state.get("generator")
    if generator is not None and gen_state is not None:
        generator.set_state(gen_state.cpu().to(torch.uint8))


class RNGState:
    """Checkpointable object (``state_dict`` / ``load_state_dict``) for all RNG states + the loader generator.

    Put it in the checkpoint's ``objects`` as ``random_states`` (the official key).
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_state(self.generator)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        restore_rng_state(state, self.generator)
