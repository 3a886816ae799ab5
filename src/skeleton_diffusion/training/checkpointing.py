"""Checkpointing during training, as Ignite handlers: periodic / best-by-score files with retention, ``last.pt``,
and a guard that stops on a non-finite loss. The file format itself lives in :mod:`skeleton_diffusion.checkpoints.format`."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from skeleton_diffusion.checkpoints.format import (
    _PERIODIC_RE,
    _SCORED_RE,
    LAST_NAME,
    NonFiniteLossError,
    build_checkpoint,
    find_latest_checkpoint,
)
from skeleton_diffusion.utils.io import atomic_torch_save

__all__ = ["CheckpointSaver", "NonFiniteLossGuard", "NonFiniteLossError", "retention_from_config"]

_log = logging.getLogger(__name__)


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
    return f"{float(score):.4f}"


#: Score names of error metrics (lower is better): their savers rank by the negated error (Ignite's convention) but
#: name the file by the error itself (``val_mpjpe=0.0771``, not ``val_mpjpe=-0.0771`` as the official files).
_ERROR_SCORE = re.compile(r"(ade|fde|mpjpe|loss|err|dist)", re.IGNORECASE)


def _is_error_score(score_name: str | None) -> bool:
    return bool(score_name) and bool(_ERROR_SCORE.search(str(score_name)))


def _priority_from_name(score_name: str | None, value: float) -> float:
    """The ranking score of a file name's value: an error metric's file carries the error (>= 0; the ranking score
    is its negation) or, in files named the official way, the negated error itself (< 0)."""
    return -value if _is_error_score(score_name) and value > 0 else value


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
        score_name: name in the file name, e.g. ``'val_ade'`` (official: ``val_ade`` / ``val_mpjpe``). For an error
            metric (``ade``, ``mpjpe``, ``loss``, ... in the name) the file shows the error, ``val_ade=0.3000``.
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
                    value = _priority_from_name(self.score_name, float(scored.group("score")))
                    self.saved.append((value, int(scored.group("step")), p))
            elif not scored:
                m = _PERIODIC_RE.match(p.name)
                if m and m.group("prefix") == self.prefix:
                    self.saved.append((float(m.group("step")), int(m.group("step")), p))
        self.saved.sort(key=lambda t: (t[0], t[1]))  # existing files count as older than any new one

    def _filename(self, step: int, score: float | None) -> str:
        if score is None:
            return f"{self.prefix}_{step}.pt"
        shown = -score if _is_error_score(self.score_name) and score <= 0 else score
        return f"{self.prefix}_{step}_{self.score_name}={_format_score(shown + 0.0)}.pt"

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
