"""SMPL joints of rot6d motions (HumanAct12 / UESTC ``[B, 25, T*6]``) for MDM's geometric losses.

What the official ``Rotation2xyz(..., jointstype='smpl', vertstrans=False)`` computes: rows 0..23 are the
6-D rotations of the 24 SMPL joints (row 0 = global orientation), row 24 the root translation (unused here);
β = 0, so the rest joints are ``J_regressor @ v_template`` and the 24 "smpl" joints are their forward kinematics
(SMPL's ``J_transformed``); the root joint is subtracted. The SMPL model file is the user's: an ``.npz`` with
``v_template [V, 3]``, ``J_regressor [24, V]`` and ``kintree_table [2, 24]`` (e.g. smplx's ``SMPL_NEUTRAL.npz``;
loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import DataFormatError, InputError

__all__ = ["rotation_6d_to_matrix", "SMPLJoints"]


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """Zhou et al. 6-D rotation ``[..., 6]`` -> matrix ``[..., 3, 3]`` (Gram–Schmidt; rows b1, b2, b3)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = nn.functional.normalize(a1, dim=-1)
    b2 = nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack((b1, b2, torch.cross(b1, b2, dim=-1)), dim=-2)


class SMPLJoints(nn.Module):
    """Forward kinematics of the 24 SMPL joints: ``x [B, 25, T*6]`` (rot6d) -> ``[B, 24, 3, T]`` (root at 0)."""

    def __init__(self, rest_joints: Tensor, parents: Tensor) -> None:
        super().__init__()
        if rest_joints.dim() != 2 or rest_joints.shape[1] != 3 or parents.shape[0] != rest_joints.shape[0]:
            raise InputError(f"rest_joints must be [N, 3] and parents [N], got {tuple(rest_joints.shape)} / "
                             f"{tuple(parents.shape)}")
        self.register_buffer("rest_joints", rest_joints.to(torch.float32))
        self.parents = [int(p) for p in parents.tolist()]

    @classmethod
    def from_model_file(cls, path: Union[str, Path]) -> "SMPLJoints":
        """Rest joints (β = 0) and kinematic tree of an SMPL ``.npz`` model file."""
        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
            v, reg, tree = data["v_template"], data["J_regressor"], data["kintree_table"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataFormatError(f"'{path}' is not an SMPL .npz with v_template [V, 3], J_regressor [24, V] and "
                                  f"kintree_table [2, 24] ({exc}); convert the SMPL .pkl to .npz first") from exc
        if reg.shape[1] != v.shape[0]:
            raise DataFormatError(f"'{path}': J_regressor {reg.shape} does not match v_template {v.shape}")
        parents = torch.as_tensor(tree[0].astype(np.int64))
        parents[0] = -1
        return cls(torch.as_tensor(reg @ v, dtype=torch.float32), parents)

    def forward(self, x: Tensor) -> Tensor:
        n = self.rest_joints.shape[0]
        if x.dim() != 3 or x.shape[1] != n + 1 or x.shape[2] % 6:
            raise InputError(f"x must be rot6d [B, {n + 1}, T*6], got {tuple(x.shape)}")
        b, frames = x.shape[0], x.shape[2] // 6
        rot = rotation_6d_to_matrix(x[:, :n].reshape(b, n, frames, 6).permute(0, 2, 1, 3))   # [B, T, N, 3, 3]
        J = self.rest_joints.to(x)
        world_r, world_t = [], []
        for i, p in enumerate(self.parents):
            if p < 0:
                world_r.append(rot[:, :, i])
                world_t.append(J[i].expand(b, frames, 3))
            else:
                world_r.append(world_r[p] @ rot[:, :, i])
                world_t.append(world_t[p] + (world_r[p] @ (J[i] - J[p]).view(3, 1)).squeeze(-1))
        joints = torch.stack(world_t, dim=2)                                                  # [B, T, N, 3]
        joints = joints - joints[:, :, :1]
        return joints.permute(0, 2, 3, 1).contiguous()
