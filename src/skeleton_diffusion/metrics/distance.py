"""Sequence-distance metrics: APD, ADE, FDE, MMADE, MMFDE, APDE (spec data_eval §6.1-6.5, §6.9).

Conventions (BeLFusion / official SkeletonDiffusion):

* ``pred [B, S, T, N, 3]`` and ``target [B, T, N, 3]`` are in **metric space** (metres, per-frame
  hip-relative, root dropped).
* Per-frame errors are the L2 norm of the **flattened 3N pose vector**, not a per-joint mean (MPJPE);
  APD flattens the whole sequence (T*N*3 numbers).
* Every function returns one value per item, ``[B]`` (float, on ``pred.device``); the evaluator averages
  items over the whole set.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.metrics._checks import check_pred, check_target

__all__ = ["apd", "ade", "fde", "mmade", "mmfde", "apde_per_item", "per_sample_displacement"]


def apd(pred: torch.Tensor, *, exact: bool = True) -> torch.Tensor:
    """Average pairwise distance between the S samples of each item (diversity).

    ``APD_b = 2 / (S (S-1)) * sum_{s<s'} || vec(pred[b,s]) - vec(pred[b,s']) ||_2``, with ``vec`` flattening
    T*N*3 numbers. Units: metres. ``S == 1`` gives 0.

    Args:
        pred: ``[B, S, T, N, 3]`` metres.
        exact: ``True`` computes each difference explicitly (accurate to float32 rounding of the result);
            ``False`` runs the official ``torch.cdist`` default, which switches to the
            ``|x|^2 + |y|^2 - 2 x.y`` matrix-product path for S > 25. Guarantee of that path: each pairwise
            distance is within ~k·eps32·(|x|^2 + |y|^2) / (2d) of the exact one (cancellation; k ≈ 16 bounds
            what we measured), so it matches the official values to that bound, not bit for bit: the bits
            depend on the BLAS build, CPU and thread count (tests/metrics/test_metrics.py checks the bound).
    Returns:
        ``[B]`` metres.
    """
    check_pred(pred)
    b, s = pred.shape[:2]
    if s == 1:
        return torch.zeros(b, dtype=pred.dtype, device=pred.device)
    flat = pred.reshape(b, s, -1)
    mode = "donot_use_mm_for_euclid_dist" if exact else "use_mm_for_euclid_dist_if_necessary"
    dist = torch.cdist(flat, flat, compute_mode=mode)  # [B, S, S]
    iu = torch.triu_indices(s, s, offset=1, device=pred.device)
    return dist[:, iu[0], iu[1]].mean(dim=-1)


def per_sample_displacement(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame L2 error of the flattened pose, ``||pred[b,s,t] - target[b,t]||_2`` -> ``[B, S, T]`` metres."""
    check_pred(pred)
    check_target(target, pred)
    b, s, t = pred.shape[:3]
    diff = pred.reshape(b, s, t, -1) - target.reshape(b, 1, t, -1)
    return torch.linalg.vector_norm(diff, dim=-1)


def ade(pred: torch.Tensor, target: torch.Tensor, *, reduction: Literal["min", "none"] = "min") -> torch.Tensor:
    """Average displacement error, best of S.

    ``ADE_b = min_s (1/T) sum_t || pred[b,s,t] - target[b,t] ||_2`` (flattened 3N pose vector per frame).

    Args:
        pred: ``[B, S, T, N, 3]`` metres; target: ``[B, T, N, 3]`` metres.
        reduction: ``"min"`` -> ``[B]`` (the metric); ``"none"`` -> per-sample ``[B, S]``.
    Returns:
        metres.
    """
    per_sample = per_sample_displacement(pred, target).mean(dim=-1)
    return _reduce_samples(per_sample, reduction)


def fde(pred: torch.Tensor, target: torch.Tensor, *, reduction: Literal["min", "none"] = "min") -> torch.Tensor:
    """Final displacement error, best of S: ``FDE_b = min_s || pred[b,s,T] - target[b,T] ||_2`` (metres).

    ``reduction="none"`` returns the per-sample values ``[B, S]``.
    """
    check_pred(pred)
    check_target(target, pred)
    b, s = pred.shape[:2]
    diff = pred[:, :, -1].reshape(b, s, -1) - target[:, -1].reshape(b, 1, -1)
    return _reduce_samples(torch.linalg.vector_norm(diff, dim=-1), reduction)


