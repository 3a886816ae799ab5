"""CMD, cumulative motion distribution (spec data_eval §6.8; BeLFusion's definition).

1. Per item: ``m_{b,t} = mean_s mean_j || p[b,s,t+1,j] - p[b,s,t,j] ||_2`` for t = 1..T-1 (:func:`motion_for_cmd`).
2. Per class c over the whole set: ``M^c_t = mean_{b in c} m_{b,t}``.
3. ``CMD = sum_c (|c| / B_total) * sum_{t=1}^{T-1} (T - t) * | M^c_t - ref_c |`` (:func:`resolve_cmd`),
   ``ref_c`` being the class's mean GT motion per frame (``mean_motion_test.txt``). Empty classes are skipped.

Units: metre-frames (the weights T - t count frames).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = ["motion_for_cmd", "cmd_single_class", "resolve_cmd", "class_mean_motion"]


def motion_for_cmd(pred: torch.Tensor) -> torch.Tensor:
    """Mean per-frame joint displacement of each item, averaged over samples and joints.

    Args:
        pred: ``[B, S, T, N, 3]`` metres (a GT ``[B, T, N, 3]`` can be passed as ``gt.unsqueeze(1)``).
    Returns:
        ``[B, T-1]`` metres per frame.
    """
    if pred.dim() != 5 or pred.shape[2] < 2:
        raise InputError(f"motion_for_cmd expects [B, S, T >= 2, N, 3]; got {tuple(pred.shape)}.")
    step = torch.linalg.vector_norm(pred[:, :, 1:] - pred[:, :, :-1], dim=-1)  # [B,S,T-1,N]
    return step.mean(dim=1).mean(dim=-1)


def cmd_single_class(motion_per_frame: np.ndarray | Sequence[float], reference: float) -> float:
    """``sum_{t=1}^{T-1} (T - t) |M_t - ref|`` for one class, with ``len(motion_per_frame) == T - 1``."""
    m = np.asarray(motion_per_frame, dtype=np.float64)
    weights = np.arange(m.shape[0], 0, -1, dtype=np.float64)  # T-1, ..., 1
    return float(np.sum(weights * np.abs(m - float(reference))))


def resolve_cmd(
    motion: np.ndarray | torch.Tensor,
    class_idx: np.ndarray | torch.Tensor | Sequence[int],
    mean_motion_per_class: Sequence[float] | np.ndarray,
) -> float:
    """Class-frequency-weighted CMD over a whole set.

    Args:
        motion: ``[n_items, T-1]`` from :func:`motion_for_cmd`, concatenated over all batches.
        class_idx: ``[n_items]`` integer class of each item (index into the dataset's ``idx_to_class``).
        mean_motion_per_class: ``[C]`` reference motion per class (metres/frame), aligned with ``idx_to_class``.
    Returns:
        CMD (float, metre-frames). Computed in float64.
    """
    motion = np.asarray(motion.detach().cpu() if isinstance(motion, torch.Tensor) else motion, dtype=np.float64)
    cls = np.asarray(class_idx.cpu() if isinstance(class_idx, torch.Tensor) else class_idx).astype(np.int64)
    refs = np.asarray(mean_motion_per_class, dtype=np.float64).reshape(-1)
    if motion.ndim != 2 or cls.shape != (motion.shape[0],):
        raise InputError(f"resolve_cmd expects motion [n, T-1] and class_idx [n]; got {motion.shape} and {cls.shape}.")
    if cls.size and (cls.min() < 0 or cls.max() >= refs.shape[0]):
        raise InputError(
            f"class index {int(cls.max())} out of range: mean_motion_per_class has {refs.shape[0]} classes."
        )
    total = 0.0
    n = cls.shape[0]
    for c in range(refs.shape[0]):
        mask = cls == c
        count = int(mask.sum())
        if count == 0:
            continue
        total += cmd_single_class(motion[mask].mean(axis=0), refs[c]) * (count / n)
    return total


def class_mean_motion(
    gt: torch.Tensor, class_idx: torch.Tensor | np.ndarray | Sequence[int], num_classes: int
) -> np.ndarray:
    """Reference motion per class from GT futures (as the official ``compute_mean_motions``).

    ``ref_c = mean_{b in c} mean_{t,j} || y[b,t+1,j] - y[b,t,j] ||_2``.

    Args:
        gt: ``[B, T, N, 3]`` metres (metric space).
        class_idx: ``[B]`` class of each item; num_classes: C.
    Returns:
        ``[C]`` float64 metres/frame (NaN for a class without items).
    """
    per_item = motion_for_cmd(gt.unsqueeze(1)).mean(dim=-1).detach().cpu().numpy().astype(np.float64)
    cls = np.asarray(class_idx.cpu() if isinstance(class_idx, torch.Tensor) else class_idx).astype(np.int64)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = cls == c
        if mask.any():
            out[c] = per_item[mask].mean()
    return out
