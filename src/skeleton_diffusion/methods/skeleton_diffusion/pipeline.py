"""SkeletonDiffusion as one module: frozen autoencoder + latent diffusion -> sampled future motions.

The inference path of the official code (``get_diffusion_latent_codes`` + ``decode_latent_pred``):

1. ``z_past = tanh(Enc(obs))`` (the autoencoder's past embedding, the diffusion condition),
2. repeat it ``S`` times (``repeat_interleave``) and sample ``B*S`` latents ``[B*S, N, D]``,
3. decode ``pred_length`` frames from the last two observed frames,
4. reshape to ``[B, S, T_pred, N, 3]`` (input space; multiply by ``pose_box_size`` for metres).

Speed: everything runs without autograd; the decoder takes the no-grad recurrence of training's selection pass
(``Decoder.inference_batch_chunk_cpu`` sequences at a time, output layer inside the loop); the denoiser embeds each
distinct diffusion step once. ``predict(..., network_dtype=torch.bfloat16)`` runs the denoiser's products in
bfloat16 (opt-in; see :func:`network_dtype`). Callers on CPU should call
:func:`skeleton_diffusion.utils.cpu_allocator.keep_freed_cpu_memory` once (``load_model`` and ``eval.py`` do).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError

_PRECISIONS = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
               "fp16": torch.float16, "float16": torch.float16}


def network_dtype(precision: Optional[str]) -> Optional[torch.dtype]:
    """``'fp32'`` (default, official numerics) -> None; ``'bf16'`` / ``'fp16'`` -> the dtype in which the denoiser's
    products run while sampling (``GaussianDiffusionBase.sample(network_dtype=...)``). The decoder always runs in
    float32 (its 120-step recurrence would accumulate the rounding)."""
    if precision is None:
        return None
    key = str(precision).lower()
    if key not in _PRECISIONS:
        raise ConfigError(f"sampling_precision must be one of fp32, bf16, fp16; got {precision!r}")
    return _PRECISIONS[key]


class SkeletonDiffusion(nn.Module):
    """Autoencoder + diffusion with the official sampling/decoding semantics.

    Args:
        autoencoder: :class:`skeleton_diffusion.methods.skeleton_diffusion.autoencoder.AutoEncoder` (frozen, eval mode).
        diffusion: a :class:`~skeleton_diffusion.diffusion.base.GaussianDiffusionBase` whose model is the denoiser.
        pose_box_size: metres per input-space unit.
        obs_length, pred_length: frames observed / predicted (e.g. 30 / 120 at 60 fps).
    """

    def __init__(self, autoencoder: nn.Module, diffusion: nn.Module, pose_box_size: float,
                 obs_length: int, pred_length: int) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.diffusion = diffusion
        self.pose_box_size = float(pose_box_size)
        self.obs_length = int(obs_length)
        self.pred_length = int(pred_length)

    @torch.no_grad()
    def condition(self, obs: Tensor) -> Tensor:
        """Diffusion condition ``z_past [B, N, D]`` from ``obs [B, T_obs, N, 3]`` (input space)."""
        return self.autoencoder.get_past_embedding(obs)

    @torch.no_grad()
    def sample_latents(self, obs: Tensor, num_samples: int, *, generator: Optional[torch.Generator] = None,
                       start_noise: Optional[Tensor] = None, sampling_noise: Optional[Tensor] = None,
                       diffusion: Optional[nn.Module] = None, **sample_kwargs) -> tuple[Tensor, Tensor]:
        """``(latents [B*S, N, D], z_past [B, N, D])``; sample ``b*S + s`` belongs to observation ``b``.

        ``diffusion`` overrides the module used for sampling (e.g. the EMA copy during validation)."""
        z_past = self.condition(obs)
        x_cond = z_past.repeat_interleave(num_samples, dim=0)
        diff = self.diffusion if diffusion is None else diffusion
        latents = diff.sample(batch_size=x_cond.shape[0], x_cond=x_cond, generator=generator,
                              start_noise=start_noise, sampling_noise=sampling_noise, **sample_kwargs)
        return latents, z_past

    @torch.no_grad()
    def decode_latents(self, obs: Tensor, latents: Tensor, num_samples: int,
                       pred_length: Optional[int] = None) -> Tensor:
        """Decode ``latents [B*S, N, D]`` -> ``[B, S, T_pred, N, 3]`` input space."""
        b = obs.shape[0]
        ph = self.pred_length if pred_length is None else int(pred_length)
        obs_rep = obs.repeat_interleave(num_samples, dim=0)
        pred = self.autoencoder.decode(obs_rep, latents, None, ph=ph)
        return pred.reshape(b, num_samples, ph, *pred.shape[2:])

    @torch.no_grad()
    def predict(self, obs: Tensor, num_samples: int = 50, *, pred_length: Optional[int] = None,
                generator: Optional[torch.Generator] = None, diffusion: Optional[nn.Module] = None,
                **sample_kwargs) -> Tensor:
        """Sample ``num_samples`` futures ``[B, S, T_pred, N, 3]`` (input space) for ``obs [B, T_obs, N, 3]``."""
        latents, _ = self.sample_latents(obs, num_samples, generator=generator, diffusion=diffusion,
                                         **sample_kwargs)
        return self.decode_latents(obs, latents, num_samples, pred_length)

    def to_metric(self, x: Tensor) -> Tensor:
        """Input space -> metres."""
        return x * self.pose_box_size
