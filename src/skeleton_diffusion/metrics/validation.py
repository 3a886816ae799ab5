"""Training-validation metrics: Ignite-style per-joint MPJPE curve and FDE (spec data_eval §6.12).

Unlike ADE/FDE of the benchmark (norm of the flattened pose), these are **per-joint** averages:

* best sample per item: ``argmin_s mean_t mean_j || pred[b,s,t,j] - y[b,t,j] ||`` (:func:`select_best_sample`);
* ``MPJPE(t) = mean_{b,j} || y[b,t,j] - yhat[b,t,j] ||`` (a curve over the horizon, metres);
* the logged table samples t = 0, 30, 60, ... (every 30 frames, at most 16 entries) and ``MPJPE_AVG`` is
  the mean of those entries;
* ``FDE = mean_{b,j} || y[b,T,j] - yhat[b,T,j] ||``.

:class:`MPJPEAccumulator` keeps running sums, so the result equals the official concatenate-then-average
over the whole set while using constant memory. :func:`ignite_metrics` wraps it as Ignite metrics.
"""

from __future__ import annotations

from typing import Callable

import torch

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.metrics._checks import check_pred, check_target

__all__ = [
    "select_best_sample",
    "mpjpe_per_frame",
    "mpjpe_table",
    "MPJPEAccumulator",
    "ignite_metrics",
    "TABLE_INTERVAL",
]

TABLE_INTERVAL = 30
TABLE_MAX_ENTRIES = 16


def select_best_sample(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best sample per item by per-joint mean error over time.

    Args:
        pred: ``[B, S, T, N, 3]``; target: ``[B, T, N, 3]`` (same units).
    Returns:
        ``(best [B, T, N, 3], idx [B])``.
    """
    check_pred(pred)
    check_target(target, pred)
    err = torch.linalg.vector_norm(pred - target.unsqueeze(1), dim=-1).mean(dim=-1).mean(dim=-1)  # [B,S]
    idx = err.argmin(dim=-1)
    return pred[torch.arange(pred.shape[0], device=pred.device), idx], idx


def mpjpe_per_frame(pred_best: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-item, per-frame joint-mean error ``mean_j ||y[b,t,j] - yhat[b,t,j]||`` -> ``[B, T]`` (same units).

    The validation curve ``MPJPE(t)`` is its mean over all items of the set (``.mean(0)`` for one batch;
    :class:`MPJPEAccumulator` across batches).
    """
    check_target(target)
    check_target(pred_best, name="pred_best")
    if pred_best.shape != target.shape:
        raise InputError(f"pred_best {tuple(pred_best.shape)} and target {tuple(target.shape)} differ in shape.")
    return torch.linalg.vector_norm(target - pred_best, dim=-1).mean(dim=-1)


def mpjpe_table(curve: torch.Tensor, interval: int = TABLE_INTERVAL) -> torch.Tensor:
    """Entries of the curve at t = 0, interval, 2*interval, ... (at most 16) -> ``[K]``."""
    steps = [i * interval for i in range(TABLE_MAX_ENTRIES) if i * interval < curve.shape[0]]
    return curve[steps]


class MPJPEAccumulator:
    """Running per-frame MPJPE / final-frame FDE over batches of best predictions (metres)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sum: torch.Tensor | None = None  # [T] float64 sum over items of the per-item joint-mean error
        self._fde_sum = 0.0
        self._count = 0

    def update(self, pred_best: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred_best``, ``target`` ``[B, T, N, 3]``."""
        check_target(target)
        check_target(pred_best, name="pred_best")
        per_item = mpjpe_per_frame(pred_best, target).double().sum(dim=0).cpu()
        self._sum = per_item if self._sum is None else self._sum + per_item
        self._fde_sum += float(
            torch.linalg.vector_norm(target[:, -1] - pred_best[:, -1], dim=-1).mean(dim=-1).double().sum()
        )
        self._count += target.shape[0]

    @property
    def count(self) -> int:
        return self._count

    def compute(self) -> dict[str, torch.Tensor | float]:
        """``{'MPJPE': curve [T], 'MPJPE_table': [K], 'MPJPE_AVG': float, 'FDE': float}`` (metres)."""
        if self._sum is None or self._count == 0:
            raise ValueError("MPJPEAccumulator.compute() called before any update().")
        curve = (self._sum / self._count).float()
        table = mpjpe_table(curve)
        return {
            "MPJPE": curve,
            "MPJPE_table": table,
            "MPJPE_AVG": float(table.mean()),
            "FDE": self._fde_sum / self._count,
        }


def ignite_metrics(
    output_transform: Callable = lambda out: out,
) -> dict[str, "object"]:
    """Ignite ``Metric`` objects ``{'MPJPE': curve-table, 'MPJPE_AVG': float, 'FDE': float}``.

    ``output_transform(engine_output) -> (pred_best [B,T,N,3], target [B,T,N,3])`` in metres.
    Attach each with ``metric.attach(engine, name)``.
    """
    from ignite.metrics import Metric

    class _Base(Metric):
        key = ""

        def reset(self) -> None:
            self._acc = MPJPEAccumulator()

        def update(self, output) -> None:
            pred_best, target = output[0], output[1]
            self._acc.update(pred_best.detach(), target.detach())

        def compute(self):
            res = self._acc.compute()
            return res["MPJPE_table"] if self.key == "MPJPE" else res[self.key]

    metrics = {}
    for key in ("MPJPE", "MPJPE_AVG", "FDE"):
        cls = type(f"Ignite{key}", (_Base,), {"key": key})
        metrics[key] = cls(output_transform=output_transform)
    return metrics
