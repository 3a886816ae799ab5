"""Sampling MDM-style motion diffusions: respaced steps, DDIM, classifier-free guidance, inpainting.

Works on any :class:`~skeleton_diffusion.diffusion.base.GaussianDiffusionBase` (isotropic or nonisotropic) whose
network accepts ``force_uncond`` / ``frame_mask`` keywords (:class:`~skeleton_diffusion.nn.motion_transformer.MDM`).

**Respacing** (as the official ``respace.py`` defines it): keep a subset ``τ`` of the training steps; the
respaced process has ``ᾱ'_i = ᾱ_{τ_i}``, i.e. ``β'_i = 1 - ᾱ_{τ_i}/ᾱ_{τ_{i-1}}`` (:func:`respaced_betas`); the
network still sees the original step index ``τ_i``. One reverse step between kept steps ``t > s`` in the
eigenbasis ``U`` of the noise (every eigen-direction is an ordinary Gaussian diffusion with signal ``sqrt ᾱ`` and
marginal variance ``Λ̄``) is the generalised DDIM update
``x_s = sqrt(ᾱ_s) x̂₀ + U[sqrt(Λ̄_s - σ²) ε̂ + σ z]``, ``σ² = η² Λ̄_s (Λ̄_t - (ᾱ_t/ᾱ_s) Λ̄_s) / Λ̄_t``:
``η = 1`` is the posterior of the respaced process (the ancestral "full chain" when every step is kept,
MDM's fixed-small variance), ``η = 0`` is DDIM.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError, InputError
from skeleton_diffusion.diffusion.samplers import white_noise

__all__ = ["space_timesteps", "respaced_betas", "guided_x0", "sample_motion"]


def space_timesteps(num_timesteps: int, steps: Optional[int]) -> list[int]:
    """Kept training steps, ascending: ``steps`` values evenly spread over ``[0, T-1]`` with both ends kept
    (rounded strides, the official single-section rule). ``None`` or ``T`` keeps all."""
    if steps is None or int(steps) == num_timesteps:
        return list(range(num_timesteps))
    steps = int(steps)
    if not 1 <= steps <= num_timesteps:
        raise ConfigError(f"sampling steps must be in [1, {num_timesteps}], got {steps}")
    if steps == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)})


def respaced_betas(alphas_cumprod: Tensor, kept: Sequence[int]) -> Tensor:
    """β' of the respaced process: ``1 - ᾱ[τ_i] / ᾱ[τ_{i-1}]`` (``ᾱ[τ_{-1}] = 1``) -> ``[len(kept)]``."""
    ac = alphas_cumprod[torch.as_tensor(list(kept), dtype=torch.long, device=alphas_cumprod.device)]
    prev = torch.cat([ac.new_ones(1), ac[:-1]])
    return 1.0 - ac / prev


