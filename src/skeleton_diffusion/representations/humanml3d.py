"""HumanML3D's 263-d motion features from joint positions, and back (``recover_from_ric``).

Follows the procedure of the official ``motion_representation`` notebook (EricGuo5513/HumanML3D), re-written:
input joint positions ``[T, 22, 3]`` in HumanML3D's frame (Y up, 20 fps, SMPL/AMASS joint order; from AMASS
Z-up positions use :func:`amass_zup_to_humanml3d`), then

1. (optional) *uniform skeleton*: inverse kinematics, then forward kinematics with the target bone offsets
   (the official target is clip ``000021``); the root trajectory is scaled by the ratio of leg lengths;
2. put on the floor (lowest joint of the clip at y = 0), frame-0 root at the xz origin;
3. rotate about Y so that frame 0 faces +Z (facing = Y x ((rhip - lhip) + (rshoulder - lshoulder)));
4. foot contacts: a foot joint (ankles 7/8, feet 10/11) is in contact at frame t when its squared displacement
   to t+1 is below ``feet_thre`` (0.002 m^2);
5. root rotation ``r_rot`` per frame from inverse kinematics with a Gaussian-smoothed (sigma 20 frames)
   forward direction; frame 0 is the identity. Note the official quirk kept here: inside the inverse
   kinematics the hip indices are unpacked swapped, so that facing uses (lhip - rhip) + (rshoulder - lshoulder);
6. features per frame t < T-1 (so ``T-1`` rows), in this order (263 = 4 + 63 + 126 + 66 + 4 for J = 22):
   root angular velocity about Y (``arcsin`` of the y part of ``r_rot[t+1] r_rot[t]^-1``, 1), root linear
   velocity in xz expressed in the root frame (2), root height (1), ``ric``: joints relative to the root in
   xz, rotated by ``r_rot`` ((J-1)*3), ``rot``: local joint rotations as continuous 6-D (first two columns of
   the rotation matrix) from inverse kinematics ((J-1)*6), local joint velocities rotated by ``r_rot[t]``
   (J*3), foot contacts (left ankle, left foot, right ankle, right foot; 4).

Quaternions are ``(w, x, y, z)``. :func:`recover_from_ric` integrates the root rotation / velocity and places
the ``ric`` joints: it inverts :func:`positions_to_features` exactly (up to float error) for the first T-1
frames as long as the heading does not turn by more than 180 degrees from frame 0 (official limitation).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from skeleton_diffusion.utils.errors import DataFormatError

__all__ = [
    "T2M_RAW_OFFSETS", "T2M_KINEMATIC_CHAIN", "T2M_PARENTS", "FACE_JOINTS", "FEATURE_SLICES", "feature_dim",
    "qmul", "qinv", "qrot", "qbetween", "quat_to_matrix", "amass_zup_to_humanml3d", "skeleton_offsets",
    "inverse_kinematics", "forward_kinematics", "uniform_skeleton", "positions_to_features",
    "recover_root_rot_pos", "recover_from_ric", "feature_mean_std",
]  # fmt: skip

#: Unit directions of each joint's bone in the rest pose (official ``t2m_raw_offsets``).
T2M_RAW_OFFSETS = np.array(
    [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0],
     [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0],
     [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]], dtype=np.float64)  # fmt: skip
#: Kinematic chains (right leg, left leg, spine, right arm, left arm), official order.
T2M_KINEMATIC_CHAIN = (
    (0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20),
)  # fmt: skip
T2M_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
#: ``(r_hip, l_hip, r_shoulder, l_shoulder)`` as passed officially.
FACE_JOINTS = (2, 1, 17, 16)
_FOOT_L, _FOOT_R = (7, 10), (8, 11)
_LEG = (5, 8)  # lower-leg joints whose offsets give the leg length (uniform skeleton scale)


def feature_dim(joints_num: int = 22) -> int:
    """``4 + (J-1)*3 + (J-1)*6 + J*3 + 4`` (263 for 22 joints)."""
    return 8 + (joints_num - 1) * 9 + joints_num * 3


def FEATURE_SLICES(joints_num: int = 22) -> dict[str, slice]:  # noqa: N802 - table-like helper
    """Named slices of the feature vector."""
    a = 4 + (joints_num - 1) * 3
    b = a + (joints_num - 1) * 6
    c = b + joints_num * 3
    return {"root_rot_vel": slice(0, 1), "root_lin_vel": slice(1, 3), "root_y": slice(3, 4), "ric": slice(4, a),
            "rot": slice(a, b), "local_vel": slice(b, c), "foot_contact": slice(c, c + 4)}  # fmt: skip


# ----------------------------------------------------------------------------------------------- quaternions
def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product ``q r`` of ``[..., 4]`` quaternions (w, x, y, z)."""
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)  # fmt: skip


def qinv(q: np.ndarray) -> np.ndarray:
    """Conjugate (inverse of a unit quaternion)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v [..., 3]`` by unit quaternions ``q [..., 4]`` (broadcast)."""
    qv = q[..., 1:]
    uv = np.cross(qv, v)
    return v + 2.0 * (q[..., :1] * uv + np.cross(qv, uv))


