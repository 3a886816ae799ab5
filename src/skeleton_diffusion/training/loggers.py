"""TensorBoard and progress-bar helpers (spec §7.1), rank-0 only, quiet in tests.

(Named ``loggers`` rather than ``logging`` so it can never shadow the standard library module.)

Tags follow the official layout: per iteration ``training/<name>`` (loss, pred horiz, lr, extras); at every
``EPOCH_STARTED`` ``losses/lr``; every K iterations ``weights_norm/*`` and ``grads_norm/*``; validation
metrics under ``<tag>/<metric>`` with global step = trainer epoch.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable, Mapping, Sequence

import torch

from .run_dir import is_rank_zero

__all__ = [
    "scalar_output_transform",
    "setup_tensorboard",
    "attach_validation_logging",
    "attach_progress_bar",
    "attach_running_average",
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
    return bar
