"""CrossDiff's 3D->2D projection and 2D features as officially computed (``prepare/project.py``).

* :func:`official_project`: rotate the HumanML3D joints (Y up, metres) by one of four views (0°, 90°, 180°,
  270° about Y), translate by ``cam_t = (0, -1, -1/tan_fov - 10)``, perspective divide ``-xy / (z·tan_fov)``
  with ``tan_fov = tan(5°)`` (a 10° field of view), then subtract the first frame's root.
* :func:`motion2d_features`: the official ``process_file``: ``[T, J, 2]`` -> ``[T-1, 2 + 2(J-1) + 2(J-1) + 2J
  + 4]`` (134 for HumanML3D's 22 joints): root position relative to frame 0 (frames 1..T-1), root-relative
  joints (frames 0..T-2), 2D bone directions relative to the parent bone (frames 0..T-2), velocities, and foot
  contacts (squared 2D displacement below ``feet_thre``). Computed in float64; returned in the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = [
    "CAM_T",
    "KIT_KINEMATIC_CHAIN",
    "OFFICIAL_VIEWS",
    "T2M_KINEMATIC_CHAIN",
    "TAN_FOV",
    "motion2d_features",
    "official_project",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

#: the four official camera rotations (applied as ``R @ joint``)
OFFICIAL_VIEWS = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
                           [[-1, 0, 0], [0, 1, 0], [0, 0, -1]], [[0, 0, -1], [0, 1, 0], [1, 0, 0]]], dtype=np.float64)
FOV_DEGREES = 10.0
TAN_FOV = math.tan(math.radians(FOV_DEGREES / 2.0))
CAM_T = np.array([0.0, -1.0, -1.0 / TAN_FOV - 10.0])
T2M_KINEMATIC_CHAIN = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21),
                       (9, 13, 16, 18, 20))
KIT_KINEMATIC_CHAIN = ((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10))
#: (right, left) foot joints per joint count
FOOT_JOINTS = {22: ((8, 11), (7, 10)), 21: ((14, 15), (19, 20))}


def _as_numpy(x: np.ndarray | torch.Tensor, what: str, last: int) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 3 or arr.shape[-1] != last or arr.shape[0] < 1:
        raise InputError(f"{what} must be [T, J, {last}], got shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{what} must be floating point, got {arr.dtype}")
    return arr


def _like(out: np.ndarray, ref: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    if isinstance(ref, torch.Tensor):
        return torch.from_numpy(out).to(device=ref.device, dtype=ref.dtype)
    return out.astype(np.asarray(ref).dtype, copy=False)


def official_project(joints3d: Array, view: int, *, cam_t: Sequence[float] | None = None,
                     tan_fov: float = TAN_FOV) -> Array:
    """``joints3d [T, J, 3]`` (HumanML3D order, Y up, metres; numpy or torch) -> ``[T, J, 2]`` image-plane
    coordinates of official view ``view`` (0..3), relative to the first frame's root (module doc)."""
    arr = _as_numpy(joints3d, "joints3d", 3).astype(np.float64)
    if int(view) != view or not 0 <= int(view) < len(OFFICIAL_VIEWS):
        raise InputError(f"view must be an integer in 0..{len(OFFICIAL_VIEWS) - 1}, got {view!r}")
    t = CAM_T if cam_t is None else np.asarray(cam_t, dtype=np.float64)
    cam = np.einsum("tjk,pk->tjp", arr, OFFICIAL_VIEWS[int(view)]) + t
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = -cam[..., :2] / (cam[..., 2:] * float(tan_fov))
    return _like(uv - uv[:1, :1], joints3d)


def _unit_rotations(v: np.ndarray) -> np.ndarray:
    """2x2 rotations taking +x to the direction of ``v [T, 2]`` (official ``get_matrix_from_vec``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        v = v / np.sqrt(np.sum(v ** 2, axis=-1, keepdims=True))
    return np.stack([v[:, 0], -v[:, 1], v[:, 1], v[:, 0]], axis=1).reshape(-1, 2, 2)


def motion2d_features(joints2d: Array, *, feet_thre: float = 0.002,
                      kinematic_chain: Sequence[Sequence[int]] | None = None) -> Array:
    """Official ``process_file``: ``joints2d [T, J, 2]`` (T >= 2; J = 22 HumanML3D or 21 KIT-ML) ->
    ``[T-1, 134]`` (HumanML3D) features, layout in the module doc. A zero-length 2D bone gives NaN, as
    officially."""
    pos = _as_numpy(joints2d, "joints2d", 2).astype(np.float64)
    T, J = pos.shape[:2]
    if T < 2:
        raise InputError(f"motion2d_features needs at least 2 frames, got {T}")
    if kinematic_chain is None:
        if J not in (22, 21):
            raise InputError(f"motion2d_features: no official kinematic chain for {J} joints (22 HumanML3D, "
                             "21 KIT-ML); pass kinematic_chain=")
        kinematic_chain = T2M_KINEMATIC_CHAIN if J == 22 else KIT_KINEMATIC_CHAIN
    if J not in FOOT_JOINTS:
        raise InputError(f"motion2d_features: no official foot joints for {J} joints (22 or 21)")
    fid_r, fid_l = (list(f) for f in FOOT_JOINTS[J])
    pos = pos - pos[:1, :1]
    step = pos[1:] - pos[:-1]  # [T-1, J, 2]
    sq = (step ** 2).sum(-1)
    feet_l = (sq[:, fid_l] < feet_thre).astype(np.float64)
    feet_r = (sq[:, fid_r] < feet_thre).astype(np.float64)
    rot = np.zeros((T, J - 1, 2, 2))
    for chain in kinematic_chain:
        parent_rot = np.broadcast_to(np.eye(2), (T, 2, 2))
        for a, b in zip(chain[:-1], chain[1:]):
            glob = _unit_rotations(pos[:, b] - pos[:, a])
            rot[:, b - 1] = np.einsum("bji,bjk->bik", parent_rot, glob)  # parent^T @ bone rotation
            parent_rot = glob
    bone_dirs = rot[:, :, 0].reshape(T, -1)
    root = pos[1:, 0] - pos[:1, 0]
    local = (pos - pos[:, :1])[:, 1:].reshape(T, -1)
    feats = np.concatenate([root, local[:-1], bone_dirs[:-1], step.reshape(T - 1, -1), feet_l, feet_r], axis=-1)
    return _like(feats, joints2d)
