"""Reverse-process samplers working on any :class:`GaussianDiffusionBase` (spec §4.6).

* :func:`ancestral_sample`: the official DDPM loop, t = T-1 → 0, x̂₀ clamped, posterior noise U·sqrt(Λ_post)·ε.
* :func:`ddim_sample`: DDIM on a subset of timesteps, generalised to the nonisotropic process: in the
  eigenbasis U every direction i is an ordinary Gaussian diffusion with signal sqrt(ᾱ_t) and marginal variance
  Λ̄_t[i], so x_{t'} = sqrt(ᾱ_{t'}) x̂₀ + U[sqrt(Λ̄_{t'} - σ²) ε̂ + σ z], with ε̂ the whitened predicted noise
  and σ² = η² Λ̄_{t'}(Λ̄_t - (ᾱ_t/ᾱ_{t'}) Λ̄_{t'})/Λ̄_t. η = 1 with all steps equals the ancestral sampler;
  η = 0 is deterministic. (The official DDIM path crashes on an undefined variable.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from skeleton_diffusion.diffusion.base import GaussianDiffusionBase

__all__ = ["RowGenerators", "SampleOutput", "ancestral_sample", "ddim_sample", "ddim_timesteps", "white_noise"]


class SampleOutput(NamedTuple):
    """Result of a sampler. ``start_noise [B, C, D]``; ``step_noise [B, S-1, C, D]`` (index i <-> the i-th
    noisy step, i.e. t = T-1-i for the ancestral sampler); per-step tensors ``[B, S, C, D]`` (index 0 is the
    first step, t = T-1) or None unless ``record_steps``."""

    samples: Tensor
    start_noise: Tensor
    step_noise: Tensor
    x_t_per_step: Optional[Tensor] = None
    x0_per_step: Optional[Tensor] = None
    mean_per_step: Optional[Tensor] = None


class RowGenerators:
    """Independent random streams for consecutive blocks of rows: rows ``[i*r, (i+1)*r)`` of every draw come from
    ``generators[i]`` (``r = rows_per_generator``). Passed as ``generator`` to the samplers, it ties the noise of
    each block (e.g. the S samples of one test window) to that block alone: the draws do not depend on which
    other windows share the batch, on the batch size or on how a test set is split across processes.

    Build it with :meth:`for_windows` (one stream per window, seeded from ``(seed, window index)``).
    """

    def __init__(self, generators: Sequence[torch.Generator], rows_per_generator: int) -> None:
        if not generators or rows_per_generator < 1:
            raise InputError(f"RowGenerators needs >= 1 generator and rows_per_generator >= 1, got "
                             f"{len(generators)} and {rows_per_generator}")
        self.generators = list(generators)
        self.rows = int(rows_per_generator)
        self.device = self.generators[0].device

    @classmethod
    def for_windows(cls, seed: int, window_ids: Sequence[int] | Tensor, rows_per_window: int,
                    device: str | torch.device = "cpu") -> "RowGenerators":
        """One generator per window, seeded with ``SeedSequence([seed, window_id])`` (well-separated streams)."""
        import numpy as np

        ids = torch.as_tensor(window_ids).reshape(-1).tolist()
        gens = []
        for w in ids:
            state = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(w)]).generate_state(1, np.uint64)[0])
            gens.append(torch.Generator(device=device).manual_seed(state >> 1))
        return cls(gens, rows_per_window)

    def randn(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """``shape[0]`` must be ``len(generators) * rows_per_generator``; returns white noise ``shape``."""
        if shape[0] != len(self.generators) * self.rows:
            raise InputError(f"RowGenerators: {len(self.generators)} streams x {self.rows} rows cannot draw a "
                             f"batch of {shape[0]} rows")
        tail = (self.rows, *shape[1:])
        return torch.cat([torch.randn(tail, generator=g, device=self.device, dtype=dtype) for g in self.generators])


def white_noise(shape: tuple[int, ...], ref: Tensor, generator: Optional[torch.Generator | RowGenerators]) -> Tensor:
    """White noise like ``ref``; drawn on the generator's device (a CPU generator works for a CUDA model).
    A :class:`RowGenerators` draws each block of rows from its own stream."""
    if isinstance(generator, RowGenerators):
        return generator.randn(tuple(shape), ref.dtype).to(ref.device)
    device = generator.device if generator is not None else ref.device
    return torch.randn(shape, generator=generator, device=device, dtype=ref.dtype).to(ref.device)


def _start(diffusion: "GaussianDiffusionBase", shape: tuple[int, int, int], start_noise: Optional[Tensor],
           generator: Optional[torch.Generator], start_noise_type: str) -> tuple[Tensor, Tensor]:
    ref = diffusion.betas
    if start_noise is not None:
        if tuple(start_noise.shape) != tuple(shape):
            raise InputError(f"start_noise must be {tuple(shape)}, got {tuple(start_noise.shape)}")
        noise = start_noise.to(device=ref.device, dtype=ref.dtype)
    else:
        noise = white_noise(shape, ref, generator)
    if start_noise_type == "white":
        img = noise
    elif start_noise_type == "marginal":
        t_last = torch.full((shape[0],), diffusion.num_timesteps - 1, device=ref.device, dtype=torch.long)
        img = diffusion.q_sample(torch.zeros_like(noise), t_last, noise)
    else:
        raise InputError(f"start_noise_type must be 'white' or 'marginal', got {start_noise_type!r}")
    return img, noise


def _check_sampling_noise(sampling_noise: Optional[Tensor], shape: tuple[int, int, int], n_noisy: int) -> None:
    if sampling_noise is None:
        return
    expected = (shape[0], n_noisy, *shape[1:])
    if tuple(sampling_noise.shape) != expected:
        raise InputError(f"sampling_noise must be {expected} (batch, noisy steps, nodes, features), "
                         f"got {tuple(sampling_noise.shape)}")


def _step_noise(i: int, x: Tensor, sampling_noise: Optional[Tensor], generator: Optional[torch.Generator],
                transform: Optional[Callable[[Tensor, int], Tensor]], t: int) -> Tensor:
    eps = sampling_noise[:, i].to(x) if sampling_noise is not None else white_noise(tuple(x.shape), x, generator)
    return transform(eps, t) if transform is not None else eps


def _stack(items: list[Tensor], record: bool) -> Optional[Tensor]:
    return torch.stack(items, dim=1) if record and items else None


@torch.no_grad()
def ancestral_sample(
    diffusion: "GaussianDiffusionBase",
    shape: tuple[int, int, int],
    *,
    x_cond: Optional[Tensor] = None,
    start_noise: Optional[Tensor] = None,
    sampling_noise: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    start_noise_type: str = "white",
    record_steps: bool = False,
    noise_transform: Optional[Callable[[Tensor, int], Tensor]] = None,
) -> SampleOutput:
    """Official ancestral loop over all T steps -> :class:`SampleOutput` (``samples [B, C, D]``)."""
    T = diffusion.num_timesteps
    _check_sampling_noise(sampling_noise, shape, T - 1)
    img, noise0 = _start(diffusion, shape, start_noise, generator, start_noise_type)
    x_start = None
    noises, xs, x0s, means = [], [], [], []
    for i, t in enumerate(reversed(range(T))):
        tt = torch.full((shape[0],), t, device=img.device, dtype=torch.long)
        self_cond = x_start if diffusion.self_condition else None
        mean, _, log_var, x_start = diffusion.p_mean_variance(img, tt, self_cond, x_cond=x_cond,
                                                              clip_denoised=clip_denoised)
        if t > 0:
            eps = _step_noise(i, img, sampling_noise, generator, noise_transform, t)
            noises.append(eps)
            img = diffusion.p_combine_mean_var_noise(mean, log_var, eps)
        else:
            img = mean
        if record_steps:
            xs.append(img)
            x0s.append(x_start)
            means.append(mean)
    step_noise = torch.stack(noises, dim=1) if noises else img.new_zeros((shape[0], 0, *shape[1:]))
    return SampleOutput(img, noise0, step_noise, _stack(xs, record_steps), _stack(x0s, record_steps),
                        _stack(means, record_steps))


def ddim_timesteps(num_timesteps: int, sampling_timesteps: int) -> list[int]:
    """Descending timesteps used by DDIM: ``sampling_timesteps`` values spread over [0, T-1], T-1 first,
    0 last (``linspace(-1, T-1, S+1)`` truncated to int, as lucidrains, dropping -1)."""
    times = torch.linspace(-1, num_timesteps - 1, steps=sampling_timesteps + 1).long().tolist()
    return sorted(set(t for t in times if t >= 0), reverse=True)


@torch.no_grad()
def ddim_sample(
    diffusion: "GaussianDiffusionBase",
    shape: tuple[int, int, int],
    *,
    sampling_timesteps: int,
    eta: float = 0.0,
    x_cond: Optional[Tensor] = None,
    start_noise: Optional[Tensor] = None,
    sampling_noise: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    start_noise_type: str = "white",
    record_steps: bool = False,
    noise_transform: Optional[Callable[[Tensor, int], Tensor]] = None,
) -> SampleOutput:
    """Nonisotropic DDIM (see module docstring) -> :class:`SampleOutput`. With ``eta = 0`` no step noise is
    drawn (``step_noise`` is empty)."""
    times = ddim_timesteps(diffusion.num_timesteps, sampling_timesteps)
    pairs = list(zip(times, times[1:] + [-1]))
    n_noisy = (len(pairs) - 1) if eta > 0 else 0
    _check_sampling_noise(sampling_noise if eta > 0 else None, shape, n_noisy)
    img, noise0 = _start(diffusion, shape, start_noise, generator, start_noise_type)
    U, Lambda_bar = diffusion.eigen_frame()
    ac = diffusion.alphas_cumprod
    x_start = None
    noises, xs, x0s, means = [], [], [], []

    def rotate_in(v: Tensor) -> Tensor:  # to eigen coordinates
        return v if U is None else U.mT @ v

    def rotate_out(v: Tensor) -> Tensor:
        return v if U is None else U @ v

    for i, (t, t_next) in enumerate(pairs):
        tt = torch.full((shape[0],), t, device=img.device, dtype=torch.long)
        self_cond = x_start if diffusion.self_condition else None
        x_start = diffusion.predict_x_start(img, tt, self_cond, x_cond=x_cond)
        if clip_denoised:
            x_start = x_start.clamp(-1.0, 1.0)
        if t_next < 0:
            img = x_start
            mean = x_start
        else:
            lb_t = Lambda_bar[t].unsqueeze(-1)            # [C, 1]
            lb_n = Lambda_bar[t_next].unsqueeze(-1)
            a = ac[t] / ac[t_next]
            eps_hat = rotate_in(img - ac[t].sqrt() * x_start) / lb_t.sqrt()
            var = (eta ** 2) * lb_n * (lb_t - a * lb_n).clamp(min=0) / lb_t
            direction = (lb_n - var).clamp(min=0).sqrt() * eps_hat
            mean = ac[t_next].sqrt() * x_start + rotate_out(direction)
            if eta > 0:
                eps = _step_noise(i, img, sampling_noise, generator, noise_transform, t)
                noises.append(eps)
                img = mean + rotate_out(var.sqrt() * eps)
            else:
                img = mean
        if record_steps:
            xs.append(img)
            x0s.append(x_start)
            means.append(mean)
    step_noise = torch.stack(noises, dim=1) if noises else img.new_zeros((shape[0], 0, *shape[1:]))
    return SampleOutput(img, noise0, step_noise, _stack(xs, record_steps), _stack(x0s, record_steps),
                        _stack(means, record_steps))
