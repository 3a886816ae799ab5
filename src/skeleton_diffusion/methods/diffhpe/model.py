"""DiffHPE's ``LiftingDiffusionModel``: conditioning + LiftCTGCN, ε-prediction loss and ancestral sampler.

Layouts follow the official code: poses ``[B, 3, J, L]`` (metres, root-relative camera frame), 2D
``[B, 2, J, L]`` (screen-normalised, occluded joints set to 0). ``conditioning`` is ``raw`` (DiffHPE-2D:
``cat(noisy, 2D)``, 5 channels) or ``pt_mixste`` (DiffHPE-Wrapper, :mod:`.mixste`). State-dict keys are the
official ones (``diffmodel.*``, ``conditioning.*``).

Official behaviour and its switches (defaults = official):

* anisotropic noise ``n ← sqrt(err_var) ⊙ n + err_ave`` per joint × coordinate (a mean shift included) for the
  training noise and the *start* of sampling; the per-step sampler noise stays white
  (``anisotropic_step_noise=True`` scales it by ``sqrt(err_var)`` instead);
* regularisers on x̂₀ use the bones before the shoulder rewiring (``bones_rewired=True`` uses the rewired ones);
  the official call crashes without ``mode``: here ``mode='average'`` is bound (bone-length variance over time,
  squared left/right difference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from skeleton_diffusion.methods.diffhpe.mixste import PretrainedMixSTECond
from skeleton_diffusion.methods.diffhpe.network import LiftCTGCN
from skeleton_diffusion.methods.diffhpe.schedule import diffhpe_noise_schedule
from skeleton_diffusion.methods.diffhpe.skeleton import (
    H36M17_JOINTS_GROUP,
    H36M17_PARENTS,
    adjacency_from_parents,
    official_bone_sides,
    official_bones,
)
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["LiftingDiffusionModel", "UVConcat", "bone_lengths_bcjl", "side_symmetry", "time_consistency"]


class UVConcat(nn.Module):
    """DiffHPE-2D conditioning: ``cat([noisy [B,3,J,L], data_2d [B,2,J,L]], 1) -> [B,5,J,L]``."""

    out_dim = 5
    mix_mode = "concat"

    def forward(self, noisy: Tensor, data_2d: Tensor) -> Tensor:
        return torch.cat([noisy, data_2d], dim=1)


def bone_lengths_bcjl(x: Tensor, bones: tuple[tuple[int, int], ...]) -> Tensor:
    """``x [B, 3, J, L]`` -> bone lengths ``[B, n_bones, L]`` of the ``(joint, parent)`` bones."""
    idx = torch.as_tensor(bones, dtype=torch.long, device=x.device)
    return ((x[:, :, idx[:, 0], :] - x[:, :, idx[:, 1], :]) ** 2).sum(dim=1).sqrt()


def time_consistency(x: Tensor, bones: tuple[tuple[int, int], ...], mode: str = "average") -> Tensor:
    """DiffHPE ``segments_time_consistency``: bone-length variance (``average``/``sum``) or unbiased std
    (``std``) over time, aggregated over batch and bones."""
    lengths = bone_lengths_bcjl(x, bones)
    if mode == "average":
        return lengths.var(dim=2).mean()
    if mode == "sum":
        return lengths.var(dim=2).sum()
    if mode == "std":
        return lengths.std(dim=2).mean()
    raise ConfigError(f"time-consistency mode must be 'average', 'sum' or 'std', got {mode!r}")


def side_symmetry(x: Tensor, bones: tuple[tuple[int, int], ...], left: tuple[int, ...], right: tuple[int, ...],
                  mode: str = "average", squared: bool = True) -> Tensor:
    """DiffHPE ``sagittal_symmetry``: (squared) |left − right| bone-length difference, mean (or sum)."""
    lengths = bone_lengths_bcjl(x, bones)
    diff = (lengths[:, list(left), :] - lengths[:, list(right), :]).abs()
    if squared:
        diff = diff ** 2.0
    if mode == "average":
        return diff.mean()
    if mode == "sum":
        return diff.sum()
    raise ConfigError(f"symmetry mode must be 'average' or 'sum', got {mode!r}")


class LiftingDiffusionModel(nn.Module):
    """The official model (see module docstring). ``config``: the official ``diffusion`` settings (``layers``,
    ``channels``, ``diffusion_embedding_dim``, ``num_steps``, ``schedule``, ``beta_start``, ``beta_end``,
    ``use_nonlocal``, ``conditioning``, ``p_dropout``, and for ``pt_mixste`` ``cond_channels``, ``cond_layers``,
    ``cond_nheads``, ``cond_encode_3d``)."""

    def __init__(self, config: Mapping[str, Any], seq_len: int, num_joints: int = 17, *,
                 bones_rewired: bool = False, anisotropic_step_noise: bool = False) -> None:
        super().__init__()
        if num_joints != 17:
            raise ConfigError(f"DiffHPE's official skeleton is the 17-joint Human3.6M one, got {num_joints} joints")
        c = dict(config)
        self.config = c
        self.seq_len = int(seq_len)
        self.num_steps = int(c.get("num_steps", 50))
        self.bones = official_bones(rewired=bones_rewired)
        self.bones_left, self.bones_right = official_bone_sides(rewired=bones_rewired)
        self.anisotropic_step_noise = bool(anisotropic_step_noise)
        cond = str(c.get("conditioning", "raw"))
        if cond == "raw":
            if str(c.get("cond_mix_mode", "concat")) != "concat":
                raise ConfigError("only cond_mix_mode 'concat' is supported for the raw DiffHPE conditioning")
            self.conditioning: nn.Module = UVConcat()
        elif cond == "pt_mixste":
            if c.get("cond_keep_pt_head", False):
                raise ConfigError("cond_keep_pt_head=True is not supported (the official wrapper drops the head)")
            self.conditioning = PretrainedMixSTECond(
                self.seq_len, num_joints, int(c.get("cond_channels", 64)), int(c.get("cond_layers", 8)),
                int(c.get("cond_nheads", 8)), encode_3d=bool(c.get("cond_encode_3d", True)),
                mix_mode=str(c.get("cond_mix_mode", "concat")))
        else:
            raise ConfigError(f"DiffHPE conditioning must be 'raw' or 'pt_mixste', got {cond!r}")
        p_drop = c.get("p_dropout")
        self.diffmodel = LiftCTGCN(
            channels=int(c["channels"]), layers=int(c["layers"]),
            diffusion_embedding_dim=int(c["diffusion_embedding_dim"]), num_steps=self.num_steps,
            seq_len=self.seq_len, adj=adjacency_from_parents(H36M17_PARENTS),
            p_dropout=None if p_drop is None else float(p_drop),
            joints_group=H36M17_JOINTS_GROUP if c.get("use_nonlocal", True) else None,
            n_input_coords=int(self.conditioning.out_dim), n_output_coords=3)
        sched = diffhpe_noise_schedule(str(c.get("schedule", "cosine")), float(c.get("beta_start", 1e-4)),
                                       float(c.get("beta_end", 0.5)), self.num_steps)
        self.beta, self.alpha, self.alpha_hat, self.sigma = (sched[k] for k in ("beta", "alpha", "alpha_hat", "sigma"))
        self.register_buffer("alpha_torch", self.alpha.float(), persistent=False)

    # ------------------------------------------------------------------------------------------ building blocks
    def condition(self, noisy: Tensor, data_2d: Tensor) -> Tensor:
        """``noisy [B,3,J,L]``, ``data_2d [B,2,J,L]`` -> denoiser input ``[B, C_in, J, L]``."""
        return self.conditioning(noisy, data_2d)

    def denoiser(self, x: Tensor, t: Tensor) -> Tensor:
        """ε̂ ``[B,3,J,L]`` of the conditioned input ``x [B, C_in, J, L]`` at integer steps ``t [B]`` or ``[1]``."""
        t = torch.as_tensor(t, device=x.device).long().reshape(-1)
        return self.diffmodel(x, t)

    @staticmethod
    def shape_noise(noise: Tensor, err_var: Tensor | None, err_mean: Tensor | None) -> Tensor:
        """``sqrt(err_var)[j, c] · n + err_mean[j, c]`` on ``noise [B, 3, J, L]`` (identity when both are None)."""
        if err_var is None and err_mean is None:
            return noise
        j = noise.shape[2]
        out = noise
        if err_var is not None:
            std = torch.as_tensor(err_var, dtype=noise.dtype, device=noise.device).reshape(j, 3).sqrt()
            out = out * std.t()[None, :, :, None]
        if err_mean is not None:
            mean = torch.as_tensor(err_mean, dtype=noise.dtype, device=noise.device).reshape(j, 3)
            out = out + mean.t()[None, :, :, None]
        return out

    # --------------------------------------------------------------------------------------------------- loss
    def calc_loss(self, data_2d: Tensor, data_3d: Tensor, t: Tensor, noise: Tensor,
                  err_var: Tensor | None = None, err_mean: Tensor | None = None,
                  reg_time: float = 0.0, reg_side: float = 0.0) -> Tensor:
        """Official training loss for given steps ``t [B]`` and white ``noise [B,3,J,L]``: MSE(ε, ε̂), blended
        with the regularisers (``mode='average'``) as ``(1 − rt − rs)·mse + rt·var_t + rs·sym``."""
        if data_3d.shape != noise.shape or data_3d.dim() != 4 or data_3d.shape[1] != 3:
            raise InputError(f"data_3d and noise must be [B, 3, J, L], got {tuple(data_3d.shape)} and "
                             f"{tuple(noise.shape)}")
        t = torch.as_tensor(t, device=data_3d.device).long().reshape(-1)
        noise = self.shape_noise(noise, err_var, err_mean)
        a = self.alpha_torch.to(data_3d.device)[t.long()].view(-1, 1, 1, 1)
        noisy = a ** 0.5 * data_3d + (1.0 - a) ** 0.5 * noise
        predicted = self.denoiser(self.condition(noisy, data_2d), t)
        loss = ((noise - predicted) ** 2).mean()
        if reg_time > 0.0 or reg_side > 0.0:
            x0 = (noisy - (1.0 - a) ** 0.5 * predicted) / a ** 0.5
            var_t = time_consistency(x0, self.bones, "average")
            sym = side_symmetry(x0, self.bones, self.bones_left, self.bones_right, "average", squared=True)
            loss = (1.0 - reg_time - reg_side) * loss + reg_time * var_t + reg_side * sym
        return loss

    # --------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def impute(self, data_2d: Tensor, n_samples: int, draws: Tensor | None = None,
               err_var: Tensor | None = None, err_mean: Tensor | None = None,
               starting_pose: Tensor | None = None, n_steps: int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Official ancestral sampler -> ``[B, S, 3, J, L]``. ``draws [S, n_steps, B,3,J,L]``: ``draws[s, 0]`` =
        white start noise (shaped when ``err_var``/``err_mean`` are given; ignored with ``starting_pose``),
        ``draws[s, k]`` = noise added at step ``t = n_steps − k``. With ``starting_pose`` the ``n_steps − 1``
        step draws alone are also accepted. ``draws=None`` draws them from ``generator``."""
        b, d, j, length = data_2d.shape
        if d != 2:
            raise InputError(f"data_2d must be [B, 2, J, L], got {tuple(data_2d.shape)}")
        n_steps = self.num_steps if n_steps is None else int(n_steps)
        if not 1 <= n_steps <= self.num_steps:
            raise InputError(f"n_steps must be in [1, {self.num_steps}], got {n_steps}")
        shape = (b, 3, j, length)
        offset = 0
        if draws is not None:
            if draws.dim() == 5:
                draws = draws.unsqueeze(0)
            if draws.shape[0] != n_samples or tuple(draws.shape[2:]) != shape:
                raise InputError(f"draws must be [S={n_samples}, n_steps={n_steps}, {b}, 3, {j}, {length}], "
                                 f"got {tuple(draws.shape)}")
            if draws.shape[1] == n_steps - 1 and starting_pose is not None:
                offset = -1
            elif draws.shape[1] != n_steps:
                raise InputError(f"draws must hold n_steps={n_steps} entries per sample, got {draws.shape[1]}")
        if starting_pose is not None and tuple(starting_pose.shape) != shape:
            raise InputError(f"starting_pose must be {list(shape)}, got {tuple(starting_pose.shape)}")

        if draws is None:   # the official order of torch draws: per sample, start noise then every step
            draws = torch.stack([torch.stack([
                torch.randn(shape, generator=generator, dtype=data_2d.dtype)
                if (k > 0 or starting_pose is None) else torch.zeros(shape, dtype=data_2d.dtype)
                for k in range(n_steps)]) for _ in range(n_samples)])
        draws = draws.to(data_2d.device, data_2d.dtype)
        # the S samples run as one batch [S*B] (eval mode: every sample is processed independently)
        cond_2d = data_2d.repeat(n_samples, 1, 1, 1)

        def step_draw(k: int) -> Tensor:
            return draws[:, k + offset].reshape(n_samples * b, 3, j, length)

        step_std = None
        if self.anisotropic_step_noise and err_var is not None:
            step_std = torch.as_tensor(err_var, dtype=data_2d.dtype, device=data_2d.device).reshape(j, 3).sqrt()
            step_std = step_std.t()[None, :, :, None]
        if starting_pose is None:
            x = self.shape_noise(step_draw(0), err_var, err_mean)
        else:
            x = starting_pose.to(data_2d.device, data_2d.dtype).repeat(n_samples, 1, 1, 1)
        mean = x
        for t in range(n_steps - 1, -1, -1):
            eps = self.denoiser(self.condition(x, cond_2d), torch.tensor([t], device=data_2d.device))
            coeff1 = 1.0 / float(self.alpha_hat[t]) ** 0.5
            coeff2 = (1.0 - float(self.alpha_hat[t])) / (1.0 - float(self.alpha[t])) ** 0.5
            mean = coeff1 * (x - coeff2 * eps)
            if t > 0:
                z = step_draw(n_steps - t)
                if step_std is not None:
                    z = z * step_std
                x = mean + float(self.sigma[t - 1]) * z
        return mean.reshape(n_samples, b, 3, j, length).transpose(0, 1).contiguous()
