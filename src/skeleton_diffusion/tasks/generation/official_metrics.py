"""The official HumanML3D metrics (MDM ``utils/metrics.py`` + ``eval/eval_humanml.py``), on evaluator embeddings.

Numbers are computed as the official code computes them: distances in the embeddings' own dtype (float32 from
the evaluator), ``np.argsort``'s default sort for the ranking, the mean in the input dtype and ``np.cov``
(float64) for the FID statistics. Inputs ``[N, D]`` are the rows the official loaders used: full batches of
``batch_size`` (32, ``drop_last=True``); rows past the last full batch are ignored here too.

* :func:`r_precision` / :func:`matching_score`: per batch of 32 the text x motion distance matrix; top-1/2/3 hits
  and the trace (MM-Dist), summed and divided by the rows used.
* :func:`generation_fid`: Frechet distance of Gaussian fits; officially the reference is a *second* pass over the
  GT loader (new random crops), not the GT rows of the R-precision pass.
* :func:`diversity` / :func:`multimodality`: pairs drawn with ``rng.choice(n, times, replace=False)`` twice;
  ``rng`` is ``np.random.RandomState(seed)`` to replay the official global legacy stream (GT first, then the
  generated set, then multimodality, all from ONE stream).
* :func:`replication_statistics`: mean and the "CInterval" ``1.96 * std(ddof=0) / sqrt(R)``.

Official defects (no published number depends on them; documented in ``docs/methods/t2m_evaluation.md``):
``calculate_frechet_distance`` calls ``scipy.linalg.sqrtm(..., disp=False)``, deprecated in SciPy 1.16 and removed
in 1.18 (the call then fails); :func:`frechet_distance` computes the same without it. The official
``euclidean_distance_matrix`` takes ``sqrt`` of a possibly slightly negative number (NaN); ``clip_negative=True``
(default) clips at 0, ``False`` keeps the official NaN.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from skeleton_diffusion.metrics.fid import frechet_distance  # the official arithmetic, one copy
from skeleton_diffusion.utils.errors import InputError

__all__ = [
    "euclidean_distance_matrix",
    "top_k_hits",
    "full_batches",
    "r_precision",
    "matching_score",
    "activation_statistics",
    "frechet_distance",
    "generation_fid",
    "diversity",
    "multimodality",
    "replication_statistics",
]


def _emb(name: str, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{name} must be embeddings [N, D]; got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise InputError(f"{name} contains NaN or inf.")
    return x


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray, *, clip_negative: bool = True) -> np.ndarray:
    """``a [N, D]``, ``b [M, D]`` -> ``[N, M]`` distances, as officially ``sqrt(-2 a b^T + |a|^2 + |b|^2)``."""
    a, b = _emb("a", a), _emb("b", b)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}.")
    sq = -2 * np.dot(a, b.T) + np.sum(np.square(a), axis=1, keepdims=True) + np.sum(np.square(b), axis=1)
    return np.sqrt(np.maximum(sq, 0) if clip_negative else sq)


def top_k_hits(dist_matrix: np.ndarray, top_k: int = 3) -> np.ndarray:
    """``dist [N, M]`` (query i's match is column i) -> bool ``[N, top_k]``: ``[i, k]`` is True when the match is
    among the k+1 nearest columns (official ``calculate_top_k`` on ``np.argsort(dist, axis=1)``)."""
    dist = np.asarray(dist_matrix)
    if dist.ndim != 2 or dist.shape[1] < dist.shape[0]:
        raise InputError(f"top_k_hits needs a distance matrix [N, M >= N]; got {dist.shape}.")
    order = np.argsort(dist, axis=1)
    k = min(int(top_k), dist.shape[1])
    hit = np.logical_or.accumulate(order[:, :k] == np.arange(dist.shape[0])[:, None], axis=1)
    if k < top_k:
        hit = np.concatenate([hit, np.repeat(hit[:, -1:], top_k - k, axis=1)], axis=1)
    return hit


def full_batches(n: int, batch_size: int = 32) -> list[slice]:
    """The full batches a ``drop_last=True`` loader yields from ``n`` rows (>= 1 needed)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}.")
    if n < batch_size:
        raise InputError(f"the official protocol needs at least one full batch of {batch_size} rows; got {n}.")
    return [slice(i, i + batch_size) for i in range(0, n - batch_size + 1, batch_size)]


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, batch_size: int = 32, top_k: int = 3) -> np.ndarray:
    """R-precision top-1..top_k ``[top_k]``: hits per full batch, summed, divided by the rows used."""
    text_emb, motion_emb = _emb("text_emb", text_emb), _emb("motion_emb", motion_emb)
    if text_emb.shape[0] != motion_emb.shape[0]:
        raise InputError(f"text and motion embeddings must pair up; got {text_emb.shape[0]} vs {motion_emb.shape[0]}.")
    batches = full_batches(text_emb.shape[0], batch_size)
    hits = sum(top_k_hits(euclidean_distance_matrix(text_emb[s], motion_emb[s]), top_k).sum(0) for s in batches)
    return np.asarray(hits) / (len(batches) * batch_size)