def guided_x0(diffusion, x: Tensor, t: Tensor, x_cond: Optional[Tensor], guidance_param: float = 1.0, *,
              frame_mask: Optional[Tensor] = None, skip_uncond_at_one: bool = True) -> Tensor:
    """x̂₀ with classifier-free guidance: ``uncond + s (cond - uncond)`` (``s = guidance_param``).

    ``x [B, J, F]``; ``x_cond`` batch B (or a divisor, repeat-interleaved). With ``s = 1`` the unconditional
    pass is skipped unless ``skip_uncond_at_one=False`` (the formula then equals the conditional model)."""
    model = diffusion.model
    if x_cond is not None and x.shape[0] > x_cond.shape[0]:
        if x.shape[0] % x_cond.shape[0]:
            raise InputError(f"x batch {x.shape[0]} is not a multiple of x_cond batch {x_cond.shape[0]}")
        x_cond = x_cond.repeat_interleave(x.shape[0] // x_cond.shape[0], dim=0)
    cond = diffusion.activation(model(x, t, None, x_cond, frame_mask=frame_mask))
    s = float(guidance_param)
    if x_cond is None or (s == 1.0 and skip_uncond_at_one):
        return cond
    uncond = diffusion.activation(model(x, t, None, x_cond, force_uncond=True, frame_mask=frame_mask))
    return uncond + s * (cond - uncond)


@torch.no_grad()
def sample_motion(diffusion, batch_size: int, *, x_cond: Optional[Tensor] = None, steps: Optional[int] = None,
                  eta: float = 1.0, guidance_param: float = 1.0, known: Optional[Tensor] = None,
                  known_mask: Optional[Tensor] = None, frame_mask: Optional[Tensor] = None,
                  generator: Optional[torch.Generator] = None, clip_denoised: bool = False,
                  start_noise: Optional[Tensor] = None) -> Tensor:
    """Sample ``[batch_size, J, F]`` from a motion diffusion.

    * ``steps``: kept steps (None = all T: the full chain); ``eta``: 1 = respaced ancestral, 0 = DDIM.
    * ``guidance_param``: classifier-free guidance scale (1 = conditional model only).
    * ``known [B, J, F]`` + ``known_mask`` (bool, broadcastable to it): inpainting — before every network call
      the known part of ``x_t`` is replaced by ``q_sample(known, t)``, and in the result by ``known`` exactly.
    * ``frame_mask [B, T]``: valid frames (padding is ignored by attention).
    Random draws come from ``generator`` (or the global RNG): start noise, then per step the inpainting noise
    (if any) and the step noise (if ``eta > 0``)."""
    shape = (int(batch_size), diffusion.channels, diffusion.seq_length)
    ref = diffusion.betas
    if start_noise is not None:
        if tuple(start_noise.shape) != shape:
            raise InputError(f"start_noise must be {shape}, got {tuple(start_noise.shape)}")
        x = start_noise.to(ref)
    else:
        x = white_noise(shape, ref, generator)
    if known is not None:
        if known_mask is None:
            raise InputError("inpainting needs known_mask together with known")
        known = known.to(ref)
        if tuple(known.shape) != shape:
            raise InputError(f"known must be {shape} (batch, joints, frames*xyz), got {tuple(known.shape)}")
        known_mask = torch.broadcast_to(known_mask.to(device=ref.device, dtype=torch.bool), shape)
    kept = space_timesteps(diffusion.num_timesteps, steps)[::-1]
    pairs = list(zip(kept, kept[1:] + [-1]))
    U, lam_bar = diffusion.eigen_frame()
    ac = diffusion.alphas_cumprod

    def rot_in(v: Tensor) -> Tensor:
        return v if U is None else U.mT @ v

    def rot_out(v: Tensor) -> Tensor:
        return v if U is None else U @ v

    for t, t_next in pairs:
        tt = torch.full((shape[0],), t, device=ref.device, dtype=torch.long)
        if known is not None:
            x = torch.where(known_mask, diffusion.q_sample(known, tt, white_noise(shape, ref, generator)), x)
        x0 = guided_x0(diffusion, x, tt, x_cond, guidance_param, frame_mask=frame_mask)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        if known is not None:
            x0 = torch.where(known_mask, known, x0)
        if t_next < 0:
            x = x0
            continue
        lb_t, lb_n = lam_bar[t].unsqueeze(-1), lam_bar[t_next].unsqueeze(-1)   # [J, 1]
        ratio = ac[t] / ac[t_next]
        eps_hat = rot_in(x - ac[t].sqrt() * x0) / lb_t.sqrt()
        var = (eta ** 2) * lb_n * (lb_t - ratio * lb_n).clamp(min=0) / lb_t
        direction = (lb_n - var).clamp(min=0).sqrt() * eps_hat
        x = ac[t_next].sqrt() * x0 + rot_out(direction)
        if eta > 0:
            x = x + rot_out(var.sqrt() * white_noise(shape, ref, generator))
    if known is not None:
        x = torch.where(known_mask, known, x)
    return x
