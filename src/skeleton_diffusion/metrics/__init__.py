"""Evaluation metrics as pure, batched, device-agnostic torch functions (spec data_eval §6).

All inputs are in metric space (metres, per-frame hip-relative, root dropped): ``pred [B, S, T, N, 3]``,
``target [B, T, N, 3]``, ``mm_gt`` a list of B tensors ``[M_b, T, N, 3]``.

Per-item metrics (returned as ``[B]``; the benchmark value is their unweighted mean over the set):
ADE, FDE, MMADE, MMFDE, APD (metres), MAE (degrees), StretchMean, StretchRMSE, JitterMean, JitterRMSE (x100).
Set-level metrics: CMD (:func:`resolve_cmd`), APDE (mean of :func:`apde_per_item` over non-NaN items),
FID (:mod:`skeleton_diffusion.metrics.fid`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.metrics.angles import angle_pairs, limb_pair_cosines, limb_vectors, mae
from skeleton_diffusion.metrics.cmd import class_mean_motion, cmd_single_class, motion_for_cmd, resolve_cmd
from skeleton_diffusion.metrics.distance import ade, apd, apde_per_item, fde, mmade, mmfde, per_sample_displacement
from skeleton_diffusion.metrics.limbs import jitter_mean, jitter_rmse, limb_length_variance, limb_lengths, limb_realism, stretch_mean, stretch_rmse
from skeleton_diffusion.metrics.validation import MPJPEAccumulator, ignite_metrics, mpjpe_per_frame, mpjpe_table, select_best_sample

__all__ = [
    "METRIC_ORDER",
    "PER_ITEM_METRICS",
    "SET_METRICS",
    "STATS_MODES",
    "metrics_for_mode",
    "per_item_metrics",
    "apd",
    "ade",
    "fde",
    "mmade",
    "mmfde",
    "apde_per_item",
    "per_sample_displacement",
    "mae",
    "angle_pairs",
    "limb_vectors",
    "limb_pair_cosines",
    "limb_lengths",
    "stretch_mean",
    "stretch_rmse",
    "jitter_mean",
    "jitter_rmse",
    "limb_realism",
    "limb_length_variance",
    "motion_for_cmd",
    "cmd_single_class",
    "resolve_cmd",
    "class_mean_motion",
    "select_best_sample",
    "mpjpe_per_frame",
    "mpjpe_table",
    "MPJPEAccumulator",
    "ignite_metrics",
]

#: Official metric names, in the order used by result tables and files.
METRIC_ORDER: tuple[str, ...] = (
    "ADE", "FDE", "MMADE", "MMFDE", "APD", "APDE", "CMD", "MAE",
    "StretchMean", "StretchRMSE", "JitterMean", "JitterRMSE", "FID",
)  # fmt: skip
PER_ITEM_METRICS: tuple[str, ...] = (
    "ADE", "FDE", "MMADE", "MMFDE", "APD", "MAE", "StretchMean", "StretchRMSE", "JitterMean", "JitterRMSE",
)  # fmt: skip
SET_METRICS: tuple[str, ...] = ("APDE", "CMD", "FID")
_BODY = ("StretchMean", "StretchRMSE", "JitterMean", "JitterRMSE")

_DETERMINISTIC = ("ADE", "FDE", "MAE", "APD", "StretchMean", "JitterMean", "StretchRMSE", "JitterRMSE")
STATS_MODES: dict[str, tuple[str, ...]] = {
    # official get_stats_funcs: per-item metrics of each stats mode (CMD/APDE/FID are switched separately)
    "deterministic": _DETERMINISTIC,
    "probabilistic": ("ADE", "FDE", "MAE", "MMADE", "MMFDE") + _DETERMINISTIC[3:],
    "probabilistic_orig": ("APD", "ADE", "FDE", "MMADE", "MMFDE"),
}


def metrics_for_mode(stats_mode: str) -> tuple[str, ...]:
    """Per-item metric names computed in ``stats_mode`` (deterministic | probabilistic | probabilistic_orig)."""
    key = stats_mode.lower()
    if key not in STATS_MODES:
        raise ConfigError(f"stats_mode={stats_mode!r} is not one of {sorted(STATS_MODES)}.")
    return STATS_MODES[key]


def per_item_metrics(
    names: Sequence[str],
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    mm_gt: Sequence[torch.Tensor] | None = None,
    limbs: Sequence[Sequence[int]] | torch.Tensor | None = None,
    limb_angles_idx: Sequence[Sequence[int]] | None = None,
    exact_apd: bool = True,
) -> dict[str, torch.Tensor]:
    """Compute the requested per-item metrics for one batch -> ``{name: [B]}`` (metric-space inputs).

    ``limbs`` (``skeleton.node_limbs``) is needed for MAE and Stretch/Jitter, ``limb_angles_idx`` for MAE,
    ``mm_gt`` for MMADE/MMFDE.
    """
    unknown = [n for n in names if n not in PER_ITEM_METRICS]
    if unknown:
        raise ConfigError(f"unknown per-item metric(s) {unknown}; known: {', '.join(PER_ITEM_METRICS)}.")
    out: dict[str, torch.Tensor] = {}
    body = [n for n in names if n in _BODY]
    if body:
        if limbs is None:
            raise ConfigError(f"{body[0]} needs the skeleton's node limbs.")
        realism = limb_realism(pred, target, limbs)
        out.update({n: realism[n] for n in body})
    for name in names:
        if name in _BODY:
            continue
        if name in ("MMADE", "MMFDE") and mm_gt is None:
            raise ConfigError(f"{name} needs the multimodal GT (mm_gt); load it (stats_mode=probabilistic).")
        if name == "MAE" and limbs is None:
            raise ConfigError("MAE needs the skeleton's node limbs.")
        if name == "ADE":
            out[name] = ade(pred, target)
        elif name == "FDE":
            out[name] = fde(pred, target)
        elif name == "MMADE":
            out[name] = mmade(pred, mm_gt)
        elif name == "MMFDE":
            out[name] = mmfde(pred, mm_gt)
        elif name == "APD":
            out[name] = apd(pred, exact=exact_apd)
        elif name == "MAE":
            if limb_angles_idx is None:
                raise ConfigError("MAE needs the skeleton's limb_angles_idx.")
            out[name] = mae(pred, target, limbs, limb_angles_idx)
        else:
            raise ConfigError(f"unknown per-item metric {name!r}; known: {', '.join(PER_ITEM_METRICS)}.")
    return {n: out[n] for n in names}
