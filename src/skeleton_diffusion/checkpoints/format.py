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

import contextlib
import datetime as _dt
import logging
import math
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

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
    "CheckpointSaver",
    "retention_from_config",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
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
    return meta


def _skeleton_meta(skeleton: Any) -> dict[str, Any]:
    """``joint_names`` (in order) and ``skeleton_def`` (see ``skeletons.io``) of a skeleton or known skeleton name,
    so a checkpoint carries its joint order; ``{}`` when the name is unknown here (H17)."""
    try:
        from skeleton_diffusion.skeletons.skeleton import get_skeleton

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


# ----------------------------------------------------------------------------------------------- handlers
def _link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` a hard link to ``src`` (copy when the filesystem has no hard links)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _format_score(score: float) -> str:
    return f"{float(score):.4f}"  # as Ignite's Checkpoint names the official files


class CheckpointSaver:
    """Ignite handler writing ``{prefix}_{step}.pt`` (or ``..._{score_name}={score}.pt``) atomically.

    Args:
        dirname: the run's ``checkpoints/`` folder (created, rank 0 only writes).
        objects: ``{name: obj}`` with ``state_dict()``; the single source of truth for save and resume.
        meta: the ``meta`` dict (:func:`make_meta`); ``epoch``/``iteration`` are added at each save.
        n_saved: ``keep_last``: how many of this saver's most recently written files to keep (``None``: all).
            For a scored saver the best ``n_saved`` by score (higher is better, as in Ignite: pass ``-ADE``).
        keep_every: periodic savers only: a file whose step is a multiple of ``keep_every`` is kept forever
            (in addition to the newest ``n_saved``); ``None``: no such files.
        score_fn: ``engine -> float``; makes this a best-by-score saver (file name carries the score).
        score_name: name in the file name, e.g. ``'val_ade'`` (official: ``val_ade`` / ``val_mpjpe``).
        global_step_fn: ``engine -> int`` for the file name; default the trainer's epoch.
        update_last: also point ``last.pt`` at each new file.

    Retention policy (periodic files): keep the ``n_saved`` most recently written files plus every file whose
    step is a multiple of ``keep_every`` (``n_saved=2, keep_every=3`` after epoch 7: 3, 6, 7); delete the
    others. Files already in ``dirname`` when the saver is created (a resumed run) count as written before any
    new one, in step order, and fall under the same rule,
    so a resume never deletes a file the policy keeps. ``last.pt`` (a hard link) and other savers' files
    (best-by-score, ``latest_*``) are never touched. A run stopped by :class:`NonFiniteLossGuard`
    (``engine.state.diverged``) is never saved.
    """

    def __init__(
        self,
        dirname: str | os.PathLike,
        objects: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        *,
        n_saved: int | None = 1,
        score_fn: Callable[[Any], float] | None = None,
        score_name: str | None = None,
        filename_prefix: str = "checkpoint",
        global_step_fn: Callable[[Any], int] | None = None,
        update_last: bool = True,
        keep_every: int | None = None,
    ) -> None:
        if n_saved is not None and n_saved < 1:
            raise ValueError(f"n_saved (keep_last) must be >= 1 or None, got {n_saved}")
        if keep_every is not None and (keep_every < 1 or score_fn is not None):
            raise ValueError(f"keep_every must be >= 1 or None and only for periodic savers, got {keep_every}")
        if (score_fn is None) != (score_name is None):
            raise ValueError("score_fn and score_name must be given together")
        self.dirname = Path(dirname)
        self.objects = objects
        self.meta = dict(meta or {})
        self.n_saved = n_saved
        self.keep_every = keep_every
        self.score_fn = score_fn
        self.score_name = score_name
        self.prefix = filename_prefix
        self.global_step_fn = global_step_fn or (lambda engine: int(engine.state.epoch))
        self.update_last = update_last
        self.saved: list[tuple[float, int, Path]] = []  # (priority, step, path)
        self.last_saved: Path | None = None
        if self._is_writer():
            self.dirname.mkdir(parents=True, exist_ok=True)
            self._scan_existing()

    @staticmethod
    def _is_writer() -> bool:
        try:
            import ignite.distributed as idist

            return idist.get_rank() == 0
        except Exception:  # noqa: BLE001 - no distributed context
            return True

    def _scan_existing(self) -> None:
        for p in sorted(self.dirname.glob(f"{self.prefix}_*.pt")):
            scored = _SCORED_RE.match(p.name)
            if self.score_name is not None:
                if scored and scored.group("prefix") == self.prefix and scored.group("name") == self.score_name:
                    self.saved.append((float(scored.group("score")), int(scored.group("step")), p))
            elif not scored:
                m = _PERIODIC_RE.match(p.name)
                if m and m.group("prefix") == self.prefix:
                    self.saved.append((float(m.group("step")), int(m.group("step")), p))
        self.saved.sort(key=lambda t: (t[0], t[1]))  # existing files count as older than any new one

    def _filename(self, step: int, score: float | None) -> str:
        if score is None:
            return f"{self.prefix}_{step}.pt"
        return f"{self.prefix}_{step}_{self.score_name}={_format_score(score)}.pt"

    def __call__(self, engine: Any) -> Path | None:
        if getattr(engine.state, "diverged", False):
            _log.warning("not saving a checkpoint: training diverged (non-finite loss)")
            return None
        step = int(self.global_step_fn(engine))
        score = None
        if self.score_fn is not None:
            score = float(self.score_fn(engine))
            if not math.isfinite(score):
                _log.warning("score %s=%s is not finite; no best checkpoint saved", self.score_name, score)
                return None
        priority = score if score is not None else float(step)
        if self.n_saved is not None and len(self.saved) >= self.n_saved and score is not None:
            worst = self.saved[0][0]
            if priority <= worst:
                return None
        meta = dict(self.meta)
        meta.update(epoch=int(engine.state.epoch), iteration=int(engine.state.iteration),
                    saved_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        if score is not None:
            meta[self.score_name] = score
        ckpt = build_checkpoint(self.objects, meta)  # every rank builds (collectives inside state_dict)
        if not self._is_writer():
            return None
        path = self.dirname / self._filename(step, score)
        atomic_torch_save(ckpt, path)
        self.saved = [t for t in self.saved if t[2] != path]
        self.saved.append((priority, step, path))
        if score is not None:  # best-M: drop the lowest score first; periodic: drop the oldest written first
            self.saved.sort(key=lambda t: (t[0], t[1]))
        if self.update_last:
            _link_or_copy(path, self.dirname / LAST_NAME)
        self._apply_retention()
        self.last_saved = path
        return path

    def _kept_forever(self, step: int) -> bool:
        return self.keep_every is not None and step % self.keep_every == 0

    def _apply_retention(self) -> None:
        """Delete the files the policy does not keep (oldest first; see the class docstring)."""
        if self.n_saved is None:
            return
        for t in self.saved[:max(0, len(self.saved) - self.n_saved)]:  # all but the newest n_saved ...
            if self._kept_forever(t[1]):  # ... except every keep_every-th
                continue
            self.saved.remove(t)
            with contextlib.suppress(FileNotFoundError):
                t[2].unlink()

    def save_last(self, engine: Any, **extra_meta: Any) -> Path | None:
        """Atomically write the current state to ``last.pt`` only (no periodic file, no retention), e.g. when
        training is interrupted mid-epoch; ``extra_meta`` is added to ``meta``. Every rank must call it (state
        dicts may hold collectives); returns the path on rank 0, None elsewhere or after divergence."""
        if getattr(engine.state, "diverged", False):
            return None
        meta = dict(self.meta)
        meta.update(epoch=int(engine.state.epoch), iteration=int(engine.state.iteration),
                    saved_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra_meta)
        ckpt = build_checkpoint(self.objects, meta)
        if not self._is_writer():
            return None
        path = self.dirname / LAST_NAME
        atomic_torch_save(ckpt, path)
        return path

    def attach(self, engine: Any, event: Any) -> None:
        """``engine.add_event_handler(event, self)``; e.g. ``Events.EPOCH_COMPLETED(every=50)``."""
        engine.add_event_handler(event, self)


def retention_from_config(cfg: Any, default_keep_last: int | None) -> tuple[int | None, int | None]:
    """``(keep_last, keep_every)`` for the periodic :class:`CheckpointSaver` of a training config.

    Read from ``cfg.checkpoints.keep_last`` (``null``: keep all) and ``cfg.checkpoints.keep_every`` (``null`` or
    0: none kept forever); a config without a ``checkpoints`` block (runs saved before it existed) falls back to
    ``cfg.model.keep_last_n`` and then ``default_keep_last``. Bad values raise :class:`ConfigError`."""
    from skeleton_diffusion.utils.errors import ConfigError

    block = cfg.get("checkpoints") if hasattr(cfg, "get") else None
    model = cfg.get("model") if hasattr(cfg, "get") else None
    fallback = model.get("keep_last_n", default_keep_last) if model is not None else default_keep_last
    keep_last = block.get("keep_last", fallback) if block is not None else fallback
    keep_every = block.get("keep_every", None) if block is not None else None
    out = []
    for key, value in (("keep_last", keep_last), ("keep_every", keep_every)):
        if value is None or (key == "keep_every" and value == 0):
            out.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"checkpoints.{key}={value!r} must be a positive integer or null"
                              + (" (null: keep every checkpoint)" if key == "keep_last" else ""))
        out.append(int(value))
    return out[0], out[1]


def _loss_value(output: Any) -> float:
    if isinstance(output, Mapping):
        output = output["loss"]
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, torch.Tensor):
        return float(output.detach().float().sum())  # NaN / inf anywhere propagates
    return float(output)


class NonFiniteLossGuard:
    """Stop training when the loss is NaN/inf (``ITERATION_COMPLETED``), keeping the last good checkpoint.

    ``engine.state.diverged`` is set so no :class:`CheckpointSaver` writes the broken state, then
    :class:`NonFiniteLossError` is raised (``mode='raise'``, default: the process exits non-zero with the
    message) or the engine is terminated (``mode='terminate'``).

    Args:
        output_transform: ``engine.state.output -> loss``; default takes ``output['loss']`` for dicts, the
            first element of tuples, else the output itself.
        checkpoint_dir: named in the message so users know where to resume from.
    """

    def __init__(self, output_transform: Callable[[Any], Any] | None = None, mode: str = "raise",
                 checkpoint_dir: str | os.PathLike | None = None) -> None:
        if mode not in ("raise", "terminate"):
            raise ValueError(f"mode must be 'raise' or 'terminate', got {mode!r}")
        self.output_transform = output_transform
        self.mode = mode
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)

    def __call__(self, engine: Any) -> None:
        out = engine.state.output
        value = _loss_value(self.output_transform(out) if self.output_transform else out)
        if math.isfinite(value):
            return
        engine.state.diverged = True
        where = ""
        if self.checkpoint_dir is not None:
            latest = find_latest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir.is_dir() else None
            where = (f" The last good checkpoint is '{latest}'." if latest else " No checkpoint was written yet.")
        msg = (f"Training stopped: the loss is {value} at epoch {engine.state.epoch}, iteration "
               f"{engine.state.iteration}.{where} Lower the learning rate or check the data, then resume.")
        _log.error(msg)
        if self.mode == "raise":
            raise NonFiniteLossError(msg)
        engine.terminate()

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
