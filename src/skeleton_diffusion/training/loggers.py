"""TensorBoard and progress-bar helpers (spec §7.1), rank-0 only, quiet in tests.

(Named ``loggers`` rather than ``logging`` so it can never shadow the standard library module.)

Tags follow the official layout: per iteration ``training/<name>`` (loss, pred horiz, lr, extras); at every
``EPOCH_STARTED`` ``losses/lr``; every K iterations ``weights_norm/*`` and ``grads_norm/*``; validation
metrics under ``<tag>/<metric>`` with global step = trainer epoch.
"""

from __future__ import annotations

import numbers
import os
import sys
import time
from typing import IO, Any, Callable, Mapping, Sequence

import torch

from skeleton_diffusion.training.run_dir import is_rank_zero

__all__ = [
    "scalar_output_transform",
    "setup_tensorboard",
    "attach_validation_logging",
    "attach_progress_bar",
    "attach_running_average",
    "progress_mode",
    "EpochLogger",
    "attach_progress",
]


def scalar_output_transform(output: Any) -> dict[str, float]:
    """Step output -> ``{name: float}``: dict (numeric entries), tuple (first = loss) or a scalar loss."""
    if isinstance(output, Mapping):
        out = {}
        for k, v in output.items():
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                out[str(k)] = float(v.detach())
            elif isinstance(v, numbers.Number) and not isinstance(v, bool):
                out[str(k)] = float(v)
        return out
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, torch.Tensor):
        return {"loss": float(output.detach())}
    return {"loss": float(output)}


def setup_tensorboard(
    log_dir: str | os.PathLike,
    trainer: Any,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    model: torch.nn.Module | None = None,
    output_transform: Callable[[Any], Mapping[str, float]] = scalar_output_transform,
    tag: str = "training",
    log_every: int = 1,
    norms_every: int | None = 100,
    histograms_every_epochs: int | None = None,
) -> Any | None:
    """Create an Ignite ``TensorboardLogger`` on rank 0 and attach the standard training handlers.

    Returns the logger (call ``.close()`` at the end) or ``None`` on other ranks.
    """
    if not is_rank_zero():
        return None
    from ignite.engine import Events
    from ignite.handlers.tensorboard_logger import (
        GradsHistHandler,
        GradsScalarHandler,
        OptimizerParamsHandler,
        OutputHandler,
        TensorboardLogger,
        WeightsHistHandler,
        WeightsScalarHandler,
    )

    tb = TensorboardLogger(log_dir=str(log_dir))
    tb.attach(trainer, OutputHandler(tag=tag, output_transform=output_transform),
              Events.ITERATION_COMPLETED(every=log_every))
    if optimizer is not None:
        tb.attach(trainer, OptimizerParamsHandler(optimizer, param_name="lr", tag=tag),
                  Events.ITERATION_COMPLETED(every=log_every))
        tb.attach(trainer, OptimizerParamsHandler(optimizer, param_name="lr", tag="losses"), Events.EPOCH_STARTED)
    if model is not None and norms_every:
        tb.attach(trainer, WeightsScalarHandler(model, reduction=torch.norm), Events.ITERATION_COMPLETED(every=norms_every))
        tb.attach(trainer, GradsScalarHandler(model, reduction=torch.norm), Events.ITERATION_COMPLETED(every=norms_every))
    if model is not None and histograms_every_epochs:
        tb.attach(trainer, WeightsHistHandler(model), Events.EPOCH_COMPLETED(every=histograms_every_epochs))
        tb.attach(trainer, GradsHistHandler(model), Events.EPOCH_COMPLETED(every=histograms_every_epochs))
    return tb


def attach_validation_logging(tb_logger: Any | None, evaluator: Any, trainer: Any, tag: str = "validation",
                              metric_names: Sequence[str] | str = "all") -> None:
    """Log ``evaluator.state.metrics`` at its ``COMPLETED`` under ``<tag>/<metric>``, step = trainer epoch."""
    if tb_logger is None:
        return
    from ignite.engine import Events
    from ignite.handlers import global_step_from_engine
    from ignite.handlers.tensorboard_logger import OutputHandler

    tb_logger.attach(evaluator, OutputHandler(tag=tag, metric_names=metric_names,
                                              global_step_transform=global_step_from_engine(trainer)),
                     Events.COMPLETED)


