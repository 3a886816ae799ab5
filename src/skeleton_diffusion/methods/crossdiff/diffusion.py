"""CrossDiff's Gaussian diffusion as officially configured (``utils/model_util.create_gaussian_diffusion``).

x0 prediction, fixed-small posterior variance, 1000 steps (the official code fixes 1000 and ignores the config's
``diffusion_steps``), cosine schedule (``betas_for_alpha_bar`` with ``max_beta = 0.999``) or linear, and the betas
recomputed through ``SpacedDiffusion`` with every step kept. Tables are float64 like the official numpy arrays;
values are looked up in float64 and cast to float32 before they meet a tensor (official ``_extract_into_tensor``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["OFFICIAL_STEPS", "OfficialDiffusion", "official_betas"]

OFFICIAL_STEPS = 1000


def official_betas(schedule: str = "cosine", steps: int = OFFICIAL_STEPS) -> np.ndarray:
    """Official ``get_named_beta_schedule`` (scale 1) followed by the ``SpacedDiffusion`` recomputation."""
    if schedule == "cosine":
        bar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = np.array([min(1 - bar((i + 1) / steps) / bar(i / steps), 0.999) for i in range(steps)])
    elif schedule == "linear":
        scale = 1000 / steps
        betas = np.linspace(scale * 0.0001, scale * 0.02, steps, dtype=np.float64)
    else:
        raise ConfigError(f"noise_schedule must be 'cosine' or 'linear' (official names), got {schedule!r}")
    ac = np.cumprod(1.0 - betas)
    last, new = 1.0, []
    for a in ac:  # SpacedDiffusion with use_timesteps = all steps
        new.append(1 - a / last)
        last = a
    return np.array(new, dtype=np.float64)


class OfficialDiffusion:
    """The forward process and the DDPM posterior of the official CrossDiff (x0-predicting network)."""

    def __init__(self, schedule: str = "cosine", steps: int = OFFICIAL_STEPS) -> None:
        self.schedule, self.num_timesteps = schedule, int(steps)
        betas = official_betas(schedule, self.num_timesteps)
        ac = np.cumprod(1.0 - betas)
        ac_prev = np.append(1.0, ac[:-1])
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        self.tables = {
            "betas": betas,
            "alphas_cumprod": ac,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": np.log(np.append(post_var[1], post_var[1:])),
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac),
        }
        self._torch = {k: torch.from_numpy(v) for k, v in self.tables.items()}

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return self.tables["alphas_cumprod"]

    def extract(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        """``tables[name][t]`` (float64 lookup, then float32) broadcast to ``like``'s rank."""
        v = self._torch[name].to(t.device)[t].float()
        return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """``x_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·noise``; ``x0 [B, ...]``, ``t [B]`` long."""
        if noise is None:
            noise = torch.randn_like(x0)
        if noise.shape != x0.shape:
            raise ConfigError(f"q_sample: noise {tuple(noise.shape)} must match x0 {tuple(x0.shape)}")
        return self.extract("sqrt_alphas_cumprod", t, x0) * x0 + \
            self.extract("sqrt_one_minus_alphas_cumprod", t, x0) * noise

    def q_posterior_mean(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Mean of ``q(x_{t-1} | x_t, x0)``."""
        return self.extract("posterior_mean_coef1", t, x_t) * x0 + self.extract("posterior_mean_coef2", t, x_t) * x_t

    def p_step(self, x0_hat: Tensor, x_t: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """One official DDPM step (``p_sample`` with fixed-small variance): posterior mean from the predicted
        ``x0_hat`` plus ``exp(0.5·log σ²_t)·noise``, no noise where ``t == 0``."""
        if noise is None:
            noise = torch.randn_like(x_t)
        nonzero = (t != 0).float().view(-1, *([1] * (x_t.dim() - 1)))
        log_var = self.extract("posterior_log_variance_clipped", t, x_t)
        return self.q_posterior_mean(x0_hat, x_t, t) + nonzero * torch.exp(0.5 * log_var) * noise
