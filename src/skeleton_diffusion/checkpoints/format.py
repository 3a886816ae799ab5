"""Atomic, weights_only-safe checkpoints with exact resume (spec §7.2), as Ignite handlers.

A checkpoint is a dict ``{name: obj.state_dict() for name, obj in objects.items()} | {"meta": {...}}``.
Typical ``objects``: ``model``, ``optimizer``, ``lr_scheduler``, ``ema``, ``trainer`` (the Ignite engine),
``random_states`` (:class:`~skeleton_diffusion.training.rng.RNGState`), ``curriculum``, ``sampler``.
Everything must be tensors / numbers / strings / containers so the file loads with
``torch.load(weights_only=True)``; this is checked before writing (error names the offending key).

File names follow the official ones: ``checkpoint_{epoch}.pt`` (periodic),
``checkpoint_{epoch}_{score_name}={score}.pt`` (best-by-score), plus ``last.pt``: a hard link to (or copy
of) the newest file, so ``resume=<run dir>`` always finds the latest state.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import OmegaConf

from skeleton_diffusion.utils.errors import CheckpointError, SkeletonDiffusionError
from skeleton_diffusion.utils.io import atomic_torch_save, safe_torch_load

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "STAGES",
    "make_meta",
    "build_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "find_latest_checkpoint",
    "resolve_checkpoint",
    "run_config_path",
    "load_state_strict",
    "model_state",
    "list_checkpoints",
    "NonFiniteLossError",
    "read_meta",
]

CHECKPOINT_FORMAT_VERSION = 1
STAGES = ("autoencoder", "diffusion", "lifting")
LAST_NAME = "last.pt"
_log = logging.getLogger(__name__)

_SAFE_SCALARS = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


class NonFiniteLossError(SkeletonDiffusionError, FloatingPointError):
    """The training loss became NaN/inf; training stopped and no checkpoint was written for that state."""


# ----------------------------------------------------------------------------------------------- contents
def make_meta(stage: str, skeleton: str, **extra: Any) -> dict[str, Any]:
    """The ``meta`` entry: stage ('autoencoder'|'diffusion'), skeleton name, format version, + extras."""
    if stage not in STAGES:
        raise CheckpointError(f"checkpoint stage must be one of {STAGES}, got {stage!r}")
    meta: dict[str, Any] = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "stage": stage,
        "skeleton": str(getattr(skeleton, "name", skeleton)),
        "torch_version": str(torch.__version__),
    }
    meta.update(_skeleton_meta(skeleton))
    meta.update(extra)
    meta.setdefault("method", "skeleton_diffusion")  # the registry name of the method that wrote the file
    return meta


def _skeleton_meta(skeleton: Any) -> dict[str, Any]:
    """``joint_names`` (in order) and ``skeleton_def`` (see ``skeletons.io``) of a skeleton or known skeleton name,
    so a checkpoint carries its joint order; ``{}`` when the name is unknown here (H17)."""
    try:
        from skeleton_diffusion.skeletons.lookup import get_skeleton

        sk = get_skeleton(skeleton)
    except (ValueError, TypeError):
        return {}
    return {"joint_names": list(sk.joint_names), "skeleton_def": sk.to_dict()}


def _unwrap(obj: Any) -> Any:
    # DDP / DataParallel: save and load the inner module so files are interchangeable
    if isinstance(obj, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return obj.module
    return obj


def _check_safe(obj: Any, where: str) -> None:
    # exact types: subclasses (numpy.float64, TorchVersion, namedtuples) are refused by the safe unpickler
    if isinstance(obj, torch.Tensor) or type(obj) in _SAFE_SCALARS:
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in (str, int, float, bool, type(None)):
                raise CheckpointError(f"checkpoint key {where}[{key!r}] is a {type(key).__name__}; "
                                      "only str/int keys load with weights_only=True")
            _check_safe(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, set, frozenset):
        for i, value in enumerate(obj):
            _check_safe(value, f"{where}[{i}]")
        return
    raise CheckpointError(
        f"checkpoint entry {where} is a {type(obj).__module__}.{type(obj).__name__}, which "
        "torch.load(weights_only=True) refuses; convert it to a tensor / number / string / container"
    )


def build_checkpoint(objects: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{name: state_dict}`` for every object (+ ``meta``), validated as weights_only-safe."""
    if "meta" in objects:
        raise CheckpointError("'meta' is reserved for checkpoint metadata; rename that object")
    ckpt: dict[str, Any] = {}
    for name, obj in objects.items():
        obj = _unwrap(obj)
        if not hasattr(obj, "state_dict"):
            raise CheckpointError(f"object {name!r} ({type(obj).__name__}) has no state_dict()")
        ckpt[name] = obj.state_dict()
    if meta is not None:
        ckpt["meta"] = dict(meta)
    _check_safe(ckpt, "checkpoint")
    return ckpt


