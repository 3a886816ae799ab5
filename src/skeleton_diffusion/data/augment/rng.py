"""Random draws for augmentation and corruption with the official semantics: ``rng=None`` is numpy's global RNG
(official), else a ``np.random.RandomState`` or ``np.random.Generator``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

RNG = Any  # None | np.random.RandomState | np.random.Generator | the np.random module


def _rng(rng: RNG):
    return np.random if rng is None else rng


def random_uniform(rng: RNG = None, size: Any = None):
    r = _rng(rng)
    if isinstance(r, np.random.Generator):
        return r.random(size)
    return r.rand() if size is None else r.rand(*np.atleast_1d(size))


def random_int(low: int, high: int, rng: RNG = None) -> int:
    """Uniform integer in ``[low, high)`` (numpy ``randint`` semantics)."""
    r = _rng(rng)
    if isinstance(r, np.random.Generator):
        return int(r.integers(low, high))
    return int(r.randint(low, high))


def random_normal(shape: Sequence[int], rng: RNG = None) -> np.ndarray:
    r = _rng(rng)
    if isinstance(r, np.random.Generator):
        return r.standard_normal(tuple(shape))
    return r.randn(*shape)
