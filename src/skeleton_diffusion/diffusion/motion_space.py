"""Motion-space diffusion for MDM: the layout, the two motion representations, the diffusion builder and the
training loss with MDM's geometric terms.

Layout: a motion ``[B, T, J, C]`` becomes the diffusion's ``x [B, J, T*C]`` (nodes = joints, features = frames ×
xyz), so the nonisotropic core's covariance Σ_N (skeleton adjacency over the J joints) correlates the noise
across joints (``noise=nonisotropic``), and ``noise=isotropic`` is the white special case (official MDM).

Representations (model space, all lengths ÷ ``pose_box_size``):

* ``hmp`` (``condition=past``): the SkeletonDiffusion pipeline's input space — every frame minus its root, root
  dropped (``data.transforms.to_input_space``); J = skeleton nodes.
* ``trajectory`` (``condition=action|text``): the canonical windows of :mod:`skeleton_diffusion.data.windows.generation`
  (frame-0 root at the ground-plane origin, facing +Y, heights kept), root kept, so the global trajectory is
  generated; J = skeleton joints.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["motion_to_x", "x_to_motion", "to_trajectory_space", "trajectory_to_metres", "joint_adjacency",
           "build_motion_diffusion", "masked_mse", "position_loss", "velocity_loss", "foot_contact_loss",
           "foot_indices", "mdm_loss"]

NOISE_TYPES = ("isotropic", "nonisotropic")


# ------------------------------------------------------------------ layout and representations
def motion_to_x(motion: Tensor) -> Tensor:
    """``[B, T, J, C]`` -> ``[B, J, T*C]``."""
    if motion.dim() != 4:
        raise InputError(f"motion must be [B, T, J, C], got {tuple(motion.shape)}")
    b, t, j, c = motion.shape
    return motion.permute(0, 2, 1, 3).reshape(b, j, t * c)


def x_to_motion(x: Tensor, num_feats: int = 3) -> Tensor:
    """``[B, J, T*C]`` -> ``[B, T, J, C]``."""
    if x.dim() != 3 or x.shape[-1] % num_feats:
        raise InputError(f"x must be [B, J, T*{num_feats}], got {tuple(x.shape)}")
    b, j, f = x.shape
    return x.view(b, j, f // num_feats, num_feats).permute(0, 2, 1, 3)


def to_trajectory_space(world: Tensor, pose_box_size: float) -> Tensor:
    """Canonical windows ``[B, T, J, 3]`` metres (:func:`skeleton_diffusion.data.windows.generation.canonicalize_motion`:
    frame-0 root at the ground-plane origin, height kept) -> ``world / pose_box_size`` (root kept)."""
    return world / float(pose_box_size)


def trajectory_to_metres(x: Tensor, pose_box_size: float) -> Tensor:
    """Inverse of :func:`to_trajectory_space`: ``x * pose_box_size``."""
    return x * float(pose_box_size)


def joint_adjacency(num_joints: int, limbs: Sequence[tuple[int, int]]) -> Tensor:
    """Symmetric 0/1 adjacency ``[J, J]`` of a limb list (zero diagonal)."""
    a = torch.zeros(num_joints, num_joints)
    for i, k in limbs:
        a[i, k] = a[k, i] = 1.0
    return a


def build_motion_diffusion(model_cfg: Mapping[str, Any], network: nn.Module, skeleton: Any, *,
                           representation: str, cov_cfg: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """The Gaussian diffusion (1000-step cosine, x₀ objective by default) around an MDM ``network``.

    ``model_cfg.noise``: ``isotropic`` -> :class:`IsotropicGaussianDiffusion`; ``nonisotropic`` ->
    :class:`NonisotropicGaussianDiffusion` with Σ_N from the skeleton graph over the network's J nodes
    (node adjacency for ``hmp``, joint adjacency incl. root for ``trajectory``; ``cov_matrix`` config honoured
    for ``hmp``)."""
    from skeleton_diffusion.diffusion.covariance import build_correlation
    from skeleton_diffusion.diffusion.isotropic import IsotropicGaussianDiffusion
    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
    from skeleton_diffusion.diffusion.covariance import get_cov_from_corr

    noise = str(model_cfg.get("noise", "isotropic"))
    if noise not in NOISE_TYPES:
        raise ConfigError(f"model.noise must be one of {NOISE_TYPES}, got {noise!r}")
    if str(model_cfg.get("diffusion_objective", "pred_x0")) != "pred_x0":
        raise ConfigError("MDM predicts the clean motion: model.diffusion_objective must be 'pred_x0'")
    kw: dict[str, Any] = dict(
        diffusion_timesteps=int(model_cfg.get("diffusion_timesteps", 1000)), diffusion_objective="pred_x0",
        beta_schedule=str(model_cfg.get("beta_schedule", "cosine")),
        latent_size=int(network.out_dim), diffusion_conditioning=False, clip_denoised=False,
        loss_reduction_type="mse", loss_weighting="ones")
    if noise == "isotropic":
        return IsotropicGaussianDiffusion(network, **kw)
    if representation == "hmp":
        corr = build_correlation(cov_cfg, skeleton)
    else:
        corr = joint_adjacency(skeleton.num_joints, skeleton.limbs)
    if corr.shape[0] != network.channels:
        raise ConfigError(f"covariance over {corr.shape[0]} nodes but the network has {network.channels}")
    sigma, lam, u = get_cov_from_corr(corr, if_sigma_n_scale=bool(model_cfg.get("if_sigma_n_scale", True)),
                                      sigma_n_scale=str(model_cfg.get("sigma_n_scale", "spectral")))
    return NonisotropicGaussianDiffusion(sigma, lam, u, network, mahalanobis_loss=False,
                                         gamma_scheduler=str(model_cfg.get("gamma_scheduler", "cosine")), **kw)


# ------------------------------------------------------------------ losses (pure)
def _expand_mask(mask: Optional[Tensor], like: Tensor) -> Tensor:
    """``mask [B, T]`` -> broadcastable to ``like [B, T, ...]`` (all ones when None)."""
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device).view(
            *like.shape[:2], *([1] * (like.dim() - 2)))
    return mask.to(like.dtype).view(*mask.shape, *([1] * (like.dim() - 2)))


def masked_mse(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Per-sample mean squared error over valid frames: ``pred/target [B, T, ...]``, ``mask [B, T]`` -> ``[B]``
    (sum of squared errors at valid frames ÷ number of valid entries, the official ``masked_l2``)."""
    m = _expand_mask(mask, pred)
    sq = (pred - target) ** 2 * m
    per_frame = sq[0, 0].numel()
    count = m.reshape(m.shape[0], -1).sum(1) * per_frame
    return sq.reshape(sq.shape[0], -1).sum(1) / count.clamp(min=1.0)


