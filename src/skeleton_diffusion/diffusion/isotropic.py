"""Isotropic (standard DDPM) latent diffusion, the BeLFusion / lucidrains-style class (spec §4.8).

It is the nonisotropic diffusion at U = I, Λ_N = 1, and every quantity is computed with the *same float32
expressions* the nonisotropic class evaluates in that case. Hence, with equal options (``loss_weighting``,
``mahalanobis_loss``), ``NonisotropicGaussianDiffusion(*get_cov_from_corr(C, if_run_as_isotropic=True), ...)``
and this class give bit-identical losses, gradients, trained weights and samples on CPU (tested).

Differences from the official isotropic class: buffers may differ from it in the last float32 bit (e.g. the
posterior variance is Λ_t·Λ̄_{t-1}/Λ̄_t with Λ_t = 1-(1-β_t) rather than β_t(1-ᾱ_{t-1})/(1-ᾱ_t)).
Defaults reproduce the official isotropic behaviour: plain (not whitened) residual, ``snr`` weighting for
pred_x0. ``pred_v`` is supported.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from skeleton_diffusion.diffusion.base import GaussianDiffusionBase, extract
from skeleton_diffusion.diffusion.schedules import compute_eigen_variances

__all__ = ["IsotropicGaussianDiffusion"]


class IsotropicGaussianDiffusion(GaussianDiffusionBase):
    """DDPM with white noise. Keyword arguments as :class:`GaussianDiffusionBase`; defaults
    ``mahalanobis_loss=False`` and pred_x0 weighting ``snr`` (official isotropic behaviour)."""

    _nonisotropic = False

    def __init__(self, model: nn.Module, *, mahalanobis_loss: bool = False, **kwargs) -> None:
        super().__init__(model, mahalanobis_loss=mahalanobis_loss, **kwargs)
        ones = torch.ones(1, device=self.betas.device)
        # [T, 1] eigen-variances: the nonisotropic formulas with Λ_N = 1 reduce to exactly these values
        Lambda_t, Lambda_bar_t, Lambda_bar_t_prev = compute_eigen_variances(
            self.betas, self.alphas_cumprod, self.alphas_cumprod_prev, ones, "isotropic")
        Lambda_t, Lambda_bar_t, Lambda_bar_t_prev = Lambda_t[:, 0], Lambda_bar_t[:, 0], Lambda_bar_t_prev[:, 0]
        alphas = 1.0 - self.betas
        self._register("sqrt_one_minus_alphas_cumprod", torch.sqrt(Lambda_bar_t))
        self._register("log_one_minus_alphas_cumprod", torch.log(Lambda_bar_t))
        self._register("sqrt_recip_alphas_cumprod", torch.sqrt(1.0 / self.alphas_cumprod))
        self._register("sqrt_recipm1_alphas_cumprod", torch.sqrt(1.0 / self.alphas_cumprod - 1))
        posterior_variance = Lambda_t * Lambda_bar_t_prev * (1 / Lambda_bar_t)
        self._register("posterior_variance", posterior_variance)
        self._register("posterior_log_variance_clipped", torch.log(posterior_variance.clamp(min=1e-20)))
        self._register("posterior_mean_coef1", torch.sqrt(self.alphas_cumprod_prev) * ((1 / Lambda_bar_t) * Lambda_t))
        self._register("posterior_mean_coef2", torch.sqrt(alphas) * ((1 / Lambda_bar_t) * Lambda_bar_t_prev))
        # the nonisotropic conversion coefficients at U = I (non-persistent: not official buffers)
        self._register("inv_sqrt_Lambda_bar", 1 / torch.sqrt(Lambda_bar_t), persistent=False)
        self._register("inv_sqrt_Lambda_bar_sqrt_alphas_cumprod",
                       (1 / torch.sqrt(Lambda_bar_t)) * self.sqrt_alphas_cumprod, persistent=False)
        self._register("sqrt_Lambda_bar_sqrt_recip_alphas_cumprod",
                       torch.sqrt(Lambda_bar_t / self.alphas_cumprod), persistent=False)
        self._register("mahalanobis_scale", torch.sqrt(1.0 / Lambda_bar_t), persistent=False)
        self._register("Lambda_bar_t", Lambda_bar_t.unsqueeze(-1).expand(-1, self.channels).clone(),
                       persistent=False)
        self._finish_init()

    def q_sample(self, x_start: Tensor, t: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """x_t = sqrt(ᾱ_t) x₀ + sqrt(1-ᾱ_t) ε."""
        if noise is None:
            noise = torch.randn_like(x_start)
        with torch.autocast(device_type=x_start.device.type, enabled=False):
            return (extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
                    + extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise)

    def predict_start_from_noise(self, x_t: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
                - extract(self.sqrt_Lambda_bar_sqrt_recip_alphas_cumprod, t, x_t.shape) * noise)

    def predict_noise_from_start(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        return (extract(self.inv_sqrt_Lambda_bar, t, x_t.shape) * x_t
                - extract(self.inv_sqrt_Lambda_bar_sqrt_alphas_cumprod, t, x_t.shape) * x0)

    def predict_v(self, x_start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return (extract(self.sqrt_alphas_cumprod, t, x_start.shape) * noise
                - extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * x_start)

    def predict_start_from_v(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        return (extract(self.sqrt_alphas_cumprod, t, x_t.shape) * x_t
                - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.shape) * v)

    def whiten(self, residual: Tensor, t: Tensor) -> Tensor:
        return extract(self.mahalanobis_scale, t, residual.shape) * residual

    def eigen_frame(self) -> tuple[Optional[Tensor], Tensor]:
        return None, self.Lambda_bar_t

    def q_posterior(self, x_start: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean [B,N,D], variance [B,1,1], log_variance [B,1,1])``."""
        mean = (extract(self.posterior_mean_coef1, t, x_t.shape) * x_start
                + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t)
        return (mean, extract(self.posterior_variance, t, x_t.shape),
                extract(self.posterior_log_variance_clipped, t, x_t.shape))

    def p_combine_mean_var_noise(self, mean: Tensor, log_variance: Tensor, noise: Tensor) -> Tensor:
        return mean + (0.5 * log_variance).exp() * noise