def save_checkpoint(path: str | os.PathLike, objects: Mapping[str, Any],
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Atomically write :func:`build_checkpoint` to ``path``; returns the path."""
    path = Path(path)
    atomic_torch_save(build_checkpoint(objects, meta), path)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    objects: Mapping[str, Any],
    *,
    expected_stage: str | None = None,
    expected_skeleton: str | None = None,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load ``path`` (weights_only) and restore every object's state; returns the checkpoint dict.

    ``random_states`` is restored last. With ``strict`` every object must be present in the file and
    modules must match key-for-key. ``expected_stage`` / ``expected_skeleton`` are checked against
    ``meta`` when the file has one (official files have none and pass).
    """
    path = Path(path)
    ckpt = safe_torch_load(path, map_location=map_location)
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(ckpt).__name__}, expected a dict of state dicts")
    meta = ckpt.get("meta")
    if isinstance(meta, Mapping):
        version = int(meta.get("format_version", 0))
        if version > CHECKPOINT_FORMAT_VERSION:
            raise CheckpointError(f"'{path}' has checkpoint format {version}; this code reads up to "
                                  f"{CHECKPOINT_FORMAT_VERSION}. Update skeleton_diffusion.")
        if expected_stage is not None and meta.get("stage") != expected_stage:
            raise CheckpointError(f"'{path}' is a {meta.get('stage')!r} checkpoint, expected {expected_stage!r}")
        if expected_skeleton is not None and meta.get("skeleton") != expected_skeleton:
            raise CheckpointError(f"'{path}' was trained on skeleton {meta.get('skeleton')!r}, "
                                  f"expected {expected_skeleton!r}")
    missing = [name for name in objects if name not in ckpt]
    if missing and strict:
        raise CheckpointError(f"'{path}' lacks {missing} (has {sorted(k for k in ckpt if k != 'meta')}); "
                              "pass strict=False to skip them")
    order = [n for n in objects if n != "random_states"] + (["random_states"] if "random_states" in objects else [])
    for name in order:
        if name not in ckpt:
            _log.warning("checkpoint '%s' has no %r; leaving it as initialised", path, name)
            continue
        obj = _unwrap(objects[name])
        try:
            if isinstance(obj, torch.nn.Module):
                obj.load_state_dict(ckpt[name], strict=strict)
            else:
                obj.load_state_dict(ckpt[name])
        except CheckpointError:
            raise
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"could not restore {name!r} from '{path}': {_state_dict_problem(exc)}. The "
                                  "checkpoint was written for another model/config (or is not a checkpoint of "
                                  "this run)") from exc
    return dict(ckpt)


def _state_dict_problem(exc: BaseException, max_items: int = 3) -> str:
    """One line from a ``load_state_dict`` error: torch puts the details (missing / unexpected keys, size
    mismatches) on the lines after a generic first line; keep the first ``max_items`` of them (H15a)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    details = [ln for ln in lines[1:] if not ln.startswith("Error(s) in loading")]
    if not details:
        return lines[0]
    more = f" (+{len(details) - max_items} more)" if len(details) > max_items else ""
    return "; ".join(d.rstrip(".") for d in details[:max_items]) + more


# ----------------------------------------------------------------------------------------------- discovery
_PERIODIC_RE = re.compile(r"^(?P<prefix>.+?)_(?P<step>\d+)\.pt$")
_SCORED_RE = re.compile(r"^(?P<prefix>.+?)_(?P<step>\d+)_(?P<name>[^=]+)=(?P<score>[-+0-9.eE]+|nan|inf|-inf)\.pt$")


def _checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir


def list_checkpoints(run_dir: str | os.PathLike, prefix: str | None = None) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``{prefix}_{step}[_{name}={score}].pt`` in ``run_dir[/checkpoints]``, sorted
    by step (``prefix=None``: any prefix, e.g. ``checkpoint_`` and ``latest_``)."""
    folder = _checkpoints_dir(Path(run_dir))
    found = []
    for p in folder.glob(f"{prefix or '*'}_*.pt"):
        m = _SCORED_RE.match(p.name) or _PERIODIC_RE.match(p.name)
        if m and (prefix is None or m.group("prefix") == prefix):
            found.append((int(m.group("step")), p))
    return sorted(found, key=lambda t: (t[0], t[1].name))


