"""β schedules, γ schedules and the per-step eigen-variances of the nonisotropic process (spec §4.3–4.4).

Conventions: T timesteps indexed t = 0..T-1. β schedules are computed in float64 (as the official code) and
cast to float32 by the diffusion classes; everything derived from them is computed in float32 from the float32
buffers, like the official code, so that official buffers are reproduced to the last bits.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError

__all__ = [
    "BETA_SCHEDULES",
    "GAMMA_SCHEDULES",
    "COVARIANCE_TYPES",
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "exp_beta_schedule",
    "get_beta_schedule",
    "gamma_schedule",
    "compute_eigen_variances",
]

BETA_SCHEDULES = ("cosine", "linear", "exp")
GAMMA_SCHEDULES = ("cosine", "mono_decrease")
COVARIANCE_TYPES = ("skeleton-diffusion", "anisotropic", "isotropic")
MAX_BETA = 0.999


def linear_beta_schedule(timesteps: int, official: bool = False) -> Tensor:
    """DDPM linear β from 1e-4 to 0.02, rescaled by 1000/T -> float64 ``[T]``.

    The official code does not clip, so for T < 50 it yields β > 1 (up to 2.0 at T = 10), an invalid process.
    Here β is clipped to [0, 0.999] like the cosine schedule; ``official=True`` keeps the unclipped values.
    """
    scale = 1000 / timesteps
    betas = torch.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=torch.float64)
    return betas if official else betas.clamp(0, MAX_BETA)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> Tensor:
    """Nichol–Dhariwal cosine schedule over T+1 grid points, ᾱ normalised by its first value -> float64 ``[T]``."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return betas.clamp(0, MAX_BETA)


def exp_beta_schedule(timesteps: int, factor: float = 3.0, official: bool = False) -> Tensor:
    """β = exp(linspace(-factor, 0)) clipped to 0.999 -> float64 ``[T]``.

    The official version uses T+1 grid points and so silently yields T+1 steps; ``official=True`` keeps that.
    """
    steps = timesteps + 1 if official else timesteps
    return torch.exp(torch.linspace(-factor, 0, steps, dtype=torch.float64)).clamp(0, MAX_BETA)


def get_beta_schedule(name: str, timesteps: int, factor: float = 3.0, official: bool = False) -> Tensor:
    """β schedule by name (``cosine``, ``linear``, ``exp``) -> float64 ``[T]`` (``[T+1]`` for official exp)."""
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"diffusion_timesteps must be a positive int, got {timesteps!r}")
    if name == "cosine":
        return cosine_beta_schedule(timesteps)
    if name == "linear":
        return linear_beta_schedule(timesteps, official=official)
    if name == "exp":
        return exp_beta_schedule(timesteps, factor, official=official)
    raise ConfigError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {name!r}")


def gamma_schedule(name: str, betas: Tensor) -> Tensor:
    """γ_t (weight of Σ_N in the per-step covariance) for float32 ``betas [T]`` -> ``[T]``.

    ``cosine`` (official name): γ_t = 1 - α_t = β_t. ``mono_decrease``: γ_t = 1 - t/T.
    """
    alphas = 1.0 - betas
    if name == "cosine":
        return 1 - alphas
    if name == "mono_decrease":
        n = betas.shape[0]
        return 1 - torch.arange(0, n, device=betas.device).to(betas.dtype) / n
    raise ConfigError(f"gamma_scheduler must be one of {GAMMA_SCHEDULES}, got {name!r}")


def compute_eigen_variances(
    betas: Tensor,
    alphas_cumprod: Tensor,
    alphas_cumprod_prev: Tensor,
    Lambda_N: Tensor,
    covariance_type: Literal["skeleton-diffusion", "anisotropic", "isotropic"] | str = "skeleton-diffusion",
    gamma_scheduler: str = "cosine",
) -> tuple[Tensor, Tensor, Tensor]:
    """Eigen-variances ``(Λ_t, Λ̄_t, Λ̄_{t-1})``, each ``[T, N]``, in the eigenbasis U of Σ_N (spec §4.4).

    * ``skeleton-diffusion``: Λ_t = β_t + β_tγ_t(Λ_N - 1), Λ̄_t = (1-ᾱ_t) + γ̃_t(Λ_N - 1) with
      γ̃_t = ᾱ_t Σ_{s≤t} β_sγ_s/ᾱ_s; Λ̄_{-1} = 0.
    * ``anisotropic``: Λ_t = β_t Λ_N, Λ̄_t = (1-ᾱ_t) Λ_N, Λ̄_{t-1} = (1-ᾱ_{t-1}) Λ_N.
    * ``isotropic``: plain DDPM, Λ_t = β_t, Λ̄_t = 1-ᾱ_t, broadcast to N (Λ_N is ignored; the official code
      returned ``[T, 1]`` here and crashed later).

    Inputs are float32 ``[T]`` buffers and ``Lambda_N [N]``; arithmetic follows the official float32 order.
    """
    n = Lambda_N.shape[0]
    alphas = 1.0 - betas
    if covariance_type == "isotropic":
        ones = torch.ones(n, device=betas.device, dtype=betas.dtype)
        Lambda_t = (1 - alphas).unsqueeze(-1) * ones
        Lambda_bar_t = (1 - alphas_cumprod).unsqueeze(-1) * ones
        Lambda_bar_t_prev = torch.cat([torch.zeros_like(Lambda_bar_t[:1]), Lambda_bar_t[:-1]], dim=0)
    elif covariance_type == "anisotropic":
        Lambda_t = (1 - alphas.unsqueeze(-1)) * Lambda_N
        Lambda_bar_t = (1 - alphas_cumprod.unsqueeze(-1)) * Lambda_N
        Lambda_bar_t_prev = (1 - alphas_cumprod_prev.unsqueeze(-1)) * Lambda_N
    elif covariance_type == "skeleton-diffusion":
        gammas = gamma_schedule(gamma_scheduler, betas)
        Lambda_I = Lambda_N - 1
        gammas_bar = (1 - alphas) * gammas
        gammas_tilde = alphas_cumprod * torch.cumsum(gammas_bar / alphas_cumprod, dim=-1)
        Lambda_t = Lambda_I.unsqueeze(0) * gammas_bar.unsqueeze(-1) + (1 - alphas).unsqueeze(-1)
        Lambda_bar_t = Lambda_I.unsqueeze(0) * gammas_tilde.unsqueeze(-1) + (1 - alphas_cumprod.unsqueeze(-1))
        Lambda_bar_t_prev = torch.cat([torch.zeros_like(Lambda_bar_t[:1]), Lambda_bar_t[:-1]], dim=0)
    else:
        raise ConfigError(f"diffusion_covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if not bool((Lambda_bar_t > 0).all()):
        raise ConfigError(f"diffusion covariance {covariance_type!r} gives non-positive marginal variances "
                          f"(min Λ̄_t = {Lambda_bar_t.min().item():.3g}); is Lambda_N positive?")
    return Lambda_t, Lambda_bar_t, Lambda_bar_t_prev
