"""Sampling for the official evaluation, batched without changing the draws (issue 25, item 4).

The official MDM evaluation samples each batch of 32 windows on its own (1000 ancestral steps; for the
MultiModality batches 30 times in a row), with classifier-free guidance as two forwards per step (conditional and
unconditional) and the caption re-encoded by CLIP inside every forward. Here:

* each caption is encoded once (:func:`encode_once`) and the encoding is reused for every step and repeat;
* guidance runs the conditional and unconditional halves in ONE forward (:func:`guided_x0`: the batch is
  ``[x; x]`` with ``[cond; null]``; MDM's combination ``uncond + scale * (cond - uncond)``);
* windows and repeats are sampled in one large batch and re-split into the 32-row evaluation batches afterwards;
* every (window, repeat) has its own noise stream (:func:`window_generators`: a ``torch.Generator`` seeded from
  ``(seed, window id, repeat)``), so batching, re-splitting or sharding across processes (``ignite.distributed``)
  does not change any draw: the same window gets the same motion in any batch.

:func:`ddpm_sample` is the ancestral x0-prediction sampler of MDM's ``p_sample_loop`` (cosine schedule,
posterior mean from the predicted x0, no noise at t = 0), written against a ``denoise(x_t, t) -> x0`` callable.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = ["window_generators", "window_noise", "guided_x0", "encode_once", "cosine_betas", "ddpm_sample"]


def window_generators(seed: int, window_ids: Sequence[int], repeat: int = 0,
                      device: str | torch.device = "cpu") -> list[torch.Generator]:  # fmt: skip
    """One generator per window, seeded from ``(seed, window id, repeat)`` only (not from the batch)."""
    gens = []
    for w in window_ids:
        g = torch.Generator(device=device)
        g.manual_seed((int(seed) * 1_000_003 + int(w) * 1_009 + int(repeat)) % (2**63 - 1))
        gens.append(g)
    return gens


def window_noise(gens: Sequence[torch.Generator], shape: Sequence[int], device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
    """``[len(gens), *shape]`` standard normal noise, row i drawn from ``gens[i]``."""
    return torch.stack([torch.randn(*shape, generator=g, device=device, dtype=dtype) for g in gens])


def encode_once(encode: Callable[[list[str]], torch.Tensor], captions: Sequence[str]) -> torch.Tensor:
    """Encode each distinct caption once -> ``[len(captions), ...]`` in input order."""
    unique = list(dict.fromkeys(captions))
    emb = encode(unique)
    index = {c: i for i, c in enumerate(unique)}
    return emb[torch.tensor([index[c] for c in captions], device=emb.device)]


def guided_x0(denoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
              t: torch.Tensor, cond: torch.Tensor, null: torch.Tensor, scale: float) -> torch.Tensor:  # fmt: skip
    """Classifier-free guidance in one forward: ``denoise([x; x], [t; t], [cond; null])`` split into the
    conditional and unconditional halves, combined as MDM's ``uncond + scale * (cond - uncond)``."""
    if scale == 1.0:
        return denoise(x, t, cond)
    out = denoise(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null.expand_as(cond)]))
    c, u = out.chunk(2)
    return u + scale * (c - u)


def cosine_betas(steps: int, s: float = 0.008) -> torch.Tensor:
    """MDM's cosine noise schedule (``betas`` ``[steps]``, float64, clipped at 0.999)."""
    if steps < 1:
        raise InputError(f"diffusion steps must be >= 1; got {steps}.")

    def abar(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    return torch.tensor([min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999) for i in range(steps)],
                        dtype=torch.float64)  # fmt: skip


@torch.no_grad()
def ddpm_sample(denoise_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: Sequence[int],
                betas: torch.Tensor, noise: Callable[[], torch.Tensor]) -> torch.Tensor:  # fmt: skip
    """Ancestral sampling with an x0-predicting model: ``x_T = noise()``; at each step the posterior mean
    ``c0 * x0 + ct * x_t`` plus ``sigma * noise()`` (not at t = 0). ``noise()`` returns ``shape`` draws."""
    alphas = 1.0 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    c0 = betas * abar_prev.sqrt() / (1 - abar)
    ct = (1 - abar_prev) * alphas.sqrt() / (1 - abar)
    var = betas * (1 - abar_prev) / (1 - abar)
    log_var = torch.log(torch.cat([var[1:2], var[1:]])) if len(betas) > 1 else torch.zeros(1, dtype=torch.float64)
    x = noise()
    if tuple(x.shape) != tuple(shape):
        raise InputError(f"noise() returned {tuple(x.shape)}; expected {tuple(shape)}.")
    for i in reversed(range(len(betas))):
        t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        x0 = denoise_x0(x, t)
        mean = float(c0[i]) * x0 + float(ct[i]) * x
        x = mean + (math.exp(0.5 * float(log_var[i])) * noise() if i > 0 else 0.0)
    return x
