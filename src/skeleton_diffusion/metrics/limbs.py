"""Limb-length realism: StretchMean, StretchRMSE, JitterMean, JitterRMSE (spec data_eval §6.7).

Each value is relative to the item's mean GT limb length ``mu_l = mean_t Lgt_{t,l}`` and reported **x100**
(percent of the GT limb length; the official code comment says "cm", but the numbers are dimensionless).
The limbs are ``skeleton.node_limbs`` (hip triangle included; finger limbs for MANO).

Reductions: ``"mean"`` -> ``[B]`` (one mean over the S*L values; the metric), ``"persample"`` -> ``[B, S]``
(mean over limbs, used to rank samples), ``"none"`` -> ``[B, S, L]``.

Zero reference lengths: a limb whose mean GT length is below :data:`MIN_REFERENCE_M` (a joint on its parent,
e.g. a helper joint of a mocap rig) has no relative error; it is left out of the means (``"none"``: NaN there).
An item without one valid limb gives NaN (flagged by the results writer), never ``inf``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.metrics._checks import check_limbs, check_pred

__all__ = ["limb_lengths", "stretch_mean", "stretch_rmse", "jitter_mean", "jitter_rmse", "limb_realism", "limb_length_variance"]

Reduction = Literal["mean", "persample", "none"]

#: Smallest GT limb length (metres) a relative limb error is computed for (0.1 mm below any real bone).
MIN_REFERENCE_M = 1e-4


def limb_lengths(x: torch.Tensor, limbs: Sequence[Sequence[int]] | torch.Tensor) -> torch.Tensor:
    """Limb lengths ``||x[..., a, :] - x[..., b, :]||_2`` for each node limb -> ``[..., L]`` metres."""
    lt = check_limbs(limbs, x.shape[-2]).to(x.device)
    return torch.linalg.vector_norm(x[..., lt[:, 0], :] - x[..., lt[:, 1], :], dim=-1)


def _reference(target: torch.Tensor, pred: torch.Tensor, limbs) -> torch.Tensor:
    """Mean GT limb length per item ``[B, 1, L]``; ``target`` ``[B, T', N, 3]`` (T' may differ from T, e.g. obs)."""
    if target.dim() != 4 or target.shape[0] != pred.shape[0] or target.shape[2:] != pred.shape[3:]:
        raise InputError(
            f"target must be [B, T', N, 3] with B={pred.shape[0]}, N={pred.shape[3]}; got {tuple(target.shape)}."
        )
    return limb_lengths(target, limbs).mean(dim=-2).unsqueeze(1)


def _reduce(value: torch.Tensor, mu: torch.Tensor, reduction: str, percent: bool) -> torch.Tensor:
    """``value / mu`` (``[B, S, L]`` / ``[B, 1, L]``) reduced over the limbs with a valid reference only."""
    if reduction not in ("mean", "persample", "none"):
        raise InputError(f"reduction must be 'mean', 'persample' or 'none'; got {reduction!r}.")
    valid = (mu > MIN_REFERENCE_M).expand_as(value)
    rel = value / mu.clamp_min(MIN_REFERENCE_M)
    rel = rel * 100.0 if percent else rel
    if reduction == "none":
        return torch.where(valid, rel, torch.full_like(rel, float("nan")))
    zero = torch.zeros_like(rel)
    if reduction == "mean":
        total = torch.where(valid, rel, zero).reshape(rel.shape[0], -1).sum(dim=-1)
        return total / valid.reshape(rel.shape[0], -1).sum(dim=-1)  # 0/0 = NaN: no valid limb
    return torch.where(valid, rel, zero).sum(dim=-1) / valid.sum(dim=-1)


def stretch_mean(pred, target, limbs, *, reduction: Reduction = "mean", percent: bool = True) -> torch.Tensor:
    """``StretchMean = 100 * mean_{s,l} | mean_t L_{s,t,l} - mu_l | / mu_l``.

    Args:
        pred: ``[B, S, T, N, 3]`` metres; target: ``[B, T', N, 3]`` metres (GT future; the observation
            works too as reference, as in the inference notebook's ranking).
    """
    check_pred(pred)
    mu = _reference(target, pred, limbs)  # [B,1,L]
    lengths = limb_lengths(pred, limbs)  # [B,S,T,L]
    return _reduce((lengths.mean(dim=-2) - mu).abs(), mu, reduction, percent)


def stretch_rmse(pred, target, limbs, *, reduction: Reduction = "mean", percent: bool = True) -> torch.Tensor:
    """``StretchRMSE = 100 * mean_{s,l} sqrt(mean_t (L_{s,t,l} - mu_l)^2) / mu_l`` (see :func:`stretch_mean`)."""
    check_pred(pred)
    mu = _reference(target, pred, limbs)
    lengths = limb_lengths(pred, limbs)
    rmse = (lengths - mu.unsqueeze(-2)).pow(2).mean(dim=-2).sqrt()
    return _reduce(rmse, mu, reduction, percent)


def _jitter(pred, limbs) -> torch.Tensor:
    lengths = limb_lengths(pred, limbs)  # [B,S,T,L]
    if lengths.shape[-2] < 2:
        raise InputError(f"jitter needs at least 2 frames; pred has T={lengths.shape[-2]}.")
    return (lengths[..., 1:, :] - lengths[..., :-1, :]).abs()  # [B,S,T-1,L]


def jitter_mean(pred, target, limbs, *, reduction: Reduction = "mean", percent: bool = True) -> torch.Tensor:
    """``JitterMean = 100 * mean_{s,l} [ (1/(T-1)) sum_t |L_{s,t+1,l} - L_{s,t,l}| ] / mu_l`` (GT jitter taken as 0)."""
    check_pred(pred)
    mu = _reference(target, pred, limbs)
    return _reduce(_jitter(pred, limbs).mean(dim=-2), mu, reduction, percent)


def jitter_rmse(pred, target, limbs, *, reduction: Reduction = "mean", percent: bool = True) -> torch.Tensor:
    """``JitterRMSE = 100 * mean_{s,l} sqrt((1/(T-1)) sum_t (L_{s,t+1,l} - L_{s,t,l})^2) / mu_l``."""
    check_pred(pred)
    mu = _reference(target, pred, limbs)
    return _reduce(_jitter(pred, limbs).pow(2).mean(dim=-2).sqrt(), mu, reduction, percent)


def limb_realism(
    pred, target, limbs, *, reduction: Reduction = "mean", percent: bool = True
) -> dict[str, torch.Tensor]:
    """All four body-realism metrics from one limb-length computation (what the evaluator uses).

    Returns ``{'StretchMean', 'StretchRMSE', 'JitterMean', 'JitterRMSE'}``, identical to the single functions.
    """
    check_pred(pred)
    mu = _reference(target, pred, limbs)  # [B,1,L]
    lengths = limb_lengths(pred, limbs)  # [B,S,T,L]
    if lengths.shape[-2] < 2:
        raise InputError(f"jitter needs at least 2 frames; pred has T={lengths.shape[-2]}.")
    jit = (lengths[..., 1:, :] - lengths[..., :-1, :]).abs()
    return {
        "StretchMean": _reduce((lengths.mean(dim=-2) - mu).abs(), mu, reduction, percent),
        "StretchRMSE": _reduce((lengths - mu.unsqueeze(-2)).pow(2).mean(dim=-2).sqrt(), mu, reduction, percent),
        "JitterMean": _reduce(jit.mean(dim=-2), mu, reduction, percent),
        "JitterRMSE": _reduce(jit.pow(2).mean(dim=-2).sqrt(), mu, reduction, percent),
    }


def limb_length_variance(pred: torch.Tensor, limbs, *, per_sample: bool = False) -> torch.Tensor:
    """Training-validation ``LLVar``: variance over time (unbiased, T-1) of each limb length, averaged over
    limbs and then samples -> ``[B]`` m^2 (``per_sample=True``: ``[B, S]``). Not an eval metric."""
    check_pred(pred)
    var = limb_lengths(pred, limbs).var(dim=-2).mean(dim=-1)  # [B,S]
    return var if per_sample else var.mean(dim=-1)
