"""MDM's official training loss (``GaussianDiffusion.training_losses``, x₀ target, MSE) in our layout.

* ``rot_mse`` = Σ mask·(x̂₀ − x₀)² / (Σ mask · J·C + 1e-8) per sample (official ``masked_l2``);
* ``vel_mse`` (``lambda_vel``): frame differences of the *raw representation* without its last row (the rot6d
  root-translation row; on HumanML3D the official code drops feature 262, a foot-contact channel, because
  ``data_rep`` never reaches the diffusion — reproduced by default, ``vel_drop_last_row=False`` keeps all rows),
  masked with ``mask[..., 1:]``;
* ``rcxyz_mse`` / ``fc`` (``lambda_rcxyz`` / ``lambda_fc``, rot6d data): through SMPL forward kinematics, given
  as ``to_xyz(x [B, J, T*C]) -> [B, joints, 3, T]`` (the user's SMPL layer).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import InputError

__all__ = ["masked_l2", "official_training_losses", "mdm_loss"]

#: SMPL joint indices of the official foot-contact term: L_Ankle, L_Foot, R_Ankle, R_Foot
FC_JOINTS = (7, 10, 8, 11)


def masked_l2(a: Tensor, b: Tensor, mask: Tensor, epsilon: float = 1e-8) -> Tensor:
    """Official ``masked_l2`` for ``a, b [B, J, C, T]`` and ``mask [B, 1, 1, T]`` -> ``[B]``."""
    loss = ((a - b) ** 2 * mask.to(a.dtype)).flatten(1).sum(1)
    n_entries = a.shape[1] * (a.shape[2] if a.dim() > 3 else 1)
    return loss / (mask.flatten(1).sum(1) * n_entries + epsilon)


def _official(x: Tensor, nfeats: int) -> Tensor:
    b, j, f = x.shape
    return x.reshape(b, j, f // nfeats, nfeats).permute(0, 1, 3, 2)


def official_training_losses(diffusion, x0: Tensor, t: Tensor, *, x_cond: Any = None, noise: Optional[Tensor] = None,
                             frame_mask: Optional[Tensor] = None, lambda_vel: Optional[float] = None,
                             lambda_rcxyz: Optional[float] = None, lambda_fc: Optional[float] = None,
                             to_xyz: Optional[Callable[[Tensor], Tensor]] = None, vel_drop_last_row: bool = True,
                             fc_threshold: float = 0.01,
                             generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """Per-sample official loss terms ``[B]`` (``rot_mse``, ``vel_mse``, ``rcxyz_mse``, ``fc``, ``loss``) for
    ``x0 [B, J, T*C]``, ``t [B]``. λ default to the diffusion's ``lambda_*`` attributes."""
    net = diffusion.model
    nfeats = int(getattr(net, "nfeats", 1))
    lv = float(getattr(diffusion, "lambda_vel", 0.0) if lambda_vel is None else lambda_vel)
    lr = float(getattr(diffusion, "lambda_rcxyz", 0.0) if lambda_rcxyz is None else lambda_rcxyz)
    lf = float(getattr(diffusion, "lambda_fc", 0.0) if lambda_fc is None else lambda_fc)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = diffusion.q_sample(x0, t, noise)
    tm = diffusion.model_timesteps(t) if hasattr(diffusion, "model_timesteps") else t
    out = net(x_t, tm, None, x_cond, frame_mask=frame_mask)
    b, frames = x0.shape[0], x0.shape[-1] // nfeats
    mask = (torch.ones(b, frames, dtype=torch.bool, device=x0.device) if frame_mask is None
            else frame_mask.to(device=x0.device, dtype=torch.bool))
    if tuple(mask.shape) != (b, frames):
        raise InputError(f"frame_mask must be [B={b}, T={frames}], got {tuple(mask.shape)}")
    mask = mask.view(b, 1, 1, frames)
    target, pred = _official(x0, nfeats), _official(out, nfeats)
    terms = {"rot_mse": masked_l2(target, pred, mask)}
    loss = terms["rot_mse"]
    if lr > 0 or lf > 0:
        if to_xyz is None:
            raise InputError("lambda_rcxyz / lambda_fc need SMPL forward kinematics: pass to_xyz "
                             "(x [B, J, T*C] -> joints [B, N, 3, T])")
        t_xyz, p_xyz = to_xyz(x0), to_xyz(out)
        if lr > 0:
            terms["rcxyz_mse"] = masked_l2(t_xyz, p_xyz, mask)
            loss = loss + lr * terms["rcxyz_mse"]
        if lf > 0:
            idx = list(FC_JOINTS)
            gt_v = torch.linalg.norm(t_xyz[:, idx, :, 1:] - t_xyz[:, idx, :, :-1], dim=2)
            contact = (gt_v <= fc_threshold).unsqueeze(2)
            pred_v = p_xyz[:, idx, :, 1:] - p_xyz[:, idx, :, :-1]
            pred_v = torch.where(contact, pred_v, torch.zeros_like(pred_v))
            terms["fc"] = masked_l2(pred_v, torch.zeros_like(pred_v), mask[..., 1:])
            loss = loss + lf * terms["fc"]
    if lv > 0:
        rows = slice(None, -1) if vel_drop_last_row else slice(None)
        tv = (target[..., 1:] - target[..., :-1])[:, rows]
        pv = (pred[..., 1:] - pred[..., :-1])[:, rows]
        terms["vel_mse"] = masked_l2(tv, pv, mask[..., 1:])
        loss = loss + lv * terms["vel_mse"]
    terms["loss"] = loss
    return terms


def mdm_loss(diffusion, x0: Tensor, *, x_cond: Any = None, t: Optional[Tensor] = None,
             noise: Optional[Tensor] = None, frame_mask: Optional[Tensor] = None, lambda_vel: Optional[float] = None,
             **kwargs: Any) -> dict[str, Tensor]:
    """Batch means of the official terms: ``{'simple': rot_mse, 'vel': vel_mse (when λ_vel > 0), ..., 'loss'}``."""
    if t is None:
        gen = kwargs.get("generator")
        t = torch.randint(0, diffusion.num_timesteps, (x0.shape[0],), generator=gen).to(x0.device)
    terms = official_training_losses(diffusion, x0, t, x_cond=x_cond, noise=noise, frame_mask=frame_mask,
                                     lambda_vel=lambda_vel, **kwargs)
    names = {"rot_mse": "simple", "vel_mse": "vel", "rcxyz_mse": "rcxyz", "fc": "fc", "loss": "loss"}
    return {names[k]: v.mean() for k, v in terms.items()}