def qbetween(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion rotating ``v0`` onto the direction of ``v1`` (``[..., 3]`` each)."""
    w = np.sqrt((v0**2).sum(-1, keepdims=True) * (v1**2).sum(-1, keepdims=True)) + (v0 * v1).sum(-1, keepdims=True)
    q = np.concatenate([w, np.cross(v0, v1)], -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """``[..., 4]`` -> rotation matrices ``[..., 3, 3]``."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    s = 2.0 / (q * q).sum(-1)
    m = np.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
                  s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
                  s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1)  # fmt: skip
    return m.reshape(q.shape[:-1] + (3, 3))


def amass_zup_to_humanml3d(positions: np.ndarray) -> np.ndarray:
    """AMASS-style Z-up positions ``[..., 3]`` -> HumanML3D's Y-up frame: swap y and z, then negate x (the
    official raw-pose processing; a proper rotation)."""
    p = np.asarray(positions)[..., [0, 2, 1]].copy()
    p[..., 0] *= -1
    return p


# ----------------------------------------------------------------------------------------------- kinematics
def skeleton_offsets(joints0: np.ndarray) -> np.ndarray:
    """Bone offsets ``[J, 3]`` of one pose ``[J, 3]``: each joint's raw direction scaled by its bone length."""
    out = T2M_RAW_OFFSETS.copy()
    for j in range(1, len(T2M_PARENTS)):
        out[j] = np.linalg.norm(joints0[j] - joints0[T2M_PARENTS[j]]) * T2M_RAW_OFFSETS[j]
    return out


def _forward_dirs(joints: np.ndarray, r_hip: int, l_hip: int, sdr_r: int, sdr_l: int, smooth: bool) -> np.ndarray:
    across = (joints[:, r_hip] - joints[:, l_hip]) + (joints[:, sdr_r] - joints[:, sdr_l])
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    fwd = np.cross(np.array([0.0, 1.0, 0.0]), across)
    if smooth:
        fwd = gaussian_filter1d(fwd, 20, axis=0, mode="nearest")
    return fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)


def inverse_kinematics(joints: np.ndarray, smooth_forward: bool = False) -> np.ndarray:
    """Local joint rotations ``[T, J, 4]`` of positions ``[T, J, 3]`` (root: heading that maps the forward
    direction onto +Z; frame-0 root = identity; official hip-index quirk, see module doc)."""
    r_hip, l_hip, sdr_r, sdr_l = FACE_JOINTS
    fwd = _forward_dirs(joints, l_hip, r_hip, sdr_r, sdr_l, smooth_forward)  # official unpacking order
    root = qbetween(fwd, np.broadcast_to([0.0, 0.0, 1.0], fwd.shape))
    root[0] = [1.0, 0.0, 0.0, 0.0]
    quat = np.zeros(joints.shape[:-1] + (4,))
    quat[:, 0] = root
    for chain in T2M_KINEMATIC_CHAIN:
        rot = root
        for a, b in zip(chain[:-1], chain[1:]):
            u = np.broadcast_to(T2M_RAW_OFFSETS[b], (len(joints), 3))
            v = joints[:, b] - joints[:, a]
            v = v / np.linalg.norm(v, axis=-1, keepdims=True)
            local = qmul(qinv(rot), qbetween(u, v))
            quat[:, b] = local
            rot = qmul(rot, local)
    return quat