def matching_score(text_emb: np.ndarray, motion_emb: np.ndarray, batch_size: int = 32) -> float:
    """MM-Dist: trace of each full batch's text x motion distance matrix, summed, divided by the rows used."""
    text_emb, motion_emb = _emb("text_emb", text_emb), _emb("motion_emb", motion_emb)
    if text_emb.shape != motion_emb.shape:
        raise InputError(f"text and motion embeddings must pair up; got {text_emb.shape} vs {motion_emb.shape}.")
    batches = full_batches(text_emb.shape[0], batch_size)
    total = 0
    for s in batches:
        total += euclidean_distance_matrix(text_emb[s], motion_emb[s]).trace()
    return float(total / (len(batches) * batch_size))


def activation_statistics(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``emb [N, D]`` -> (mean ``[D]`` in the input dtype, covariance ``[D, D]`` = ``np.cov(rowvar=False)``)."""
    emb = _emb("emb", emb)
    if emb.shape[0] < 2:
        raise InputError(f"activation statistics need >= 2 rows; got {emb.shape[0]}.")
    return np.mean(emb, axis=0), np.cov(emb, rowvar=False)


def _used_rows(name: str, emb: np.ndarray, batch_size: int | None) -> np.ndarray:
    emb = _emb(name, emb)
    if batch_size is None:
        return emb
    return emb[: len(full_batches(emb.shape[0], batch_size)) * batch_size]


def generation_fid(gt_emb: np.ndarray, gen_emb: np.ndarray, batch_size: int | None = 32) -> float:
    """FID of ``gen_emb [N2, D]`` against the reference ``gt_emb [N1, D]`` (officially: the GT second pass).
    Rows past the last full batch of ``batch_size`` are dropped, as the official loaders do (``None``: all)."""
    return frechet_distance(*activation_statistics(_used_rows("gt_emb", gt_emb, batch_size)),
                            *activation_statistics(_used_rows("gen_emb", gen_emb, batch_size)))


def diversity(emb: np.ndarray, times: int, rng: Any, batch_size: int | None = 32) -> float:
    """Mean distance of ``times`` pairs ``(emb[first], emb[second])``, each index set drawn without replacement
    by ``rng.choice`` (``np.random.RandomState`` = the official legacy stream). Needs ``N > times``. Rows past
    the last full batch of ``batch_size`` are dropped, as the official loaders do (``None``: all rows)."""
    emb = _used_rows("emb", emb, batch_size)
    n = emb.shape[0]
    if n <= times:
        raise InputError(f"Diversity needs more than diversity_times={times} rows; got {n}.")
    first = rng.choice(n, times, replace=False)
    second = rng.choice(n, times, replace=False)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: np.ndarray, times: int, rng: Any) -> float:
    """``emb [C, R, D]`` (R generations per caption): mean distance of ``times`` repeat pairs drawn once (the same
    pairs for every caption) by ``rng.choice(R, times, replace=False)`` twice. Needs ``R > times``."""
    emb = np.asarray(emb)
    if emb.ndim != 3:
        raise InputError(f"MultiModality needs embeddings [captions, repeats, D]; got {emb.shape}.")
    if emb.shape[1] <= times:
        raise InputError(f"MultiModality needs more than mm_times={times} repeats per caption; got {emb.shape[1]}.")
    first = rng.choice(emb.shape[1], times, replace=False)
    second = rng.choice(emb.shape[1], times, replace=False)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


def replication_statistics(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``values [R, ...]`` -> (mean, 95% interval ``1.96 * std(ddof=0) / sqrt(R)``), the official
    ``get_metric_statistics`` (R = the number of values)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or v.shape[0] < 1:
        raise InputError(f"replication statistics need values [R, ...] with R >= 1; got shape {v.shape}.")
    return v.mean(axis=0), 1.96 * v.std(axis=0) / np.sqrt(v.shape[0])
