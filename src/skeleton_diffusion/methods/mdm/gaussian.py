"""MDM's Gaussian diffusion as officially computed (``diffusion/gaussian_diffusion.py`` + ``respace.py``).

Every coefficient is derived in **float64** from the float64 β (as the official numpy arrays) and kept in float64
buffers; a value gathered at ``t`` is cast to the data dtype at use (official ``_extract_into_tensor``), so the
float32 arithmetic around it is the official one. A respaced process (``timestep_respacing``) keeps the steps
``τ`` of :func:`space_timesteps` with ``β'ᵢ = 1 − ᾱ[τᵢ]/ᾱ[τᵢ₋₁]`` and feeds the network ``τᵢ``
(``timestep_map``).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from skeleton_diffusion.diffusion.base import GaussianDiffusionBase
from skeleton_diffusion.diffusion.schedules import cosine_beta_schedule, linear_beta_schedule
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["space_timesteps", "respaced_betas", "official_betas", "OfficialMDMDiffusion", "gather"]

SectionCounts = Union[int, str, Sequence[int], None]


def space_timesteps(num_timesteps: int, section_counts: SectionCounts, *, official: bool = True) -> list[int]:
    """Kept steps (ascending) of the official rule: ``int`` or ``[n1, n2, ...]`` (equal sections, each strided
    with a float stride rounded half-to-even), ``"a,b,c"``, ``"ddimN"`` (the integer stride giving exactly N
    steps) or ``None`` (all). Official corner cases kept: ``[1]`` keeps step 0 (a one-step "sampler" that starts
    from pure noise at the least noisy step); ``official=False`` keeps the section's last step instead.
    ``(1000, [999])`` keeps 499 (float accumulation of the stride; kept in both modes)."""
    T = int(num_timesteps)
    if section_counts is None:
        return list(range(T))
    if isinstance(section_counts, str):
        text = section_counts.strip()
        if text.startswith("[") or text.startswith('"'):          # JSON text of either form
            return space_timesteps(T, json.loads(text), official=official)
        if text.startswith("ddim"):
            desired = int(text[len("ddim"):])
            for stride in range(1, T):
                if len(range(0, T, stride)) == desired:
                    return list(range(0, T, stride))
            raise ConfigError(f"cannot create exactly {desired} steps out of {T} with an integer stride "
                              f"(section_counts={section_counts!r})")
        counts = [int(v) for v in text.split(",")]
    elif isinstance(section_counts, int):
        counts = [section_counts]
    else:
        counts = [int(v) for v in section_counts]
    if not counts:
        raise ConfigError("section_counts must name at least one section")
    size_per, extra = divmod(T, len(counts))
    start, kept = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ConfigError(f"cannot divide a section of {size} steps into {count} (section_counts="
                              f"{section_counts!r}, T={T})")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = float(size - 1) if (count == 1 and not official) else 0.0
        for _ in range(count):
            kept.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(kept))


def respaced_betas(alphas_cumprod: Tensor, kept: Sequence[int]) -> Tensor:
    """``β'ᵢ = 1 − ᾱ[τᵢ]/ᾱ[τᵢ₋₁]`` (ᾱ[τ₋₁] = 1) for ascending kept steps ``τ`` -> ``[len(kept)]`` (input dtype)."""
    idx = torch.as_tensor(sorted(set(int(k) for k in kept)), dtype=torch.long, device=alphas_cumprod.device)
    ac = alphas_cumprod.index_select(0, idx)
    prev = torch.cat([ac.new_ones(1), ac[:-1]])
    return 1.0 - ac / prev


def official_betas(noise_schedule: str, steps: int) -> Tensor:
    """Official ``get_named_beta_schedule`` (``scale_betas = 1``) -> float64 ``[steps]`` (linear not clipped)."""
    if noise_schedule == "cosine":
        return cosine_beta_schedule(int(steps))
    if noise_schedule == "linear":
        return linear_beta_schedule(int(steps), official=True)
    raise ConfigError(f"noise_schedule must be 'cosine' or 'linear', got {noise_schedule!r}")


def gather(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``values[t]`` cast to ``like``'s dtype, shaped ``[B, 1, ...]`` to broadcast against ``like``."""
    out = values.index_select(0, t.to(values.device).long()).to(like.dtype)
    return out.view(-1, *([1] * (like.dim() - 1)))


def _arrays(betas: Tensor) -> dict[str, Tensor]:
    """All official float64 arrays of a β schedule (``GaussianDiffusion.__init__``)."""
    betas = betas.to(torch.float64)
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, dim=0)
    ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
    ac_next = torch.cat([ac[1:], ac.new_zeros(1)])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    # log clipped: at t = 0 the posterior variance is 0, the official code uses posterior_variance[1] there
    clipped = torch.cat([post_var[1:2], post_var[1:]]) if post_var.numel() > 1 else post_var
    return {
        "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev, "alphas_cumprod_next": ac_next,
        "sqrt_alphas_cumprod": ac.sqrt(), "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": torch.log(1.0 - ac), "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1).sqrt(), "posterior_variance": post_var,
        "posterior_log_variance_clipped": torch.log(clipped),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac),
    }