def forward_kinematics(quat: np.ndarray, root_pos: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Positions ``[T, J, 3]`` from local rotations ``[T, J, 4]``, root positions ``[T, 3]``, offsets ``[J, 3]``."""
    out = np.zeros(quat.shape[:-1] + (3,))
    out[:, 0] = root_pos
    for chain in T2M_KINEMATIC_CHAIN:
        rot = quat[:, 0]
        for a, b in zip(chain[:-1], chain[1:]):
            rot = qmul(rot, quat[:, b])
            out[:, b] = qrot(rot, np.broadcast_to(offsets[b], (len(quat), 3))) + out[:, a]
    return out


def uniform_skeleton(positions: np.ndarray, target_offsets: np.ndarray) -> np.ndarray:
    """Retarget ``[T, J, 3]`` to the bone offsets ``target_offsets [J, 3]`` (root scaled by the leg ratio)."""
    src = skeleton_offsets(positions[0])
    leg = lambda o: np.abs(o[_LEG[0]]).max() + np.abs(o[_LEG[1]]).max()  # noqa: E731
    scale = leg(target_offsets) / leg(src)
    return forward_kinematics(inverse_kinematics(positions), positions[:, 0] * scale, target_offsets)


# ----------------------------------------------------------------------------------------------- features
def positions_to_features(
    positions: np.ndarray, feet_thre: float = 0.002, target_offsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions ``[T, 22, 3]`` (HumanML3D frame, metres) -> ``(features [T-1, 263], global positions
    [T, 22, 3])`` (the floor-, origin- and facing-normalised positions the features describe)."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (22, 3) or len(p) < 2:
        raise DataFormatError(f"HumanML3D features need positions [T >= 2, 22, 3]; got {p.shape}.")
    if not np.isfinite(p).all():
        raise DataFormatError("positions contain NaN or inf.")
    if target_offsets is not None:
        p = uniform_skeleton(p, np.asarray(target_offsets, dtype=np.float64))
    p = p.copy()
    p[..., 1] -= p[..., 1].min()
    p = p - p[0, 0] * np.array([1.0, 0.0, 1.0])
    r_hip, l_hip, sdr_r, sdr_l = FACE_JOINTS
    fwd0 = _forward_dirs(p[:1], r_hip, l_hip, sdr_r, sdr_l, False)
    q0 = qbetween(fwd0, np.array([[0.0, 0.0, 1.0]]))
    glob = qrot(np.broadcast_to(q0, p.shape[:-1] + (4,)), p)
    # foot contacts
    contacts = []
    for foot in (_FOOT_L, _FOOT_R):
        d = ((glob[1:, list(foot)] - glob[:-1, list(foot)]) ** 2).sum(-1)
        contacts.append((d < feet_thre).astype(np.float64))
    # rotations, root heading, velocities
    quat = inverse_kinematics(glob, smooth_forward=True)
    mats = quat_to_matrix(quat)
    cont6d = np.concatenate([mats[..., 0], mats[..., 1]], -1)
    r_rot = quat[:, 0].copy()
    velocity = qrot(r_rot[1:], glob[1:, 0] - glob[:-1, 0])
    r_vel = qmul(r_rot[1:], qinv(r_rot[:-1]))
    ric = glob.copy()
    ric[..., 0] -= glob[:, :1, 0]
    ric[..., 2] -= glob[:, :1, 2]
    ric = qrot(np.repeat(r_rot[:, None], ric.shape[1], axis=1), ric)
    t = len(glob)
    root = np.concatenate([np.arcsin(np.clip(r_vel[:, 2:3], -1, 1)), velocity[:, [0, 2]], ric[:-1, 0, 1:2]], -1)
    local_vel = qrot(np.repeat(r_rot[:-1, None], glob.shape[1], axis=1), glob[1:] - glob[:-1]).reshape(t - 1, -1)
    feats = np.concatenate([root, ric[:-1, 1:].reshape(t - 1, -1), cont6d[:-1, 1:].reshape(t - 1, -1), local_vel,
                            contacts[0], contacts[1]], -1)  # fmt: skip
    return feats.astype(np.float32), glob.astype(np.float32)


def _q_torch(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    qv = q[..., 1:].expand(v.shape)
    uv = torch.cross(qv, v, dim=-1)
    return v + 2.0 * (q[..., :1] * uv + torch.cross(qv, uv, dim=-1))


def recover_root_rot_pos(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``features [..., T, D]`` -> root heading quaternions ``[..., T, 4]`` and root positions ``[..., T, 3]``."""
    ang = torch.zeros_like(data[..., 0])
    ang[..., 1:] = data[..., :-1, 0]
    ang = torch.cumsum(ang, dim=-1)
    quat = torch.zeros(data.shape[:-1] + (4,), dtype=data.dtype, device=data.device)
    quat[..., 0], quat[..., 2] = torch.cos(ang), torch.sin(ang)
    pos = torch.zeros(data.shape[:-1] + (3,), dtype=data.dtype, device=data.device)
    pos[..., 1:, 0], pos[..., 1:, 2] = data[..., :-1, 1], data[..., :-1, 2]
    inv = quat * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=data.dtype, device=data.device)
    pos = torch.cumsum(_q_torch(inv, pos), dim=-2)
    pos[..., 1] = data[..., 3]
    return quat, pos


def recover_from_ric(data: torch.Tensor | np.ndarray, joints_num: int = 22) -> torch.Tensor:
    """``features [..., T, D]`` -> joint positions ``[..., T, joints_num, 3]`` (HumanML3D frame)."""
    data = torch.as_tensor(data)
    if data.shape[-1] < 4 + (joints_num - 1) * 3:
        raise DataFormatError(f"features of size {data.shape[-1]} are too short for {joints_num} joints.")
    quat, root = recover_root_rot_pos(data)
    local = data[..., 4 : 4 + (joints_num - 1) * 3].reshape(data.shape[:-1] + (joints_num - 1, 3))
    inv = (quat * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=data.dtype, device=data.device))[..., None, :]
    local = _q_torch(inv, local)
    local = local + torch.stack([root[..., 0], torch.zeros_like(root[..., 0]), root[..., 2]], -1)[..., None, :]
    return torch.cat([root[..., None, :], local], dim=-2)


def feature_mean_std(features: list[np.ndarray], joints_num: int = 22) -> tuple[np.ndarray, np.ndarray]:
    """Official ``Mean.npy``/``Std.npy``: per-dimension mean over all frames; std averaged inside each group
    (root rot vel, root lin vel, root y, ric, rot, local vel, foot contacts)."""
    data = np.concatenate([f for f in features if not np.isnan(f).any()], axis=0)
    mean, std = data.mean(0), data.std(0)
    for sl in FEATURE_SLICES(joints_num).values():
        std[sl] = std[sl].mean()
    return mean.astype(np.float32), std.astype(np.float32)
