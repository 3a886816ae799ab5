"""DiffPose's diffusion: β schedules, forward noising, training loss, DDIM steps and the official test procedure.

Facts from the official code (``common/utils_diff.py``, ``runners/diffpose_frame.py``):

* the schedule is built in float64 and used as float32 (``betas``); ``ᾱ_t = prod_{s<=t}(1 - β_s)``;
* training noise is ``ε ⊙ scale`` with the GMM "noise scale" (the chosen kernel's variance for u, v; 1 for
  x, y, z), timesteps are antithetic (``t`` and ``T - 1 - t``), the loss is the sum over joints x channels of
  ``(ε_scaled - ε̂)²`` averaged over the batch;
* the test (``test_hyber``) starts from ``[uv, prior(uv) - root]`` **without** forward noise (the noising line is
  commented out in the official code; ``add_start_noise=True`` restores it) and runs DDIM over
  ``seq = range(0, T_test, T_test // test_timesteps)`` (CPN config: T_test = 24 -> t = 12, 0; GT config: 12 -> 6, 0).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = [
    "diffpose_betas", "compute_alpha", "test_sequence", "q_sample", "training_loss", "antithetic_timesteps",
    "generalized_steps", "lift",
]

Denoiser = Callable[[Tensor, Tensor], Tensor]


def diffpose_betas(beta_schedule: str, beta_start: float, beta_end: float, num_diffusion_timesteps: int) -> np.ndarray:
    """float64 ``β [T]`` of the official ``get_beta_schedule`` (linear, quad, const, jsd, sigmoid)."""
    t = int(num_diffusion_timesteps)
    if beta_schedule == "linear":
        return np.linspace(beta_start, beta_end, t, dtype=np.float64)
    if beta_schedule == "quad":
        return np.linspace(beta_start ** 0.5, beta_end ** 0.5, t, dtype=np.float64) ** 2
    if beta_schedule == "const":
        return beta_end * np.ones(t, dtype=np.float64)
    if beta_schedule == "jsd":
        return 1.0 / np.linspace(t, 1, t, dtype=np.float64)
    if beta_schedule == "sigmoid":
        x = np.linspace(-6, 6, t)
        return 1.0 / (np.exp(-x) + 1.0) * (beta_end - beta_start) + beta_start
    raise ConfigError(f"unknown DiffPose beta_schedule {beta_schedule!r}; expected linear, quad, const, jsd or sigmoid")


def compute_alpha(betas: Tensor, t: Tensor) -> Tensor:
    """``ᾱ_t [B, 1, 1]`` for integer ``t [B]`` with ``ᾱ_{-1} = 1`` (official ``compute_alpha``)."""
    b = torch.cat([torch.zeros(1, dtype=betas.dtype, device=betas.device), betas])
    return (1 - b).cumprod(dim=0).index_select(0, t.long() + 1).view(-1, 1, 1)


def test_sequence(test_num_diffusion_timesteps: int, test_timesteps: int, skip_type: str = "uniform") -> list[int]:
    """The evaluated timesteps (ascending): official ``uniform`` = ``range(0, T, T // n)``, or ``quad``."""
    if test_timesteps < 1 or test_num_diffusion_timesteps < 1:
        raise ConfigError(f"test_timesteps ({test_timesteps}) and test_num_diffusion_timesteps "
                          f"({test_num_diffusion_timesteps}) must be positive")
    if skip_type == "uniform":
        step = test_num_diffusion_timesteps // test_timesteps
        if step < 1:
            raise ConfigError(f"test_num_diffusion_timesteps ({test_num_diffusion_timesteps}) must be >= "
                              f"test_timesteps ({test_timesteps})")
        return list(range(0, test_num_diffusion_timesteps, step))
    if skip_type == "quad":
        seq = np.linspace(0, np.sqrt(test_num_diffusion_timesteps * 0.8), test_timesteps) ** 2
        return [int(s) for s in seq]
    raise ConfigError(f"skip_type must be 'uniform' or 'quad', got {skip_type!r}")


def q_sample(x0: Tensor, t: Tensor, noise_scaled: Tensor, betas: Tensor) -> Tensor:
    """``x_t = √ᾱ_t x0 + √(1 - ᾱ_t) ε_scaled`` for ``x0 [B, J, C]`` and integer ``t [B]``."""
    a = (1 - betas).cumprod(dim=0).index_select(0, t.long()).view(-1, 1, 1)
    return x0 * a.sqrt() + noise_scaled * (1.0 - a).sqrt()


def antithetic_timesteps(n: int, num_timesteps: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> Tensor:
    """Official training draw: ``n // 2 + 1`` uniform timesteps, then ``T - 1 - t``; the first ``n`` kept."""
    t = torch.randint(0, num_timesteps, (n // 2 + 1,), generator=generator, device=device)
    return torch.cat([t, num_timesteps - t - 1])[:n]


def training_loss(model: Denoiser, x0: Tensor, t: Tensor, noise_scaled: Tensor, betas: Tensor) -> Tensor:
    """Official loss: ``sum_{J,C} (ε_scaled - model(x_t, t))²`` averaged over the batch (scalar)."""
    x_t = q_sample(x0, t, noise_scaled, betas)
    pred = model(x_t, t.float())
    return (noise_scaled - pred).square().sum(dim=(1, 2)).mean(dim=0)


def generalized_steps(x: Tensor, seq: Sequence[int], model: Denoiser, betas: Tensor, eta: float = 0.0,
                      noise: Sequence[Tensor] | None = None,
                      generator: torch.Generator | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """Official DDIM loop from ``x`` over ``reversed(seq)`` -> ``(xs, x0_preds)`` (``len(seq) + 1`` and
    ``len(seq)`` tensors). ``noise[k]`` is the step-``k`` draw (a fresh ``randn`` per step otherwise; it is drawn
    even for ``eta = 0``, as officially, and then multiplied by 0)."""
    seq = [int(s) for s in seq]
    if noise is not None and len(noise) < len(seq):
        raise InputError(f"noise must hold one tensor per step ({len(seq)}), got {len(noise)}")
    n = x.shape[0]
    seq_next = [-1] + seq[:-1]
    xs, x0_preds = [x], []
    with torch.no_grad():
        for k, (i, j) in enumerate(zip(reversed(seq), reversed(seq_next))):
            t = torch.full((n,), float(i), device=x.device)
            at = compute_alpha(betas, torch.full((n,), i, dtype=torch.long, device=x.device))
            at_next = compute_alpha(betas, torch.full((n,), j, dtype=torch.long, device=x.device))
            xt = xs[-1]
            et = model(xt, t)
            x0_t = (xt - et * (1 - at).sqrt()) / at.sqrt()
            x0_preds.append(x0_t)
            c1 = eta * ((1 - at / at_next) * (1 - at_next) / (1 - at)).sqrt()
            c2 = ((1 - at_next) - c1 ** 2).sqrt()
            z = noise[k].to(x) if noise is not None else torch.randn(x.shape, generator=generator,
                                                                     device=x.device, dtype=x.dtype)
            xs.append(at_next.sqrt() * x0_t + c1 * z + c2 * et)
    return xs, x0_preds


def lift(prior: Callable[[Tensor], Tensor], model: Denoiser, input_2d: Tensor, betas: Tensor,
         test_num_diffusion_timesteps: int, test_timesteps: int, eta: float = 0.0, test_times: int = 1,
         step_noise: Sequence[Tensor] | None = None, *, skip_type: str = "uniform", add_start_noise: bool = False,
         noise_scale: Tensor | None = None, start_noise: Tensor | None = None,
         generator: torch.Generator | None = None, return_trajectory: bool = False):
    """Official ``test_hyber``: ``input_2d [B, J, 2]`` (normalised) -> root-relative ``xyz [B, J, 3]`` (metres).

    The start is ``[uv, prior(uv) - prior(uv)_root]`` repeated ``test_times`` times; the official code draws a
    start noise and discards it (``add_start_noise=False``, default). ``add_start_noise=True`` applies the
    commented-out line: ``x = √ᾱ_T x + √(1-ᾱ_T) ε ⊙ noise_scale`` at ``T = test_num_diffusion_timesteps``.
    The copies are averaged after the DDIM steps. ``return_trajectory`` also returns ``(start, xs, x0_preds)``.
    """
    if input_2d.dim() != 3 or input_2d.shape[-1] != 2:
        raise InputError(f"input_2d must be [B, J, 2] normalised image coordinates, got {tuple(input_2d.shape)}")
    b, j = input_2d.shape[:2]
    with torch.no_grad():
        xyz = prior(input_2d)
        xyz = xyz - xyz[:, :1, :]
        start = torch.cat([input_2d, xyz], dim=2).repeat(test_times, 1, 1)
    e = start_noise if start_noise is not None else torch.randn(start.shape, generator=generator,
                                                                device=start.device, dtype=start.dtype)
    x = start.clone()
    if add_start_noise:
        scale = torch.ones_like(start) if noise_scale is None else noise_scale.to(start).repeat(test_times, 1, 1)
        a = (1 - betas).cumprod(dim=0)[int(test_num_diffusion_timesteps)]
        x = x * a.sqrt() + e.to(x) * scale * (1.0 - a).sqrt()
    seq = test_sequence(test_num_diffusion_timesteps, test_timesteps, skip_type)
    xs, x0_preds = generalized_steps(x, seq, model, betas, eta=eta, noise=step_noise, generator=generator)
    out = xs[-1].reshape(test_times, b, j, -1).mean(dim=0)
    out_xyz = out[:, :, 2:]
    out_xyz = out_xyz - out_xyz[:, :1, :]
    if return_trajectory:
        return out_xyz, (start, xs, x0_preds)
    return out_xyz
