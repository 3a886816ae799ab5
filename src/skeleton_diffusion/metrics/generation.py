"""Generation metrics as in the text-to-motion / action-to-motion literature (T2M, MDM), as pure functions.

All inputs are *evaluator embeddings* (features of a motion / text encoder, see
:mod:`skeleton_diffusion.tasks.generation.evaluator_networks`), as ``numpy`` float arrays:

* **FID** between real and generated motion embeddings ``[N, D]`` (Gaussian fit, ``np.cov(rowvar=False)``).
* **R-precision top-k** and **MultiModal-Distance** (a.k.a. matching score): the N pairs (text_i, motion_i) are
  cut into consecutive batches of ``batch_size`` (32 officially; an incomplete last batch is dropped); in each
  batch the Euclidean distance matrix text x motion is ranked row-wise and pair i counts as retrieved at k if
  motion i is among the k nearest motions of text i. R-precision top-k = retrieved pairs / all pairs;
  MM-Dist = mean distance of the matched pairs.
* **Diversity**: mean distance of ``diversity_times`` random pairs of generated embeddings (300 text, 200 action).
* **MultiModality**: for each condition with R generations ``[C, R, D]``, mean distance of
  ``multimodality_times`` random pairs of generations of the same condition (10 text, 20 action).
* **Action accuracy**: top-1 accuracy of an action classifier on generated motions ``[N, num_classes]`` logits.

Randomness (which pairs) comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.metrics.fid import frechet_distance

__all__ = [
    "euclidean_distance_matrix",
    "top_k_hits",
    "r_precision",
    "matching_score",
    "generation_fid",
    "diversity",
    "multimodality",
    "action_accuracy",
    "GENERATION_METRIC_ORDER",
]

#: Result-table order of the generation metrics.
GENERATION_METRIC_ORDER: tuple[str, ...] = (
    "R_precision_top1", "R_precision_top2", "R_precision_top3", "FID", "MM_Dist", "Diversity", "MultiModality",
    "Accuracy",
)  # fmt: skip


def _as_2d(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"{name} must be embeddings [N, D]; got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise InputError(f"{name} contains NaN or inf.")
    return x


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances ``[N1, N2]`` between rows of ``a [N1, D]`` and ``b [N2, D]``."""
    a, b = _as_2d("a", a), _as_2d("b", b)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}.")
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def top_k_hits(dist: np.ndarray, top_k: int = 3) -> np.ndarray:
    """``dist [N, N]`` (row i = query i, its match is column i) -> bool ``[N, top_k]``: column k-1 is True when
    the match is among the k nearest columns (ties broken by a stable sort, i.e. by column index)."""
    dist = np.asarray(dist)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise InputError(f"top_k_hits needs a square distance matrix; got {dist.shape}.")
    order = np.argsort(dist, axis=1, kind="stable")[:, :top_k]
    hit = np.cumsum(order == np.arange(dist.shape[0])[:, None], axis=1) > 0
    if hit.shape[1] < top_k:  # fewer candidates than k: every match is found by rank N
        hit = np.concatenate([hit, np.repeat(hit[:, -1:], top_k - hit.shape[1], axis=1)], axis=1)
    return hit


def _batches(n: int, batch_size: int) -> list[slice]:
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}.")
    if n < batch_size:
        raise InputError(f"R-precision needs at least batch_size={batch_size} pairs; got {n}.")
    return [slice(i, i + batch_size) for i in range(0, n - batch_size + 1, batch_size)]


def r_precision(
    text_emb: np.ndarray, motion_emb: np.ndarray, *, batch_size: int = 32, top_k: int = 3
) -> np.ndarray:
    """R-precision top-1..top_k ``[top_k]`` of matched pairs ``text_emb[i] <-> motion_emb[i]`` (both ``[N, D]``),
    ranked inside consecutive batches of ``batch_size`` (last incomplete batch dropped)."""
    text_emb, motion_emb = _as_2d("text_emb", text_emb), _as_2d("motion_emb", motion_emb)
    if text_emb.shape[0] != motion_emb.shape[0]:
        raise InputError(f"text and motion embeddings must pair up; got {text_emb.shape[0]} vs {motion_emb.shape[0]}.")
    hits = np.zeros(top_k)
    count = 0
    for sl in _batches(text_emb.shape[0], batch_size):
        hits += top_k_hits(euclidean_distance_matrix(text_emb[sl], motion_emb[sl]), top_k).sum(0)
        count += batch_size
    return hits / count


def matching_score(text_emb: np.ndarray, motion_emb: np.ndarray, *, batch_size: int = 32) -> float:
    """MultiModal-Distance: mean Euclidean distance of matched pairs over the same batches as :func:`r_precision`."""
    text_emb, motion_emb = _as_2d("text_emb", text_emb), _as_2d("motion_emb", motion_emb)
    if text_emb.shape != motion_emb.shape:
        raise InputError(f"text and motion embeddings must pair up; got {text_emb.shape} vs {motion_emb.shape}.")
    used = _batches(text_emb.shape[0], batch_size)
    n = len(used) * batch_size
    return float(np.linalg.norm(text_emb[:n] - motion_emb[:n], axis=1).mean())


def generation_fid(real_emb: np.ndarray, gen_emb: np.ndarray) -> float:
    """FID between Gaussian fits (mean, ``np.cov(rowvar=False)``) of ``real_emb [N1, D]`` and ``gen_emb [N2, D]``."""
    real_emb, gen_emb = _as_2d("real_emb", real_emb), _as_2d("gen_emb", gen_emb)
    if real_emb.shape[0] < 2 or gen_emb.shape[0] < 2:
        raise InputError(f"FID needs >= 2 embeddings per set; got {real_emb.shape[0]} and {gen_emb.shape[0]}.")
    return frechet_distance(
        real_emb.mean(0), np.cov(real_emb, rowvar=False), gen_emb.mean(0), np.cov(gen_emb, rowvar=False)
    )


def diversity(emb: np.ndarray, diversity_times: int, rng: np.random.Generator) -> float:
    """Mean distance between ``diversity_times`` random pairs: two index sets drawn without replacement from
    ``emb [N, D]`` (N > diversity_times, as officially) and compared element-wise."""
    emb = _as_2d("emb", emb)
    n = emb.shape[0]
    if n <= diversity_times:
        raise InputError(f"Diversity needs more than diversity_times={diversity_times} embeddings; got {n}.")
    first = rng.choice(n, diversity_times, replace=False)
    second = rng.choice(n, diversity_times, replace=False)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: np.ndarray, multimodality_times: int, rng: np.random.Generator) -> float:
    """``emb [C, R, D]`` (R generations per condition) -> mean distance between ``multimodality_times`` random
    pairs of generations of the same condition (indices drawn without replacement, R > times)."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 3:
        raise InputError(f"MultiModality needs embeddings [conditions, repeats, D]; got {emb.shape}.")
    r = emb.shape[1]
    if r <= multimodality_times:
        raise InputError(f"MultiModality needs more than {multimodality_times} repeats per condition; got {r}.")
    first = rng.choice(r, multimodality_times, replace=False)
    second = rng.choice(r, multimodality_times, replace=False)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


def action_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``logits [N, num_classes]`` against integer ``labels [N]``."""
    logits = _as_2d("logits", logits)
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],):
        raise InputError(f"labels must be [N={logits.shape[0]}]; got {labels.shape}.")
    return float((logits.argmax(1) == labels).mean())
