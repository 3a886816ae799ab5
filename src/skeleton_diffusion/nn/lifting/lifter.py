"""Lifting methods on the shared diffusion core: supervised, DiffPose, DiffHPE (standalone / refiner).

All three share one interface (``training_loss`` and ``predict``) and the same tensor layout
(:mod:`.features`). The diffusion is :class:`~skeleton_diffusion.diffusion.NonisotropicGaussianDiffusion` on
``[B, N = J-1 nodes, F*3]`` with one of three noise geometries (``noise``):

* ``isotropic``: white noise (the official methods);
* ``diagonal``: DiffHPE's anisotropic option: independent per-joint noise with variance proportional to the
  per-joint 2D error variance of the data (``joint_noise_std``; mean variance 1);
* ``skeleton``: our nonisotropic noise, correlated along the skeleton: Σ_N from ``get_cov_from_corr`` over the
  node adjacency (``frob`` scaling, mean eigenvalue 1). ``skeleton_covariance_type`` ``anisotropic`` (default:
  every step's noise has covariance β_t Σ_N) or ``skeleton-diffusion`` (SkeletonDiffusion's schedule, which mixes
  white and Σ_N noise with γ_t = β_t; nearly white for the small DiffPose β).

DiffPose: the reverse process starts from an **initial 3D pose distribution** instead of pure noise: the prior
(supervised lifter, trained jointly) gives the initial pose from the 2D keypoints, and the per-joint noise of the
forward process at ``start_t`` (shaped by ``noise``, e.g. ``diagonal`` = per-joint 2D uncertainty) spreads it:
``x_{start_t} = q_sample(prior(2D), start_t)``; then ``test_steps`` deterministic DDIM steps (official: 51 train
steps, linear β 1e-4 -> 1e-3, 2 test steps). DiffHPE: CSDI-style conditional diffusion of 27-frame windows
from noise (standalone: conditioned on 2D; refiner: also on the prior's 3D prediction), with the bone-length
time-variance and left/right symmetry regularisers on x̂₀.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.nn.lifting.csdi import CSDIDenoiser
from skeleton_diffusion.nn.lifting.denoiser import GraphDenoiser
from skeleton_diffusion.nn.lifting.features import COND_PER_FRAME, condition_features, from_nodes, to_nodes
from skeleton_diffusion.nn.lifting.supervised import ResidualMLPLifter

__all__ = ["METHODS", "NOISE_OPTIONS", "DiffusionLifter", "build_lifter", "linear_betas", "noise_covariance"]

METHODS = ("supervised", "diffpose", "diffhpe")
NOISE_OPTIONS = ("isotropic", "diagonal", "skeleton")


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> list[float]:
    """β linearly spaced from ``beta_start`` to ``beta_end`` (DiffPose: 51 steps, 1e-4 -> 1e-3)."""
    return torch.linspace(beta_start, beta_end, int(timesteps), dtype=torch.float64).tolist()


def noise_covariance(noise: str, node_edges: Sequence[tuple[int, int]], num_nodes: int,
                     joint_noise_std: Optional[Tensor] = None, skeleton_covariance_type: str = "anisotropic"
                     ) -> tuple[Tensor, Tensor, Tensor, str]:
    """``(Σ_N, Λ_N, U, diffusion_covariance_type)`` of a noise option (see module docstring)."""
    if noise == "isotropic":
        eye = torch.eye(num_nodes)
        return eye.clone(), torch.ones(num_nodes), eye, "isotropic"
    if noise == "diagonal":
        std = torch.ones(num_nodes) if joint_noise_std is None else torch.as_tensor(joint_noise_std).float()
        if std.shape != (num_nodes,):
            raise ConfigError(f"joint_noise_std must have {num_nodes} node values, got {tuple(std.shape)}")
        var = std.clamp_min(1e-8) ** 2
        var = var / var.mean() if float(var.max() - var.min()) > 1e-12 else torch.ones(num_nodes)
        var = var.clamp_min(0.05)
        return torch.diag(var), var, torch.eye(num_nodes), "anisotropic"
    if noise == "skeleton":
        adj = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
        for i, j in node_edges:
            adj[i, j] = adj[j, i] = 1.0
        sigma, lam, u = get_cov_from_corr(adj, sigma_n_scale="frob")
        return sigma.float(), lam.float(), u.float(), skeleton_covariance_type
    raise ConfigError(f"noise must be one of {NOISE_OPTIONS}, got {noise!r}")


class DiffusionLifter(nn.Module):
    """One lifting model; see the module docstring. ``predict`` returns ``[B, K, F, J, 3]`` (metres, root 0)."""

    def __init__(self, method: str, frames: int, prior: Optional[ResidualMLPLifter],
                 diffusion: Optional[NonisotropicGaussianDiffusion], *, mode: str = "standalone", start_t: int = 24,
                 test_steps: int = 2, limbs: Sequence[tuple[int, int]] = (), sym_pairs: Sequence[tuple[int, int]] = (),
                 reg_bone_time: float = 0.0, reg_symmetry: float = 0.0, prior_loss_weight: float = 1.0) -> None:
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
        if mode not in ("standalone", "refiner"):
            raise ConfigError(f"mode must be 'standalone' or 'refiner', got {mode!r}")
        if method != "supervised" and diffusion is None:
            raise ConfigError(f"method {method} needs a diffusion")
        if (method in ("supervised", "diffpose") or mode == "refiner") and prior is None:
            raise ConfigError(f"method {method} (mode {mode}) needs a prior (supervised lifter)")
        self.method, self.frames, self.mode = method, int(frames), mode
        self.prior, self.diffusion = prior, diffusion
        self.start_t, self.test_steps = int(start_t), int(test_steps)
        if method == "diffpose" and diffusion is not None and not 0 <= self.start_t < diffusion.num_timesteps:
            raise ConfigError(f"start_t must be in [0, {diffusion.num_timesteps - 1}], got {start_t}")
        self.limbs, self.sym_pairs = [tuple(x) for x in limbs], [tuple(x) for x in sym_pairs]
        self.reg_bone_time, self.reg_symmetry = float(reg_bone_time), float(reg_symmetry)
        self.prior_loss_weight = float(prior_loss_weight)

    # ------------------------------------------------------------------------------------------- pieces
    def _denoiser_cond(self, cond: Tensor, prior_x: Optional[Tensor]) -> Tensor:
        if self.method == "diffhpe" and self.mode == "refiner":
            return torch.cat([cond, prior_x], dim=-1)
        return cond

    def _prior(self, cond: Tensor) -> Optional[Tensor]:
        return self.prior(cond) if self.prior is not None else None

    def _regularisers(self, x0_nodes: Tensor) -> Tensor:
        pose = from_nodes(x0_nodes, self.frames)                     # [B, F, J, 3]
        reg = x0_nodes.new_zeros(())
        if self.limbs and (self.reg_bone_time > 0 and self.frames > 1):
            from skeleton_diffusion.metrics.lifting import bone_lengths

            reg = reg + self.reg_bone_time * bone_lengths(pose, self.limbs).var(dim=1).mean()
        if self.limbs and self.sym_pairs and self.reg_symmetry > 0:
            from skeleton_diffusion.metrics.lifting import bone_asymmetry

            reg = reg + self.reg_symmetry * bone_asymmetry(pose, self.limbs, self.sym_pairs).pow(2).mean()
        return reg

    # ---------------------------------------------------------------------------------------- training
    def training_loss(self, pose_2d: Tensor, mask: Tensor, pose_3d: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss and logs for a batch ``pose_2d [B,F,J,2]``, ``mask [B,F,J]``, ``pose_3d [B,F,J,3]``."""
        cond = condition_features(pose_2d, mask)
        target = to_nodes(pose_3d - pose_3d[:, :, :1])
        logs: dict[str, Tensor] = {}
        loss = target.new_zeros(())
        prior_x = self._prior(cond)
        if prior_x is not None:
            prior_err = from_nodes(prior_x - target, self.frames).norm(dim=-1).mean()
            loss = loss + self.prior_loss_weight * prior_err
            logs["prior_mpjpe"] = prior_err.detach()
        if self.method == "supervised":
            return loss, logs
        assert self.diffusion is not None
        out = self.diffusion(target, x_cond=self._denoiser_cond(cond, None if prior_x is None else prior_x.detach()))
        diff = out.weighted_mean()
        logs["diffusion"] = diff.detach()
        loss = loss + diff
        if self.reg_bone_time > 0 or self.reg_symmetry > 0:
            x0 = out.model_out if self.diffusion.objective == "pred_x0" else None
            if x0 is None:
                raise ConfigError("the bone regularisers need diffusion_objective=pred_x0")
            reg = self._regularisers(x0)
            logs["regularisers"] = reg.detach()
            loss = loss + reg
        return loss, logs

    # ---------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def _ddim_from(self, x: Tensor, t_start: int, steps: int, x_cond: Tensor) -> Tensor:
        """Deterministic (η = 0) DDIM from ``x`` at ``t_start`` down to x̂₀ in ``steps`` evaluations, in the
        eigenbasis of the noise (same update as the core's ``ddim_sample``)."""
        d = self.diffusion
        assert d is not None
        u, lam_bar = d.eigen_frame()
        ac = d.alphas_cumprod
        times = sorted({int(round(t_start * (1 - i / steps))) for i in range(steps)}, reverse=True)
        for t, t_next in zip(times, times[1:] + [-1]):
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            x0 = d.predict_x_start(x, tt, None, x_cond=x_cond)
            if t_next < 0:
                return x0
            eps = x - ac[t].sqrt() * x0
            eps = (eps if u is None else u.mT @ eps) / lam_bar[t].unsqueeze(-1).sqrt()
            step = lam_bar[t_next].unsqueeze(-1).sqrt() * eps
            x = ac[t_next].sqrt() * x0 + (step if u is None else u @ step)
        return x

    @torch.no_grad()
    def predict(self, pose_2d: Tensor, mask: Tensor, num_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """``K = num_samples`` hypotheses ``[B, K, F, J, 3]`` (the supervised lifter repeats its one answer)."""
        cond = condition_features(pose_2d, mask)
        b, k = cond.shape[0], int(num_samples)
        prior_x = self._prior(cond)
        if self.method == "supervised":
            assert prior_x is not None
            x = prior_x.repeat_interleave(k, dim=0)
        else:
            d = self.diffusion
            assert d is not None
            x_cond = self._denoiser_cond(cond, prior_x).repeat_interleave(k, dim=0)
            shape = (b * k, d.channels, d.seq_length)
            if self.method == "diffpose":
                assert prior_x is not None
                t = torch.full((b * k,), self.start_t, device=cond.device, dtype=torch.long)
                noise = torch.randn(shape, generator=generator, device=generator.device if generator else cond.device)
                x_t = d.q_sample(prior_x.repeat_interleave(k, dim=0), t, noise.to(cond))
                x = self._ddim_from(x_t, self.start_t, self.test_steps, x_cond)
            else:
                start = "white" if d.diffusion_covariance_type == "isotropic" else "marginal"
                sampler = "ddim" if self.test_steps < d.num_timesteps else "ancestral"
                x = d.sample(b * k, x_cond, generator=generator, sampler=sampler, sampling_timesteps=self.test_steps,
                             eta=0.0 if sampler == "ddim" else None, start_noise_type=start, clip_denoised=False)
        pose = from_nodes(x, self.frames)
        return pose.reshape(b, k, *pose.shape[1:])


def build_lifter(method: str, *, node_edges: Sequence[tuple[int, int]], num_joints: int, frames: int = 1,
                 limbs: Sequence[tuple[int, int]] = (), sym_pairs: Sequence[tuple[int, int]] = (),
                 joint_noise_std: Optional[Sequence[float]] = None, noise: str = "isotropic",
                 skeleton_covariance_type: str = "anisotropic", mode: str = "standalone",
                 prior: Optional[dict[str, Any]] = None, denoiser: Optional[dict[str, Any]] = None,
                 diffusion: Optional[dict[str, Any]] = None, start_t: int = 24, test_steps: int = 2,
                 reg_bone_time: float = 0.0, reg_symmetry: float = 0.0, prior_loss_weight: float = 1.0,
                 denoiser_type: str = "graph") -> DiffusionLifter:
    """Build a :class:`DiffusionLifter` from config values (``configs/method/*.yaml``, key ``model.lifter``).

    ``diffusion``: ``timesteps``, ``beta_schedule`` (a core schedule name, or ``linear_range`` with
    ``beta_start``/``beta_end``), and any :class:`~skeleton_diffusion.diffusion.NonisotropicGaussianDiffusion`
    keyword (``diffusion_objective``, ``loss_weighting``, ``mahalanobis_loss``, ...). ``denoiser_type``:
    ``graph`` (:class:`GraphDenoiser`, frames folded into node features) | ``csdi`` (:class:`CSDIDenoiser`,
    temporal + joint attention); ``denoiser`` holds that class's keyword arguments."""
    if denoiser_type not in ("graph", "csdi"):
        raise ConfigError(f"model.lifter.denoiser_type must be 'graph' or 'csdi', got {denoiser_type!r}")
    n = int(num_joints) - 1
    use_prior = method in ("supervised", "diffpose") or mode == "refiner"
    prior_net = ResidualMLPLifter(n, frames, COND_PER_FRAME, **dict(prior or {})) if use_prior else None
    diff = None
    if method != "supervised":
        dk = dict(diffusion or {})
        timesteps = int(dk.pop("timesteps", 51))
        schedule = dk.pop("beta_schedule", "linear_range")
        b0, b1 = float(dk.pop("beta_start", 1e-4)), float(dk.pop("beta_end", 1e-3))
        betas = linear_betas(timesteps, b0, b1) if schedule == "linear_range" else schedule
        cond_dim = frames * COND_PER_FRAME + (frames * 3 if (method == "diffhpe" and mode == "refiner") else 0)
        if denoiser_type == "csdi":
            splits = (COND_PER_FRAME, 3) if (method == "diffhpe" and mode == "refiner") else (COND_PER_FRAME,)
            net = CSDIDenoiser(n, frames, splits, node_edges=node_edges, **dict(denoiser or {}))
        else:
            net = GraphDenoiser(n, node_edges, frames * 3, cond_dim, **dict(denoiser or {}))
        std = None if joint_noise_std is None else torch.as_tensor(list(joint_noise_std), dtype=torch.float32)[1:]
        sigma, lam, u, cov_type = noise_covariance(noise, node_edges, n, std, skeleton_covariance_type)
        dk.setdefault("diffusion_objective", "pred_noise" if method == "diffpose" else "pred_x0")
        dk.setdefault("clip_denoised", False)
        dk.setdefault("mahalanobis_loss", False)
        dk.setdefault("loss_weighting", "ones")
        dk.setdefault("loss_reduction_type", "mse")
        diff = NonisotropicGaussianDiffusion(sigma, lam, u, net, diffusion_timesteps=timesteps, beta_schedule=betas,
                                             diffusion_covariance_type=cov_type, diffusion_conditioning=True,
                                             latent_size=frames * 3, **dk)
    return DiffusionLifter(method, frames, prior_net, diff, mode=mode, start_t=start_t, test_steps=test_steps,
                           limbs=limbs, sym_pairs=sym_pairs, reg_bone_time=reg_bone_time,
                           reg_symmetry=reg_symmetry, prior_loss_weight=prior_loss_weight)
