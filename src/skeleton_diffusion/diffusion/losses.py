"""Diffusion training losses: element-wise penalties and timestep weightings (spec §4.7–4.9).

Pure functions. The Mahalanobis whitening itself lives in the diffusion classes (it needs their buffers).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["LOSS_REDUCTION_TYPES", "LOSS_WEIGHTINGS", "elementwise_penalty", "loss_weight_schedule",
           "default_loss_weighting", "DiffusionLoss"]

LOSS_REDUCTION_TYPES = ("l1", "mse")
LOSS_WEIGHTINGS = ("alphas_cumprod", "snr", "ones", "snr_over_snr_plus_one")


def elementwise_penalty(residual: Tensor, kind: str) -> Tensor:
    """``|r|`` (``l1``) or ``r²`` (``mse``; ``l2`` is accepted as an alias), same shape as ``residual``."""
    if kind == "l1":
        return residual.abs()
    if kind in ("mse", "l2"):
        return residual.abs() ** 2
    raise ConfigError(f"loss_reduction_type must be one of {LOSS_REDUCTION_TYPES}, got {kind!r}")


def default_loss_weighting(objective: str, nonisotropic: bool) -> str:
    """Official per-timestep weighting: pred_x0 -> ᾱ_t (nonisotropic) or SNR (isotropic); pred_noise -> 1;
    pred_v -> SNR/(SNR+1)."""
    if objective == "pred_noise":
        return "ones"
    if objective == "pred_x0":
        return "alphas_cumprod" if nonisotropic else "snr"
    if objective == "pred_v":
        return "snr_over_snr_plus_one"
    raise ConfigError(f"diffusion_objective must be pred_x0, pred_noise or pred_v, got {objective!r}")


def loss_weight_schedule(name: str, alphas_cumprod: Tensor) -> Tensor:
    """Per-timestep loss weight ``[T]`` from float32 ``alphas_cumprod [T]``."""
    if name == "alphas_cumprod":
        return alphas_cumprod.clone()
    snr = alphas_cumprod / (1 - alphas_cumprod)
    if name == "snr":
        return snr
    if name == "ones":
        return torch.ones_like(alphas_cumprod)
    if name == "snr_over_snr_plus_one":
        return snr / (snr + 1)
    raise ConfigError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {name!r}")


class DiffusionLoss(NamedTuple):
    """Output of ``diffusion(x)`` (tuple-compatible with the official ``(loss, weight, model_out)``).

    * ``loss`` ``[B·k]``: unweighted per-sample loss (mean over nodes and features), sample-major rows.
    * ``weight`` ``[B]``: per-sample timestep weight of the original (un-repeated) samples.
    * ``model_out`` ``[B·k, N, D]``: the network output (x̂₀ for ``pred_x0``).
    """

    loss: Tensor
    weight: Tensor
    model_out: Tensor

    def weighted_mean(self) -> Tensor:
        """Scalar ``mean(loss · weight)`` (the official k = 1 training loss; each of k copies gets its weight)."""
        k = self.loss.shape[0] // self.weight.shape[0]
        weight = self.weight.repeat_interleave(k, dim=0) if k > 1 else self.weight
        return (self.loss * weight).mean()