def attach_running_average(trainer: Any, output_transform: Callable[[Any], Any] | None = None,
                           name: str = "Loss") -> None:
    """``RunningAverage`` of the loss as ``trainer.state.metrics[name]`` (official ``'Loss'``)."""
    from ignite.metrics import RunningAverage

    def _loss(out: Any) -> float:
        return scalar_output_transform(out)["loss"]

    RunningAverage(output_transform=output_transform or _loss).attach(trainer, name)


def attach_progress_bar(engine: Any, enabled: bool = True, metric_names: Sequence[str] | str | None = None,
                        output_transform: Callable[[Any], Any] | None = None, desc: str | None = None,
                        persist: bool = False) -> Any | None:
    """Attach Ignite's tqdm ``ProgressBar`` on rank 0 when ``enabled`` (use ``progress=False`` in tests)."""
    if not enabled or not is_rank_zero():
        return None
    from ignite.handlers import ProgressBar

    # (Ignite renders metric names only when ``desc`` is left at its default: pass it only when given)
    bar = ProgressBar(persist=persist, **({} if desc is None else {"desc": desc}))
    bar.attach(engine, metric_names=metric_names, output_transform=output_transform)
    from ignite.engine import Events

    engine.add_event_handler(Events.TERMINATE, lambda _: bar._close(engine))  # stopped mid-epoch: end the bar line
    return bar


def progress_mode(progress: bool, stream: IO[str] | None = None) -> str:
    """How training reports progress: ``'bar'`` (tqdm, redrawn in place) only when ``progress`` is true and
    ``stream`` (default ``sys.stdout``) is a terminal; otherwise ``'epochs'``: one plain line per epoch, which
    keeps SLURM / ``nohup`` / piped logs readable (no ``\\r`` redraws)."""
    stream = sys.stdout if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        tty = False
    return "bar" if progress and tty else "epochs"


def _format_duration(seconds: float) -> str:
    if not seconds == seconds or seconds == float("inf"):  # NaN / inf
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def validation_metrics(engine: Any) -> dict[str, float]:
    """The trainer's validation numbers (``state.metrics['val_*']``, written by the validation step)."""
    out = {}
    for k, v in (getattr(engine.state, "metrics", None) or {}).items():
        if str(k).startswith("val_"):
            try:
                out[str(k)] = float(v)
            except (TypeError, ValueError):
                continue
    return out


def new_validation_metrics(before: Mapping[str, float], engine: Any) -> dict[str, float]:
    """The validation numbers set or changed since ``before`` (i.e. by a validation run during this epoch)."""
    now = validation_metrics(engine)
    return {k: v for k, v in now.items() if k not in before or before[k] != v}


def format_validation(metrics: Mapping[str, float]) -> str:
    """``val_ADE 0.5123  val_FDE 0.6011`` (error metrics in metres, 4 decimals)."""
    return "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))


