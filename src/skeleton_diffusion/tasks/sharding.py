"""Sharded evaluation helpers (``ignite.distributed``): which windows a process evaluates, and the reductions that
turn every shard's sufficient statistics into the whole set's metrics (used by :func:`.evaluator.evaluate`).
"""

from __future__ import annotations

import numpy as np
import torch

from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.metrics.cmd import cmd_single_class

__all__ = ["shard_indices", "dist_world", "all_reduce_np", "cmd_class_sums", "cmd_from_class_sums"]


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Dataset indices evaluated by process ``rank`` of ``world_size``: a contiguous block (sizes differ by at
    most one; no padding, so every window is evaluated exactly once over all processes)."""
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is outside a world of {world_size} processes")
    base, extra = divmod(int(n), int(world_size))
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (1 if rank < extra else 0)))


def dist_world(distributed: bool) -> int:
    """Number of processes to reduce over: 1 for ``False``; the process group's size for ``True`` (an error
    without an initialised group)."""
    if not distributed:
        return 1
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ConfigError("evaluate(distributed=True) needs an initialised process group (eval.py "
                          "nproc_per_node=N, or torchrun)")
    return dist.get_world_size()


def all_reduce_np(values: np.ndarray, op: str = "SUM") -> np.ndarray:
    """``all_reduce`` (``SUM`` | ``MAX`` ...) of a float64 array over all processes (on ``idist.device()``)."""
    import ignite.distributed as idist

    t = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64)).to(idist.device())
    return idist.all_reduce(t, op=op).cpu().numpy()


def cmd_class_sums(motion: list[np.ndarray], classes: list[np.ndarray], n_classes: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per class: summed motion curve ``[C, T-1]`` and item count ``[C]`` (float64) of this process's items
    (``T-1`` agreed over all processes; a process without items contributes zeros)."""
    t1 = int(all_reduce_np(np.array([motion[0].shape[1] if motion else 0.0]), "MAX")[0])
    sums, counts = np.zeros((n_classes, t1)), np.zeros(n_classes)
    if motion:
        m, c = np.concatenate(motion).astype(np.float64), np.concatenate(classes)
        if c.size and (c.min() < 0 or c.max() >= n_classes):
            raise ConfigError(f"CMD: class index {int(c.max())} out of range: mean_motion_per_class has "
                              f"{n_classes} classes.")
        np.add.at(sums, c, m)
        np.add.at(counts, c, 1.0)
    return sums, counts


def cmd_from_class_sums(sums: np.ndarray, counts: np.ndarray, refs: np.ndarray) -> float:
    """CMD from per-class sufficient statistics (equals :func:`~.metrics.resolve_cmd` on the pooled items)."""
    n = counts.sum()
    return float(sum(cmd_single_class(sums[c] / counts[c], refs[c]) * (counts[c] / n)
                     for c in range(refs.shape[0]) if counts[c] > 0))