def find_latest_checkpoint(run_dir: str | os.PathLike, prefix: str | None = None) -> Path | None:
    """Newest checkpoint of a run: ``last.pt`` if present, else the highest step (official rule); or None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder '{run_dir}' does not exist")
    folder = _checkpoints_dir(run_dir)
    if (folder / LAST_NAME).is_file():
        return folder / LAST_NAME
    found = list_checkpoints(run_dir, prefix)
    if not found:
        return None
    best_step = found[-1][0]
    # at equal step prefer the plain periodic file (same state, simplest name)
    same = [p for s, p in found if s == best_step]
    plain = [p for p in same if _PERIODIC_RE.match(p.name) and not _SCORED_RE.match(p.name)]
    return (plain or same)[0]


def resolve_checkpoint(path: str | os.PathLike, *, what: str = "checkpoint_path",
                       hint: str = "give a checkpoint file or a run folder") -> Path:
    """A checkpoint file as given, or the newest checkpoint of a run folder (:func:`find_latest_checkpoint`).

    ``what`` names the option in the error message, ``hint`` says how to fix a missing path."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        ckpt = find_latest_checkpoint(p)
        if ckpt is None:
            raise CheckpointError(f"run folder '{p}' holds no checkpoint (looked in {p}/checkpoints)")
        return ckpt
    raise CheckpointError(f"{what}='{p}' does not exist ({hint})")


def run_config_path(checkpoint: str | os.PathLike) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to: ``<run>/checkpoints/x.pt`` -> ``<run>/config.yaml``
    (or one beside the file); None when there is none."""
    ckpt = Path(checkpoint)
    for cand in (ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"):
        if cand.is_file():
            return cand
    return None


def load_state_strict(module: torch.nn.Module, state: Mapping[str, Any], source: str | os.PathLike,
                      what: str = "weights") -> None:
    """``module.load_state_dict(state)`` (strict); a mismatch raises :class:`CheckpointError` naming the file."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{what} in '{source}' do not match its config: {str(exc).splitlines()[0]}") from exc


def model_state(ckpt: Mapping[str, Any], source: str | os.PathLike, use_ema: bool = False) -> Mapping[str, Any]:
    """The network weights of a training checkpoint: ``ckpt['model']`` (online), or with ``use_ema`` the EMA copy
    (``ckpt['ema']`` entries under ``ema_model.``); a checkpoint without EMA weights raises :class:`CheckpointError`."""
    if not use_ema:
        return ckpt["model"]
    if "ema" not in ckpt:
        raise CheckpointError(f"'{source}' has no EMA weights; use the online weights (use_ema=False)")
    return {k[len("ema_model."):]: v for k, v in ckpt["ema"].items() if k.startswith("ema_model.")}


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta`` dict of our checkpoint file or run folder (newest checkpoint); ``{}`` for files without one
    (official releases). Read with ``weights_only=True``."""
    ckpt = safe_torch_load(resolve_checkpoint(path))
    meta = ckpt.get("meta") if isinstance(ckpt, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else {}


def checkpoint_config(ckpt: dict, path: Path) -> Any:
    """The training config stored in a checkpoint's ``meta`` (ours), else the run folder's ``config.yaml``."""
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("config"), dict):
        from skeleton_diffusion.config.compat import upgrade_targets

        return upgrade_targets(OmegaConf.create(meta["config"]))
    cand = run_config_path(path)
    if cand is not None:
        from skeleton_diffusion.config import load_config  # H15a: a corrupt/empty config.yaml is named, not a traceback

        return load_config(cand, what="run config")
    raise CheckpointError(f"'{path}' carries no config and no config.yaml was found beside it; convert official "
                          "checkpoints with `python -m skeleton_diffusion.apps.convert`")