class ValidationPrinter:
    """With the tqdm bar: one line ``epoch 3 validation: val_ADE 0.5123 ...`` after each epoch that validated, so
    validation numbers reach the log (the bar shows only the loss)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._before: dict[str, float] = {}

    def attach(self, engine: Any) -> "ValidationPrinter":
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: setattr(self, "_before", validation_metrics(e)))
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._completed)
        return self

    def _completed(self, engine: Any) -> None:
        fresh = new_validation_metrics(self._before, engine)
        if fresh:
            stream = self.stream if self.stream is not None else sys.stdout
            stream.write(f"epoch {engine.state.epoch} validation: {format_validation(fresh)}\n")
            stream.flush()


class EpochLogger:
    """One line per epoch (rank 0): ``epoch 3/8  iter 150/400  loss 0.0731  lr 4.8e-03  9.6 it/s  ETA 0:00:26``.

    ``loss`` is the mean over the epoch's iterations (from ``output_transform(engine.state.output)['loss']``),
    ``lr`` the optimizer's first group, ``it/s`` the epoch's rate, ``ETA`` the remaining iterations of the run at
    the average rate since this run started. Written to ``stream`` (default: the current ``sys.stdout``)."""

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, stream: IO[str] | None = None,
                 output_transform: Callable[[Any], Mapping[str, float]] = scalar_output_transform,
                 prefix: str = "") -> None:
        self.optimizer = optimizer
        self.stream = stream
        self.output_transform = output_transform
        self.prefix = prefix
        self._t0 = self._t_epoch = 0.0
        self._it0 = self._it_epoch = 0
        self._sum = 0.0
        self._n = 0

    def _started(self, engine: Any) -> None:
        self._t0, self._it0 = time.perf_counter(), int(engine.state.iteration)

    def _epoch_started(self, engine: Any) -> None:
        self._t_epoch, self._it_epoch = time.perf_counter(), int(engine.state.iteration)
        self._sum, self._n = 0.0, 0
        self._val_before = validation_metrics(engine)

    def _iteration(self, engine: Any) -> None:
        try:
            loss = self.output_transform(engine.state.output).get("loss")
        except (TypeError, ValueError, KeyError):
            loss = None
        if loss is not None:
            self._sum += float(loss)
            self._n += 1

    def line(self, engine: Any) -> str:
        """The line for the epoch that just ended."""
        now = time.perf_counter()
        st = engine.state
        done = int(st.iteration) - self._it_epoch
        rate = done / max(now - self._t_epoch, 1e-9)
        total = int(st.max_epochs or 0) * int(st.epoch_length or 0)
        overall = (int(st.iteration) - self._it0) / max(now - self._t0, 1e-9)
        eta = (total - int(st.iteration)) / overall if overall > 0 else float("inf")
        parts = [f"{self.prefix}epoch {st.epoch}/{st.max_epochs}", f"iter {st.iteration}/{total}"]
        if self._n:
            parts.append(f"loss {self._sum / self._n:.4g}")
        if self.optimizer is not None:
            parts.append(f"lr {float(self.optimizer.param_groups[0]['lr']):.3g}")
        parts += [f"{rate:.3g} it/s", f"ETA {_format_duration(eta)}"]
        fresh = new_validation_metrics(getattr(self, "_val_before", {}), engine)
        if fresh:
            parts.append(format_validation(fresh))
        return "  ".join(parts)

    def _epoch_completed(self, engine: Any) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(self.line(engine) + "\n")
        stream.flush()

    def attach(self, engine: Any) -> "EpochLogger":
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        return self


def attach_progress(engine: Any, progress: bool, *, optimizer: torch.optim.Optimizer | None = None,
                    metric_names: Sequence[str] | str | None = None, stream: IO[str] | None = None) -> Any | None:
    """Attach the progress report :func:`progress_mode` picks (rank 0 only): the tqdm bar on a terminal when
    ``progress`` is true, else an :class:`EpochLogger`. Returns the handler (None on other ranks)."""
    if not is_rank_zero():
        return None
    if progress_mode(progress, stream) == "bar":
        ValidationPrinter(stream).attach(engine)
        return attach_progress_bar(engine, True, metric_names=metric_names)
    return EpochLogger(optimizer, stream=stream).attach(engine)


class LineProgress:
    """Iterate ``iterable`` writing one plain line per progress step to ``stream`` (for logs that are files or pipes,
    where a tqdm bar's ``\\r`` redraws pile up): ``evaluate: 12/40 (30%)  1.9 s/it  ETA 0:00:53``, about ``lines``
    lines in all (every step when there are fewer)."""

    def __init__(self, iterable: Any, *, desc: str = "progress", total: int | None = None, lines: int = 10,
                 stream: IO[str] | None = None) -> None:
        self.iterable = iterable
        self.desc = desc
        self.stream = stream
        try:
            self.total = int(total if total is not None else len(iterable))
        except TypeError:
            self.total = 0
        self.every = max(1, -(-self.total // max(1, lines))) if self.total else 1

    def __len__(self) -> int:
        return len(self.iterable)

    def __iter__(self) -> Any:
        t0 = time.perf_counter()
        n = 0
        for item in self.iterable:
            yield item
            n += 1
            if n % self.every == 0 or n == self.total:
                rate = (time.perf_counter() - t0) / n
                of = f"/{self.total} ({100 * n // self.total}%)" if self.total else ""
                eta = f"  ETA {_format_duration(rate * (self.total - n))}" if self.total else ""
                stream = self.stream if self.stream is not None else sys.stdout
                stream.write(f"{self.desc}: {n}{of}  {rate:.3g} s/it{eta}\n")
                stream.flush()