def _pair_mask(mask: Optional[Tensor]) -> Optional[Tensor]:
    return None if mask is None else (mask[:, 1:].bool() & mask[:, :-1].bool())


def position_loss(pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Joint-position MSE ``[B]`` for positions ``[B, T, J, 3]`` metres."""
    return masked_mse(pred, gt, mask)


def velocity_loss(pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Joint-velocity MSE ``[B]`` (frame differences) for positions ``[B, T, J, 3]``."""
    return masked_mse(pred[:, 1:] - pred[:, :-1], gt[:, 1:] - gt[:, :-1], _pair_mask(mask))


def foot_contact_loss(pred: Tensor, gt: Tensor, feet: Sequence[int], threshold: float = 0.01,
                      mask: Optional[Tensor] = None) -> Tensor:
    """MDM's foot-contact term ``[B]``: where a GT foot joint moves at most ``threshold`` metres per frame
    (contact), the predicted foot velocity is pushed to zero; elsewhere it is not penalised."""
    if len(feet) == 0:
        raise ConfigError("foot_contact_loss needs at least one foot joint index")
    idx = torch.as_tensor(list(feet), dtype=torch.long, device=pred.device)
    gt_v = gt[:, 1:, idx] - gt[:, :-1, idx]                            # [B, T-1, F, 3]
    pred_v = pred[:, 1:, idx] - pred[:, :-1, idx]
    contact = (gt_v.norm(dim=-1, keepdim=True) <= threshold).to(pred.dtype)
    return masked_mse(pred_v * contact, torch.zeros_like(pred_v), _pair_mask(mask))


def foot_indices(joint_names: Sequence[str]) -> list[int]:
    """Indices of ankle / heel / foot joints (by name) in ``joint_names``."""
    keys = ("heel", "foot", "ankle", "toe")
    return [i for i, n in enumerate(joint_names) if any(k in n.lower() for k in keys) and "hand" not in n.lower()]


def mdm_loss(diffusion: nn.Module, x0: Tensor, *, x_cond: Optional[Tensor] = None, t: Optional[Tensor] = None,
             noise: Optional[Tensor] = None, frame_mask: Optional[Tensor] = None, pose_box_size: float = 1.0,
             lambda_pos: float = 0.0, lambda_vel: float = 0.0, lambda_fc: float = 0.0,
             feet: Sequence[int] = (), fc_threshold: float = 0.01, add_root: bool = False,
             generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """MDM training loss on ``x0 [B, J, T*C]`` (model space) -> dict of per-batch scalars:
    ``simple`` (x₀ MSE), ``pos``, ``vel``, ``fc`` (computed only when their λ > 0) and ``loss`` (weighted sum).

    Positions for the geometric terms come from the representation: ``x * pose_box_size`` metres, with a zero
    root prepended when ``add_root`` (the ``hmp`` representation drops it); ``feet`` index those joints."""
    from skeleton_diffusion.diffusion.samplers import white_noise

    b = x0.shape[0]
    if t is None:
        t = diffusion.sample_timesteps(b, x0.device, generator)
    if noise is None:
        noise = white_noise(tuple(x0.shape), x0, generator)
    x_t = diffusion.q_sample(x0, t, noise)
    out = diffusion.activation(diffusion.model(x_t, t, None, x_cond, frame_mask=frame_mask))
    pred_m, gt_m = x_to_motion(out), x_to_motion(x0)
    terms = {"simple": masked_mse(pred_m, gt_m, frame_mask).mean()}
    total = terms["simple"]
    if lambda_pos > 0 or lambda_vel > 0 or lambda_fc > 0:
        pred_p, gt_p = pred_m * pose_box_size, gt_m * pose_box_size
        if add_root:
            pred_p = torch.cat([torch.zeros_like(pred_p[..., :1, :]), pred_p], dim=-2)
            gt_p = torch.cat([torch.zeros_like(gt_p[..., :1, :]), gt_p], dim=-2)
        for name, lam, fn in (("pos", lambda_pos, lambda: position_loss(pred_p, gt_p, frame_mask)),
                              ("vel", lambda_vel, lambda: velocity_loss(pred_p, gt_p, frame_mask)),
                              ("fc", lambda_fc, lambda: foot_contact_loss(pred_p, gt_p, feet, fc_threshold,
                                                                          frame_mask))):
            if lam > 0:
                terms[name] = fn().mean()
                total = total + float(lam) * terms[name]
    terms["loss"] = total
    return terms
