"""MAE: mean error of the angles between consecutive limbs, best of S (spec data_eval §6.6, Appendix C)."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.metrics._checks import check_limbs, check_pred, check_target

__all__ = ["angle_pairs", "limb_vectors", "limb_pair_cosines", "mae"]


def angle_pairs(limb_angles_idx: Sequence[Sequence[int]]) -> torch.Tensor:
    """Consecutive pairs ``(c_i, c_{i+1})`` of every chain of limb indices -> LongTensor ``[P, 2]``.

    AMASS gives 19 pairs, H36M 12, FreeMan 14 (Appendix C).
    """
    pairs = [(int(c[i]), int(c[i + 1])) for c in limb_angles_idx for i in range(len(c) - 1)]
    if not pairs:
        raise InputError("limb_angles_idx holds no chain of length >= 2, so MAE has no angle to measure.")
    return torch.tensor(pairs, dtype=torch.long)


def limb_vectors(x: torch.Tensor, limbs: torch.Tensor) -> torch.Tensor:
    """Limb vectors from the lower to the higher node index: ``x[..., hi, :] - x[..., lo, :]`` -> ``[..., L, 3]``."""
    lo_hi = torch.sort(limbs, dim=-1).values.to(x.device)
    return x[..., lo_hi[:, 1], :] - x[..., lo_hi[:, 0], :]


def limb_pair_cosines(vectors: torch.Tensor, pairs: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``cos = <v_a, v_b> / max(|v_a| |v_b|, eps)`` for every pair -> ``[..., P]`` (not clamped)."""
    pairs = pairs.to(vectors.device)
    va, vb = vectors[..., pairs[:, 0], :], vectors[..., pairs[:, 1], :]
    den = torch.linalg.vector_norm(va, dim=-1) * torch.linalg.vector_norm(vb, dim=-1)
    return (va * vb).sum(dim=-1) / den.clamp_min(eps)


def mae(
    pred: torch.Tensor,
    target: torch.Tensor,
    limbs: Sequence[Sequence[int]] | torch.Tensor,
    limb_angles_idx: Sequence[Sequence[int]],
    *,
    reduction: str = "min",
) -> torch.Tensor:
    """Mean angle error in **degrees**, best of S.

    ``MAE_b = (180/pi) min_s (1/T) sum_t (1/P) sum_{(a,b)} | acos(cos^pred_{s,t,a,b}) - acos(cos^gt_{t,a,b}) |``
    where limb vectors point from the lower to the higher node index and cosines are clamped to [-1, 1].

    Args:
        pred: ``[B, S, T, N, 3]`` metres; target: ``[B, T, N, 3]`` metres.
        limbs: node-indexed limbs ``[L, 2]`` (``skeleton.node_limbs``: hip triangle first).
        limb_angles_idx: chains of indices into ``limbs`` (``skeleton.limb_angles_idx``).
        reduction: ``"min"`` -> ``[B]``; ``"none"`` -> per-sample ``[B, S]``.
    """
    check_pred(pred)
    check_target(target, pred)
    lt = check_limbs(limbs, pred.shape[-2])
    pairs = angle_pairs(limb_angles_idx)
    if int(pairs.max()) >= lt.shape[0]:
        raise InputError(f"limb_angles_idx refers to limb {int(pairs.max())} but only {lt.shape[0]} limbs are given.")
    ang_pred = torch.acos(limb_pair_cosines(limb_vectors(pred, lt), pairs).clamp(-1.0, 1.0))  # [B,S,T,P]
    ang_gt = torch.acos(limb_pair_cosines(limb_vectors(target, lt), pairs).clamp(-1.0, 1.0))  # [B,T,P]
    per_sample = (ang_pred - ang_gt.unsqueeze(1)).abs().mean(dim=-1).mean(dim=-1) * (180.0 / math.pi)
    if reduction == "min":
        return per_sample.min(dim=-1).values
    if reduction == "none":
        return per_sample
    raise InputError(f"reduction must be 'min' or 'none'; got {reduction!r}.")