class OfficialMDMDiffusion(GaussianDiffusionBase):
    """The official MDM ``SpacedDiffusion`` (x₀ objective, MSE loss) around an MDM network.

    Args: ``model`` (network ``net(x, t, None, x_cond, *, force_uncond, frame_mask)``); ``diffusion_steps``,
    ``noise_schedule`` (``cosine`` | ``linear``); ``sigma_small`` (True: fixed-small = posterior variance;
    False: fixed-large); ``timestep_respacing`` (any :func:`space_timesteps` form; None keeps all steps, as the
    official ``create_gaussian_diffusion`` hard-codes); ``lambda_vel``, ``lambda_rcxyz``, ``lambda_fc``.
    ``betas`` (float64) overrides the named schedule.
    """

    def __init__(self, model: nn.Module, *, diffusion_steps: int = 1000, noise_schedule: str = "cosine",
                 sigma_small: bool = True, timestep_respacing: SectionCounts = None,
                 betas: Optional[Tensor] = None, lambda_vel: float = 0.0, lambda_rcxyz: float = 0.0,
                 lambda_fc: float = 0.0, latent_size: Optional[int] = None) -> None:
        base_betas = (official_betas(noise_schedule, int(diffusion_steps)) if betas is None
                      else torch.as_tensor(betas, dtype=torch.float64))
        if base_betas.dim() != 1 or not bool(((base_betas > 0) & (base_betas <= 1)).all()):
            raise ConfigError(f"betas must be a 1-D schedule in (0, 1], got shape {tuple(base_betas.shape)} "
                              f"(noise_schedule={noise_schedule!r}, diffusion_steps={diffusion_steps})")
        kept = space_timesteps(base_betas.numel(), timestep_respacing)
        arrays = _arrays(base_betas)
        new_betas = respaced_betas(arrays["alphas_cumprod"], kept) if len(kept) < base_betas.numel() else base_betas
        super().__init__(model, diffusion_timesteps=int(new_betas.numel()),
                         beta_schedule=new_betas.clamp(max=1 - 1e-12).tolist(),
                         latent_size=latent_size or getattr(model, "out_dim", None),
                         diffusion_conditioning=False, clip_denoised=False, loss_reduction_type="mse",
                         loss_weighting="ones", mahalanobis_loss=False)
        for name, value in _arrays(new_betas).items():
            self._register(name, value)
        self.register_buffer("timestep_map", torch.as_tensor(kept, dtype=torch.long))
        self.original_num_steps = int(base_betas.numel())
        self.noise_schedule = noise_schedule
        self.sigma_small = bool(sigma_small)
        self.lambda_vel, self.lambda_rcxyz, self.lambda_fc = float(lambda_vel), float(lambda_rcxyz), float(lambda_fc)
        self._finish_init()

    def _register(self, name: str, value: Tensor, persistent: bool = True) -> None:
        # float64 as the official numpy arrays; cast at use (gather)
        self.register_buffer(name, value.to(torch.float64), persistent=persistent)

    # ------------------------------------------------------------ closed forms
    def model_timesteps(self, t: Tensor) -> Tensor:
        """Network time of diffusion step ``t`` (official ``_WrappedModel``): ``timestep_map[t]``."""
        return self.timestep_map.index_select(0, t.to(self.timestep_map.device).long()).to(t.device)

    def q_sample(self, x_start: Tensor, t: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """x_t = sqrt(ᾱ_t) x₀ + sqrt(1-ᾱ_t) ε for ``x_start`` of any shape ``[B, ...]``."""
        if noise is None:
            noise = torch.randn_like(x_start)
        if noise.shape != x_start.shape:
            raise InputError(f"noise {tuple(noise.shape)} must match x_start {tuple(x_start.shape)}")
        return (gather(self.sqrt_alphas_cumprod, t, x_start) * x_start
                + gather(self.sqrt_one_minus_alphas_cumprod, t, x_start) * noise)

    def q_posterior(self, x_start: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean, variance [B,1,..], log_variance [B,1,..])`` of q(x_{t-1} | x_t, x_0)."""
        mean = (gather(self.posterior_mean_coef1, t, x_t) * x_start
                + gather(self.posterior_mean_coef2, t, x_t) * x_t)
        return mean, gather(self.posterior_variance, t, x_t), gather(self.posterior_log_variance_clipped, t, x_t)

    def model_variance(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """Fixed-small (``sigma_small``) or fixed-large ``(variance, log_variance)`` at ``t``."""
        if self.sigma_small:
            return gather(self.posterior_variance, t, like), gather(self.posterior_log_variance_clipped, t, like)
        large = torch.cat([self.posterior_variance[1:2], self.betas[1:]])
        return gather(large, t, like), gather(torch.log(large), t, like)

    def predict_start_from_noise(self, x_t: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - gather(self.sqrt_recipm1_alphas_cumprod,
                                                                               t, x_t) * noise

    def predict_noise_from_start(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        return ((gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0)
                / gather(self.sqrt_recipm1_alphas_cumprod, t, x_t))

    def p_combine_mean_var_noise(self, mean: Tensor, log_variance: Tensor, noise: Tensor) -> Tensor:
        return mean + torch.exp(0.5 * log_variance) * noise

    def whiten(self, residual: Tensor, t: Tensor) -> Tensor:
        return residual

    def eigen_frame(self) -> tuple[Optional[Tensor], Tensor]:
        lam = (1.0 - self.alphas_cumprod).to(torch.float32).unsqueeze(-1).expand(-1, self.channels)
        return None, lam

    def feed_model(self, x: Tensor, t: Tensor, x_self_cond: Optional[Tensor] = None, x_cond: Any = None) -> Tensor:
        """Network output at diffusion step ``t`` (mapped through ``timestep_map``)."""
        return self.model(x, self.model_timesteps(t), None, x_cond)

    def extra_repr(self) -> str:
        return (f"steps={self.num_timesteps} (of {self.original_num_steps}), schedule={self.noise_schedule}, "
                f"sigma_small={self.sigma_small}")
