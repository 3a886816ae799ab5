"""DiffHPE's noise schedules (``compute_noise_scheduling``), float64 numpy-equivalent, as torch tensors.

Official names: ``beta`` = β_t, ``alpha_hat`` = 1 − β_t, ``alpha`` = ᾱ_t (the cumulative product) and
``sigma[t-1]`` = the posterior std used when stepping from t to t − 1 (length ``num_steps − 1``).
``cosine`` is the improved-DDPM cosine ᾱ(t) with offset 0.008 and β capped at ``max_beta = beta_end``
(0.5 in the official config); ``linear`` and ``quad`` use ``beta_start``/``beta_end`` directly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["SCHEDULES", "diffhpe_noise_schedule"]

SCHEDULES = ("cosine", "linear", "quad")


def _cosine_alpha_bar(t: float) -> float:
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def diffhpe_noise_schedule(schedule: str, beta_start: float, beta_end: float, num_steps: int) -> dict[str, Tensor]:
    """``{'beta', 'alpha', 'alpha_hat', 'sigma'}`` float64 tensors (``[T]``, ``[T]``, ``[T]``, ``[T-1]``)."""
    n = int(num_steps)
    if n < 2:
        raise ConfigError(f"DiffHPE num_steps must be >= 2, got {num_steps}")
    if schedule == "quad":
        beta = np.linspace(beta_start ** 0.5, beta_end ** 0.5, n) ** 2
    elif schedule == "linear":
        beta = np.linspace(beta_start, beta_end, n)
    elif schedule == "cosine":
        beta = np.array([min(1 - _cosine_alpha_bar((i + 1) / n) / _cosine_alpha_bar(i / n), beta_end)
                         for i in range(n)])
    else:
        raise ConfigError(f"DiffHPE schedule must be one of {SCHEDULES}, got {schedule!r}")
    alpha_hat = 1 - beta
    alpha = np.cumprod(alpha_hat)
    sigma = ((1.0 - alpha[:-1]) / (1.0 - alpha[1:]) * beta[1:]) ** 0.5
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in
            (("beta", beta), ("alpha", alpha), ("alpha_hat", alpha_hat), ("sigma", sigma))}
