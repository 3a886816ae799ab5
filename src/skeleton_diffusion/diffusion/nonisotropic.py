"""Nonisotropic Gaussian diffusion: noise correlated across nodes by Σ_N = U diag(Λ_N) Uᵀ (spec §4.4–4.7).

Per-step covariance Σ_t = β_t[(1-γ_t) I + γ_t Σ_N]; marginal Σ̄_t = U diag(Λ̄_t) Uᵀ. Matrices act on the node
axis of ``x [B, N, D]``; the D feature channels are independent. Buffers carry the official names, so the
``model`` entry of an official checkpoint loads with ``load_state_dict``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError, InputError

from skeleton_diffusion.diffusion.base import GaussianDiffusionBase, extract
from skeleton_diffusion.diffusion.schedules import COVARIANCE_TYPES, compute_eigen_variances

__all__ = ["NonisotropicGaussianDiffusion"]


class NonisotropicGaussianDiffusion(GaussianDiffusionBase):
    """SkeletonDiffusion's diffusion.

    Args:
        Sigma_N, Lambda_N, U: ``[N, N]``, ``[N]``, ``[N, N]`` from :func:`get_cov_from_corr`.
        model: network called as ``model(x_t [B,N,D], t [B], x_self_cond, x_cond)``; must expose ``channels``.
        diffusion_covariance_type: ``skeleton-diffusion`` (default), ``anisotropic`` or ``isotropic``.
        gamma_scheduler: ``cosine`` (γ_t = β_t, default) or ``mono_decrease``.
        loss_reduction_type: ``l1`` (default) or ``mse`` on the whitened residual.
        loss_weighting: per-timestep weight returned by ``forward``: default ``alphas_cumprod`` for pred_x0
            (official), ``ones`` for pred_noise; ``snr`` gives the isotropic class's weighting.
        mahalanobis_loss: whiten the x̂₀ residual with Λ̄_t^{-1/2} Uᵀ (official, default True).
        Other keyword arguments: see :class:`GaussianDiffusionBase` (``diffusion_timesteps`` (alias
        ``timesteps``), ``diffusion_objective``, ``beta_schedule``, ``sampling_timesteps``, ...).
    """

    _nonisotropic = True

    def __init__(self, Sigma_N: Tensor, Lambda_N: Tensor, U: Tensor, model: nn.Module, *,
                 diffusion_covariance_type: str = "skeleton-diffusion", gamma_scheduler: str = "cosine",
                 **kwargs) -> None:
        super().__init__(model, **kwargs)
        if self.objective == "pred_v":
            raise ConfigError("diffusion_objective 'pred_v' is not implemented for the nonisotropic diffusion")
        if diffusion_covariance_type not in COVARIANCE_TYPES:
            raise ConfigError(f"diffusion_covariance_type must be one of {COVARIANCE_TYPES}, "
                              f"got {diffusion_covariance_type!r}")
        n = self.channels
        if tuple(Sigma_N.shape) != (n, n) or tuple(Lambda_N.shape) != (n,) or tuple(U.shape) != (n, n):
            raise InputError(f"Sigma_N/Lambda_N/U must be [{n},{n}]/[{n}]/[{n},{n}] for a model with "
                             f"channels={n}, got {tuple(Sigma_N.shape)}/{tuple(Lambda_N.shape)}/{tuple(U.shape)}")
        self.diffusion_covariance_type = diffusion_covariance_type
        self.gamma_scheduler = gamma_scheduler
        dev = self.betas.device
        Lambda_N = Lambda_N.to(device=dev, dtype=torch.float32)
        U = U.to(device=dev, dtype=torch.float32)
        self._register("Lambda_N", Lambda_N)
        self._register("Sigma_N", Sigma_N.to(dev))
        self._register("U", U)
        self._register("U_transposed", U.t())
        Ut = self.U_transposed.unsqueeze(0)
        U0 = self.U.unsqueeze(0)

        Lambda_t, Lambda_bar_t, Lambda_bar_t_prev = compute_eigen_variances(
            self.betas, self.alphas_cumprod, self.alphas_cumprod_prev, Lambda_N,
            diffusion_covariance_type, gamma_scheduler)
        alphas = 1.0 - self.betas
        # forward-process conversions ([T, N, N]); diag(v) @ M == v[:, None] * M, M @ diag(v) == M * v[None]
        inv_sqrt_lb = 1 / torch.sqrt(Lambda_bar_t)
        self._register("inv_sqrt_Lambda_bar_mmUt", inv_sqrt_lb.unsqueeze(-1) * Ut)
        self._register("inv_sqrt_Lambda_bar_sqrt_alphas_cumprod_mmUt",
                       ((1 / torch.sqrt(Lambda_bar_t)) * self.sqrt_alphas_cumprod.unsqueeze(-1)).unsqueeze(-1) * Ut)
        self._register("Umm_sqrt_Lambda_bar_t", U0 * torch.sqrt(Lambda_bar_t).unsqueeze(-2))
        self._register("Umm_sqrt_Lambda_bar_t_sqrt_recip_alphas_cumprod",
                       U0 * torch.sqrt(Lambda_bar_t / self.alphas_cumprod.unsqueeze(-1)).unsqueeze(-2))
        # posterior q(x_{t-1} | x_t, x_0)
        Lambda_post = Lambda_t * Lambda_bar_t_prev * (1 / Lambda_bar_t)
        self._register("Lambda_posterior", Lambda_post)
        self._register("Lambda_posterior_log_variance_clipped", torch.log(Lambda_post.clamp(min=1e-20)))
        sqrt_ac_prev = torch.sqrt(self.alphas_cumprod_prev)
        self._register("posterior_mean_coef1_x0", sqrt_ac_prev[:, None, None]
                       * (U0 @ torch.diag_embed((1 / Lambda_bar_t) * Lambda_t) @ Ut))
        self._register("posterior_mean_coef2_xt", torch.sqrt(alphas)[:, None, None]
                       * (U0 @ torch.diag_embed((1 / Lambda_bar_t) * Lambda_bar_t_prev) @ Ut))
        # loss whitening
        self._register("mahalanobis_S_sqrt_recip", torch.sqrt(1.0 / Lambda_bar_t).unsqueeze(-1) * Ut)
        # not in official checkpoints (so non-persistent): needed by pred_noise (missing officially)
        self._register("sqrt_recip_alphas_cumprod", torch.sqrt(1.0 / self.alphas_cumprod), persistent=False)
        self._register("Lambda_t", Lambda_t, persistent=False)
        self._register("Lambda_bar_t", Lambda_bar_t, persistent=False)
        self._register("Lambda_bar_t_prev", Lambda_bar_t_prev, persistent=False)
        self._finish_init()

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x_start: Tensor, t: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """x_t = sqrt(ᾱ_t) x₀ + U diag(sqrt Λ̄_t) ε, ``x_start/noise [B, N, D]``, ``t [B]`` (float32, no autocast)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        with torch.autocast(device_type=x_start.device.type, enabled=False):
            return (extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
                    + extract(self.Umm_sqrt_Lambda_bar_t, t, x_start.shape) @ noise)

    def predict_start_from_noise(self, x_t: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x₀ = x_t / sqrt(ᾱ_t) - U diag(sqrt(Λ̄_t/ᾱ_t)) ε (broken officially: missing buffer; works here)."""
        return (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
                - extract(self.Umm_sqrt_Lambda_bar_t_sqrt_recip_alphas_cumprod, t, x_t.shape) @ noise)

    def predict_noise_from_start(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """ε = diag(Λ̄_t^{-1/2}) Uᵀ (x_t - sqrt(ᾱ_t) x₀) (official two-matrix form)."""
        return (extract(self.inv_sqrt_Lambda_bar_mmUt, t, x_t.shape) @ x_t
                - extract(self.inv_sqrt_Lambda_bar_sqrt_alphas_cumprod_mmUt, t, x_t.shape) @ x0)

    def whiten(self, residual: Tensor, t: Tensor) -> Tensor:
        return extract(self.mahalanobis_S_sqrt_recip, t, residual.shape) @ residual

    def eigen_frame(self) -> tuple[Optional[Tensor], Tensor]:
        return self.U, self.Lambda_bar_t

    # ------------------------------------------------------------------ reverse process
    def q_posterior_mean(self, x_start: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        return (extract(self.posterior_mean_coef1_x0, t, x_t.shape) @ x_start
                + extract(self.posterior_mean_coef2_xt, t, x_t.shape) @ x_t)

    def q_posterior(self, x_start: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean [B,N,D], Λ_post [B,N,1], log Λ_post [B,N,1])`` (variances in the eigenbasis)."""
        mean = self.q_posterior_mean(x_start, x_t, t)
        return (mean, extract(self.Lambda_posterior, t, x_t.shape),
                extract(self.Lambda_posterior_log_variance_clipped, t, x_t.shape))

    def p_combine_mean_var_noise(self, mean: Tensor, log_variance: Tensor, noise: Tensor) -> Tensor:
        """mean + U (exp(½ log Λ_post) ⊙ ε)."""
        return mean + self.U @ ((0.5 * log_variance).exp() * noise)
