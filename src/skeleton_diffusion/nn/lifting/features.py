"""Tensor layouts shared by the lifting models.

Windows are ``[B, F, J, C]`` (F frames, J joints with the root first). The diffusion works on the J-1 non-root
**nodes** (3D is root-relative, the root is identically 0) with the frames folded into the features:
``[B, N, F*C]`` (frame-major inside a node), the layout of the diffusion core (``[batch, nodes, features]``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import InputError

__all__ = ["to_nodes", "from_nodes", "condition_features", "COND_PER_FRAME"]

#: Per node and frame: 2D relative to the root (2), root 2D (2), visibility mask (1).
COND_PER_FRAME = 5


def to_nodes(pose: Tensor) -> Tensor:
    """``[B, F, J, C]`` -> ``[B, J-1, F*C]`` (root dropped)."""
    if pose.dim() != 4:
        raise InputError(f"expected a window [B, F, J, C], got {tuple(pose.shape)}")
    b, f, j, c = pose.shape
    return pose[:, :, 1:].permute(0, 2, 1, 3).reshape(b, j - 1, f * c)


def from_nodes(x: Tensor, frames: int, channels: int = 3) -> Tensor:
    """``[B, N, F*C]`` -> ``[B, F, N+1, C]`` with a zero root prepended."""
    b, n, d = x.shape
    if d != frames * channels:
        raise InputError(f"node features {d} != frames {frames} x channels {channels}")
    body = x.reshape(b, n, frames, channels).permute(0, 2, 1, 3)
    return torch.cat([body.new_zeros(b, frames, 1, channels), body], dim=2)


def condition_features(pose_2d: Tensor, mask: Tensor) -> Tensor:
    """Per-node condition ``[B, J-1, F*5]`` from 2D ``[B, F, J, 2]`` and visibility ``mask [B, F, J]``:
    (2D - root 2D) x mask, root 2D, mask. Missing joints are explicit through the mask channel."""
    if pose_2d.dim() != 4 or mask.shape != pose_2d.shape[:3]:
        raise InputError(f"pose_2d [B, F, J, 2] and mask [B, F, J] expected, got {tuple(pose_2d.shape)} and "
                         f"{tuple(mask.shape)}")
    m = mask.unsqueeze(-1).to(pose_2d)
    root = pose_2d[:, :, :1] * m[:, :, :1]
    rel = (pose_2d - root) * m
    feats = torch.cat([rel, root.expand_as(rel), m], dim=-1)          # [B, F, J, 5]
    return to_nodes(feats)
