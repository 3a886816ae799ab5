"""Official MDM sampling: classifier-free guidance, ``p_mean_variance``, one ancestral / DDIM step, the loops,
and editing (in-between, upper body, prefix) by overwriting the known part of the x̂₀ prediction.

All tensors use our layout ``x [B, J, T*C]``; ``t`` are diffusion step indices of the (possibly respaced)
process, mapped to network time through ``diffusion.timestep_map``.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor

from skeleton_diffusion.methods.mdm.gaussian import OfficialMDMDiffusion, SectionCounts, gather
from skeleton_diffusion.utils.errors import InputError

__all__ = ["guided_x0", "p_mean_variance", "p_sample", "ddim_sample", "sample_loop_progressive", "sample_motion",
           "respaced_view"]


def _batch_cond(x_cond: Any, batch: int) -> Any:
    """Repeat-interleave a condition with a smaller batch (a divisor of ``batch``)."""
    if x_cond is None:
        return None
    if isinstance(x_cond, dict):
        return {k: _batch_cond(v, batch) for k, v in x_cond.items()}
    if torch.is_tensor(x_cond) and x_cond.shape[0] != batch:
        if batch % x_cond.shape[0]:
            raise InputError(f"x batch {batch} is not a multiple of x_cond batch {x_cond.shape[0]}")
        return x_cond.repeat_interleave(batch // x_cond.shape[0], dim=0)
    return x_cond


def guided_x0(diffusion, x: Tensor, t: Tensor, x_cond: Any, guidance_param: Optional[float] = None, *,
              frame_mask: Optional[Tensor] = None) -> Tensor:
    """x̂₀ at diffusion step ``t [B]``: the conditional network, or with ``guidance_param = s`` the official
    ``ClassifierFreeSampleModel``: ``uncond + s · (cond − uncond)`` (both passes are run for every ``s``).
    Without a text/action (``x_cond`` None) a conditional network gives its unconditional output."""
    net = diffusion.model
    x_cond = _batch_cond(x_cond, x.shape[0])
    tm = diffusion.model_timesteps(t) if hasattr(diffusion, "model_timesteps") else t
    no_cond = x_cond is None or (isinstance(x_cond, dict) and x_cond.get("text", x_cond.get("action")) is None)
    if no_cond and getattr(net, "cond_mode", "no_cond") != "no_cond":
        # no text/action given (e.g. editing without a prompt): the unconditional output, for every scale
        return net(x, tm, None, x_cond, force_uncond=True, frame_mask=frame_mask)
    cond = net(x, tm, None, x_cond, frame_mask=frame_mask)
    if guidance_param is None:
        return cond
    uncond = net(x, tm, None, x_cond, force_uncond=True, frame_mask=frame_mask)
    scale = torch.full((x.shape[0],), float(guidance_param), dtype=x.dtype, device=x.device)
    return uncond + scale.view(-1, *([1] * (x.dim() - 1))) * (cond - uncond)


def p_mean_variance(diffusion: OfficialMDMDiffusion, x: Tensor, t: Tensor, x_cond: Any = None, *,
                    guidance_param: Optional[float] = None, clip_denoised: bool = True,
                    known: Optional[Tensor] = None, known_mask: Optional[Tensor] = None,
                    frame_mask: Optional[Tensor] = None, model_output: Optional[Tensor] = None) -> dict[str, Tensor]:
    """Official ``p_mean_variance`` -> ``{'mean', 'variance', 'log_variance', 'pred_xstart'}``.

    With ``known`` / ``known_mask`` (bool, True = keep) the network's x̂₀ is overwritten there by ``known``
    (before clipping and the posterior), the official editing rule."""
    out = guided_x0(diffusion, x, t, x_cond, guidance_param, frame_mask=frame_mask) if model_output is None \
        else model_output
    if known is not None:
        if known_mask is None:
            raise InputError("editing needs known_mask together with known")
        out = torch.where(torch.broadcast_to(known_mask.to(device=out.device, dtype=torch.bool), out.shape),
                          known.to(out), out)
    variance, log_variance = diffusion.model_variance(t, x)
    pred_xstart = out.clamp(-1, 1) if clip_denoised else out
    mean, _, _ = diffusion.q_posterior(pred_xstart, x, t)
    return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}


def _nonzero(t: Tensor, like: Tensor) -> Tensor:
    return (t != 0).to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def p_sample(diffusion: OfficialMDMDiffusion, x: Tensor, t: Tensor, x_cond: Any = None, *,
             noise: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
             **kwargs: Any) -> dict[str, Tensor]:
    """One ancestral step: ``mean + [t ≠ 0] · exp(½ log σ²) · noise`` -> ``{'sample', 'pred_xstart'}``."""
    out = p_mean_variance(diffusion, x, t, x_cond, **kwargs)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    sample = out["mean"] + _nonzero(t, x) * torch.exp(0.5 * out["log_variance"]) * noise
    return {"sample": sample, "pred_xstart": out["pred_xstart"]}


def ddim_sample(diffusion: OfficialMDMDiffusion, x: Tensor, t: Tensor, x_cond: Any = None, *, eta: float = 0.0,
                noise: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                **kwargs: Any) -> dict[str, Tensor]:
    """One DDIM step (official ``ddim_sample``, Eq. 12 with ε re-derived from x̂₀)."""
    out = p_mean_variance(diffusion, x, t, x_cond, **kwargs)
    eps = diffusion.predict_noise_from_start(x, t, out["pred_xstart"])
    ab = gather(diffusion.alphas_cumprod, t, x)
    ab_prev = gather(diffusion.alphas_cumprod_prev, t, x)
    sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
    mean_pred = out["pred_xstart"] * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev - sigma ** 2) * eps
    if eta == 0.0:  # σ = 0: the official draw is multiplied by 0
        return {"sample": mean_pred, "pred_xstart": out["pred_xstart"]}
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return {"sample": mean_pred + _nonzero(t, x) * sigma * noise, "pred_xstart": out["pred_xstart"]}


def respaced_view(diffusion: OfficialMDMDiffusion, steps: SectionCounts) -> OfficialMDMDiffusion:
    """The same network under the respaced process ``space_timesteps(T, steps)`` (``steps=None``: unchanged)."""
    if steps is None:
        return diffusion
    view = OfficialMDMDiffusion(diffusion.model, betas=diffusion.betas, sigma_small=diffusion.sigma_small,
                                timestep_respacing=steps, noise_schedule=diffusion.noise_schedule,
                                latent_size=diffusion.seq_length)
    # a respaced view of an already respaced process maps through both tables
    view.timestep_map = diffusion.timestep_map[view.timestep_map]
    return view.to(diffusion.betas.device)


@torch.no_grad()
def sample_loop_progressive(diffusion: OfficialMDMDiffusion, shape: Sequence[int], x_cond: Any = None, *,
                            eta: float = 1.0, guidance_param: Optional[float] = None, clip_denoised: bool = False,
                            start_noise: Optional[Tensor] = None, sampling_noise: Optional[Sequence[Tensor]] = None,
                            known: Optional[Tensor] = None, known_mask: Optional[Tensor] = None,
                            frame_mask: Optional[Tensor] = None,
                            generator: Optional[torch.Generator] = None) -> Iterator[dict[str, Tensor]]:
    """Yield ``{'sample', 'pred_xstart'}`` after every step (official ``p_sample_loop_progressive`` for
    ``eta = 1``, ``ddim_sample_loop_progressive`` for ``eta < 1``).

    ``sampling_noise``: one draw per step in sampling order (the t = 0 draw is unused); otherwise drawn from
    ``generator`` (start noise first, then one draw per step)."""
    ref = diffusion.betas
    shape = tuple(int(s) for s in shape)
    if start_noise is not None:
        if tuple(start_noise.shape) != shape:
            raise InputError(f"start_noise must be {shape}, got {tuple(start_noise.shape)}")
        x = start_noise.to(device=ref.device, dtype=torch.float32)
    else:
        x = torch.randn(shape, generator=generator, device=ref.device)
    steps = list(range(diffusion.num_timesteps))[::-1]
    if sampling_noise is not None and len(sampling_noise) < len(steps):
        raise InputError(f"sampling_noise holds {len(sampling_noise)} draws; {len(steps)} steps need one each")
    if known is not None:
        known = known.to(x)
        if tuple(known.shape) != shape:
            raise InputError(f"known must be {shape} (the sample's layout [B, J, T*C]), got {tuple(known.shape)}")
        if known_mask is None:
            raise InputError("editing needs known_mask together with known")
        known_mask = torch.broadcast_to(known_mask.to(device=x.device, dtype=torch.bool), shape)
    kw = dict(guidance_param=guidance_param, clip_denoised=clip_denoised, known=known, known_mask=known_mask,
              frame_mask=frame_mask)
    for k, i in enumerate(steps):
        t = torch.full((shape[0],), i, dtype=torch.long, device=x.device)
        noise = None if sampling_noise is None else sampling_noise[k].to(x).reshape(shape)
        if eta == 1.0:
            out = p_sample(diffusion, x, t, x_cond, noise=noise, generator=generator, **kw)
        else:
            out = ddim_sample(diffusion, x, t, x_cond, eta=eta, noise=noise, generator=generator, **kw)
        yield out
        x = out["sample"]


def sample_motion(diffusion: OfficialMDMDiffusion, batch_size: int, *, x_cond: Any = None,
                  steps: SectionCounts = None, eta: float = 1.0, guidance_param: Optional[float] = None,
                  clip_denoised: bool = False, start_noise: Optional[Tensor] = None,
                  sampling_noise: Optional[Sequence[Tensor]] = None, known: Optional[Tensor] = None,
                  known_mask: Optional[Tensor] = None, frame_mask: Optional[Tensor] = None,
                  num_frames: Optional[int] = None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Sample ``[batch_size, J, T*C]``.

    ``steps``: official ``space_timesteps`` form (``50``, ``[50]``, ``"ddim50"``, ``"10,20"``) or None (all);
    ``eta=1``: ancestral (``p_sample_loop``), ``eta=0``: DDIM (``ddim_sample_loop``); ``guidance_param``: CFG
    scale (None: conditional network only); ``known``/``known_mask``: official editing (x̂₀ overwritten).
    ``T`` comes from ``start_noise`` / ``known`` / ``num_frames`` (default: the network's ``num_frames``)."""
    net = diffusion.model
    if start_noise is not None:
        feat = start_noise.shape[-1]
    elif known is not None:
        feat = known.shape[-1]
    else:
        feat = int(num_frames or getattr(net, "pred_len", 0) or net.num_frames) * int(getattr(net, "nfeats", 1))
    shape = (int(batch_size), int(diffusion.channels), int(feat))
    view = respaced_view(diffusion, steps)
    final = None
    for out in sample_loop_progressive(view, shape, x_cond, eta=eta, guidance_param=guidance_param,
                                       clip_denoised=clip_denoised, start_noise=start_noise,
                                       sampling_noise=sampling_noise, known=known, known_mask=known_mask,
                                       frame_mask=frame_mask, generator=generator):
        final = out["sample"]
    return final
