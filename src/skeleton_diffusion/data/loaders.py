"""Batch collation and seeded DataLoaders.

A batch is ``(obs [B, T_obs, N, 3], fut [B, T_pred, N, 3], extra)`` (input space, float32) with ``extra``:
``sample_idx, segment_idx, clip_idx, init, end, class_idx`` (LongTensor ``[B]``), ``metadata`` (tuple of two
lists of ``B`` strings), ``adj`` (``[B, N, N]``) and, when loaded, ``mm_gt`` (list of ``B`` tensors
``[n_i, T_pred, N, 3]``).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["collate_motion_batch", "seed_worker", "make_generator", "build_dataloader"]

_LONG_KEYS = ("sample_idx", "segment_idx", "clip_idx", "init", "end", "class_idx")


def collate_motion_batch(items: Sequence[tuple[torch.Tensor, torch.Tensor, dict]]):
    """Stack ``(obs, fut, extra)`` items; ``mm_gt`` stays a list (variable first dimension)."""
    if len(items) == 0:
        raise ValueError("cannot collate an empty batch")
    obs = torch.stack([it[0] for it in items])
    fut = torch.stack([it[1] for it in items])
    extras = [it[2] for it in items]
    out: dict[str, Any] = {}
    for k in _LONG_KEYS:
        if k in extras[0]:
            out[k] = torch.tensor([int(e[k]) for e in extras], dtype=torch.long)
    out["metadata"] = tuple([str(e["metadata"][j]) for e in extras] for j in range(len(extras[0]["metadata"])))
    if "adj" in extras[0]:
        out["adj"] = torch.stack([torch.as_tensor(e["adj"]) for e in extras])
    if "mm_gt" in extras[0]:
        out["mm_gt"] = [e["mm_gt"] for e in extras]
    for k in extras[0]:  # anything else a subclass adds: default collation
        if k not in out:
            out[k] = torch.utils.data.default_collate([e[k] for e in extras])
    return obs, fut, out


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed numpy and ``random`` from the worker's torch seed (set by the loader generator),
    so augmentation and temporal jitter (numpy global RNG) are reproducible and differ between workers."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def build_dataloader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool | None = None,
    drop_last: bool | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    collate_fn: Callable | None = None,
    worker_init_fn: Callable[[int], None] | None = seed_worker,
    **kwargs: Any,
) -> DataLoader:
    """DataLoader with the project's collate, a seeded generator and worker seeding.

    ``shuffle`` / ``drop_last`` / ``num_workers`` default to the values of the config block the dataset was
    built from (``dataset.loader_options``, set by :func:`build_dataset`), else ``False`` / ``False`` / ``0``.
    Unlike the official training script, ``drop_last`` is honoured. ``seed`` creates the shuffling generator
    (pass ``generator`` instead to control it yourself, e.g. reseeding it per epoch).
    """
    opts = getattr(dataset, "loader_options", {}) or {}
    shuffle = bool(opts.get("shuffle", False)) if shuffle is None else bool(shuffle)
    drop_last = bool(opts.get("drop_last", False)) if drop_last is None else bool(drop_last)
    num_workers = int(opts.get("num_workers", 0)) if num_workers is None else int(num_workers)
    if generator is None:
        generator = make_generator(seed)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        collate_fn=collate_fn or collate_motion_batch,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        **kwargs,
    )