def _reduce_samples(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "min":
        return per_sample.min(dim=-1).values
    if reduction == "none":
        return per_sample
    raise InputError(f"reduction must be 'min' or 'none'; got {reduction!r}.")


def _check_mm_gt(mm_gt: Sequence[torch.Tensor], pred: torch.Tensor) -> None:
    if len(mm_gt) != pred.shape[0]:
        raise InputError(f"mm_gt must hold one tensor per item: got {len(mm_gt)} for a batch of {pred.shape[0]}.")
    for i, g in enumerate(mm_gt):
        if g.dim() != 4 or g.shape[0] < 1 or g.shape[1:] != pred.shape[2:]:
            raise InputError(
                f"mm_gt[{i}] must be [n_i >= 1, T, N, 3] = [n, {pred.shape[2]}, {pred.shape[3]}, 3]; "
                f"got {tuple(g.shape)}."
            )


def _multimodal_min(
    pred: torch.Tensor, mm_gt: Sequence[torch.Tensor], final_only: bool, chunk_elems: int
) -> torch.Tensor:
    """Mean over each item's MMGT futures of the best-of-S (average or final) displacement -> ``[B]``.

    All MMGT futures of the batch are concatenated and processed in chunks of rows, so memory stays
    bounded by ``chunk_elems`` floats whatever the set sizes are.
    """
    check_pred(pred)
    _check_mm_gt(mm_gt, pred)
    b, s, t = pred.shape[:3]
    dev = pred.device
    counts = torch.tensor([g.shape[0] for g in mm_gt], device=dev)
    owner = torch.repeat_interleave(torch.arange(b, device=dev), counts)  # [M_total]
    futures = torch.cat([g.to(device=dev, dtype=pred.dtype) for g in mm_gt], dim=0)  # [M_total, T, N, 3]
    if final_only:
        p = pred[:, :, -1:].reshape(b, s, 1, -1)
        futures = futures[:, -1:]
    else:
        p = pred.reshape(b, s, t, -1)
    futures = futures.reshape(futures.shape[0], futures.shape[1], -1)  # [M_total, T', D]
    rows_per_chunk = max(1, chunk_elems // max(1, p[0].numel()))
    best = torch.empty(futures.shape[0], dtype=pred.dtype, device=dev)
    for start in range(0, futures.shape[0], rows_per_chunk):
        sl = slice(start, start + rows_per_chunk)
        d = torch.linalg.vector_norm(p[owner[sl]] - futures[sl].unsqueeze(1), dim=-1)  # [m, S, T']
        best[sl] = d.mean(dim=-1).min(dim=-1).values
    sums = torch.zeros(b, dtype=pred.dtype, device=dev).index_add_(0, owner, best)
    return sums / counts.to(pred.dtype)


def mmade(pred: torch.Tensor, mm_gt: Sequence[torch.Tensor], *, chunk_elems: int = 1 << 25) -> torch.Tensor:
    """Multimodal ADE: ``MMADE_b = (1/M_b) sum_m min_s (1/T) sum_t || pred[b,s,t] - y^(m)_t ||_2`` (metres).

    Args:
        pred: ``[B, S, T, N, 3]`` metres.
        mm_gt: list of B tensors ``[M_b, T, N, 3]`` metres: item b's multimodal futures (its own GT included).
        chunk_elems: memory bound (floats) of one chunk of the pairwise difference tensor.
    Returns:
        ``[B]`` metres.
    """
    return _multimodal_min(pred, mm_gt, final_only=False, chunk_elems=chunk_elems)


def mmfde(pred: torch.Tensor, mm_gt: Sequence[torch.Tensor], *, chunk_elems: int = 1 << 25) -> torch.Tensor:
    """Multimodal FDE: ``MMFDE_b = (1/M_b) sum_m min_s || pred[b,s,T] - y^(m)_T ||_2`` (metres); see :func:`mmade`."""
    return _multimodal_min(pred, mm_gt, final_only=True, chunk_elems=chunk_elems)


def apde_per_item(apd_values: torch.Tensor, mmapd_gt: torch.Tensor) -> torch.Tensor:
    """APD error per item: ``|APD_b - gtAPD_b|`` (metres), NaN where ``gtAPD_b == 0`` (no multimodal GT).

    The APDE metric is the mean over the non-NaN entries of the whole set (BeLFusion / official
    ``MetricStorerAPDE``). Computed in float64 like the official storer (float32 APD minus float64 CSV).

    Args:
        apd_values: ``[B]`` APD of the predictions (metres).
        mmapd_gt: ``[B]`` reference APD of each item's multimodal GT (``mmapd_GT.csv`` column ``gt_APD``).
    """
    apd_values = torch.as_tensor(apd_values)
    ref = torch.as_tensor(mmapd_gt, dtype=torch.float64, device=apd_values.device)
    if apd_values.shape != ref.shape or apd_values.dim() != 1:
        raise InputError(
            f"apde_per_item expects two [B] vectors; got {tuple(apd_values.shape)} and {tuple(ref.shape)}."
        )
    err = (apd_values.to(torch.float64) - ref).abs()
    return torch.where(ref == 0, torch.full_like(err, float("nan")), err)
