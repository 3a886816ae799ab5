"""Joint forward kinematics for SMPL-family body models (SMPL, SMPL+H, "Extended SMPL+H" of AMASS).

Only the *joints* are computed, no skinning: this is exactly what the official pipeline takes from
``human_body_prior``'s ``BodyModel(...).Jtr``, because in linear blend skinning the joint locations depend on
the rest shape only (pose blend shapes move vertices, never the regressed joints):

1. shaped rest joints ``J = J_regressor @ (v_template + shapedirs[..., :num_betas] @ betas)``  ``[J, 3]``;
2. per-joint rotations from axis-angle (Rodrigues) ``R_j``;
3. kinematic chain over ``kintree_table``: ``G_0 = [R_0 | J_0]``, ``G_j = G_parent(j) @ [R_j | J_j - J_parent(j)]``;
   the posed joint position is the translation of ``G_j``;
4. plus the global translation ``trans``.

The body-model npz keys are the official ones (``v_template``, ``shapedirs``, ``J_regressor``, ``kintree_table``;
``weights``, ``posedirs``, ``f`` are present in real files but not needed for joints). Units are those of the
model (metres for SMPL-family models). Computation runs in float64 by default (result cast to float32 by the
callers); the device is any torch device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from skeleton_diffusion.data.safe_npz import npz_members, read_npz_object
from skeleton_diffusion.utils.errors import DataFormatError

__all__ = ["JointBodyModel", "load_body_model", "rodrigues", "forward_kinematics", "parents_from_kintree"]

REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "kintree_table")


def parents_from_kintree(kintree_table: np.ndarray, source: str = "kintree_table") -> np.ndarray:
    """Parent index per joint from a ``[2, J]`` kintree table (row 0 parents, row 1 joint ids); root -> -1.

    Real files store the root's parent as ``4294967295`` (uint32 -1) or ``-1``. Parents must precede children.
    """
    kt = np.asarray(kintree_table)
    if kt.ndim != 2 or kt.shape[0] != 2:
        raise DataFormatError(f"{source}: expected kintree_table of shape [2, J], found {kt.shape}")
    num_joints = kt.shape[1]
    parents = np.full(num_joints, -1, dtype=np.int64)
    for col in range(num_joints):
        parent, child = int(kt[0, col]), int(kt[1, col])
        if not 0 <= child < num_joints:
            raise DataFormatError(f"{source}: joint id {child} out of range [0, {num_joints})")
        parents[child] = parent if 0 <= parent < num_joints else -1
    roots = np.flatnonzero(parents < 0)
    if roots.tolist() != [0]:
        raise DataFormatError(f"{source}: expected a single root at joint 0, found roots {roots.tolist()}")
    bad = [j for j in range(1, num_joints) if parents[j] >= j]
    if bad:
        raise DataFormatError(f"{source}: parents must precede children; joints {bad} violate this")
    return parents


def _dense(array: np.ndarray, key: str, source: str) -> np.ndarray:
    """Accept dense arrays and pickled scipy sparse matrices (some SMPL exports store J_regressor sparse)."""
    if array.dtype == object:
        obj = array.item() if array.shape == () else array
        if hasattr(obj, "toarray"):
            return np.asarray(obj.toarray(), dtype=np.float64)
        raise DataFormatError(f"{source}: key '{key}' holds an object of type {type(obj).__name__}, expected an array")
    return np.asarray(array, dtype=np.float64)


@dataclass(frozen=True)
class JointBodyModel:
    """The joint part of a SMPL-family body model, pre-contracted with the joint regressor.

    joint_template: ``[J, 3]`` = ``J_regressor @ v_template``; joint_shapedirs: ``[J, 3, B]`` =
    ``J_regressor @ shapedirs[..., :B]``; parents: ``[J]`` (root -1).
    """

    joint_template: np.ndarray
    joint_shapedirs: np.ndarray
    parents: np.ndarray
    source: str = "<memory>"

    @property
    def num_joints(self) -> int:
        return int(self.joint_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.joint_shapedirs.shape[2])

    def rest_joints(self, betas: np.ndarray | None = None) -> np.ndarray:
        """Shaped rest-pose joints ``[J, 3]``; ``betas`` ``[B]`` (exactly ``num_betas`` values, or None = mean shape)."""
        if betas is None:
            return self.joint_template.copy()
        betas = np.asarray(betas, dtype=np.float64).reshape(-1)
        if betas.shape[0] != self.num_betas:
            raise DataFormatError(
                f"{self.source}: got {betas.shape[0]} betas, the body model was loaded with num_betas={self.num_betas}"
            )
        return self.joint_template + self.joint_shapedirs @ betas

    def forward(
        self,
        poses: np.ndarray,
        trans: np.ndarray | None = None,
        betas: np.ndarray | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        chunk_size: int = 8192,
    ) -> np.ndarray:
        """Posed joint positions ``[T, J, 3]`` (float64 numpy) from axis-angle ``poses [T, 3*J]``, ``trans [T, 3]``.

        ``poses`` must hold exactly one axis-angle triple per model joint (root first, SMPL+H: 156 values).
        """
        poses = np.asarray(poses)
        if poses.ndim != 2 or poses.shape[1] != 3 * self.num_joints:
            raise DataFormatError(
                f"{self.source}: poses must have shape [T, {3 * self.num_joints}] for a {self.num_joints}-joint model, "
                f"found {poses.shape}"
            )
        num_frames = poses.shape[0]
        if trans is None:
            trans = np.zeros((num_frames, 3))
        trans = np.asarray(trans)
        if trans.shape != (num_frames, 3):
            raise DataFormatError(f"{self.source}: trans must have shape [{num_frames}, 3], found {trans.shape}")
        rest = torch.as_tensor(self.rest_joints(betas), dtype=dtype, device=device)
        out = np.empty((num_frames, self.num_joints, 3), dtype=np.float64)
        for start in range(0, num_frames, chunk_size):
            aa = torch.as_tensor(poses[start : start + chunk_size], dtype=dtype, device=device)
            aa = aa.reshape(aa.shape[0], self.num_joints, 3)
            joints = forward_kinematics(rodrigues(aa), rest, self.parents)
            joints = joints + torch.as_tensor(trans[start : start + chunk_size], dtype=dtype, device=device)[:, None]
            out[start : start + chunk_size] = joints.cpu().numpy()
        return out


def load_body_model(path: str | Path, num_betas: int = 16) -> JointBodyModel:
    """Load a SMPL/SMPL+H ``model.npz`` and keep what joint FK needs; ``num_betas`` shape components are used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Body model not found: '{path}'. Download the 'Extended SMPL+H' models from the AMASS website and "
            "place them as datasets/annotations/AMASS/bodymodels/smplh/{male,female}/model.npz"
        )
    members = npz_members(path)
    missing = [k for k in REQUIRED_KEYS if k not in members]
    if missing:
        raise DataFormatError(f"{path}: body model lacks key(s) {missing}; found {sorted(members)}")
    # each entry through the allow-listed unpickler (object arrays too), never np.load(allow_pickle=True)
    v_template = _dense(read_npz_object(path, "v_template"), "v_template", str(path))
    shapedirs = _dense(read_npz_object(path, "shapedirs"), "shapedirs", str(path))
    j_regressor = _dense(read_npz_object(path, "J_regressor"), "J_regressor", str(path))
    parents = parents_from_kintree(read_npz_object(path, "kintree_table"), f"{path}: kintree_table")
    if v_template.ndim != 2 or v_template.shape[1] != 3:
        raise DataFormatError(f"{path}: v_template must be [V, 3], found {v_template.shape}")
    num_vertices = v_template.shape[0]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_vertices, 3):
        raise DataFormatError(f"{path}: shapedirs must be [{num_vertices}, 3, B], found {shapedirs.shape}")
    if shapedirs.shape[2] < num_betas:
        raise DataFormatError(f"{path}: shapedirs has {shapedirs.shape[2]} components, {num_betas} betas requested")
    if j_regressor.shape != (parents.shape[0], num_vertices):
        raise DataFormatError(
            f"{path}: J_regressor must be [{parents.shape[0]}, {num_vertices}] (joints from kintree_table), "
            f"found {j_regressor.shape}"
        )
    joint_template = j_regressor @ v_template
    joint_shapedirs = np.einsum("jv,vcb->jcb", j_regressor, shapedirs[:, :, :num_betas])
    return JointBodyModel(joint_template, joint_shapedirs, parents, str(path))


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` from axis-angle vectors ``[..., 3]`` (radians), smooth near zero.

    ``R = I + sin(t)/t K + (1 - cos t)/t^2 K^2`` with ``K`` the skew matrix of the (un-normalised) vector ``v``,
    ``t = |v|`` and ``K^2 = v v^T - t^2 I``; Taylor expansions of both coefficients are used below ``t = 1e-4``.
    """
    t2 = (axis_angle * axis_angle).sum(-1)
    t = torch.sqrt(t2)
    small = t < 1e-4
    safe_t = torch.where(small, torch.ones_like(t), t)
    a = torch.where(small, 1 - t2 / 6, torch.sin(safe_t) / safe_t)[..., None, None]
    b = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(safe_t)) / (safe_t * safe_t))[..., None, None]
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    outer = axis_angle[..., :, None] * axis_angle[..., None, :]
    return eye + a * k + b * (outer - t2[..., None, None] * eye)


def forward_kinematics(rotmats: torch.Tensor, rest_joints: torch.Tensor, parents: np.ndarray) -> torch.Tensor:
    """Posed joints ``[..., J, 3]`` from local rotations ``[..., J, 3, 3]`` and rest joints ``[J, 3]`` or ``[..., J, 3]``.

    ``parents[j] < j`` for every non-root joint; the root (``parents[0] = -1``) is rotated about its own rest
    position (SMPL convention: the root joint stays at its rest location before ``trans`` is added).
    """
    num_joints = rotmats.shape[-3]
    rest = rest_joints.expand(*rotmats.shape[:-3], num_joints, 3)
    glob_rot: list[torch.Tensor] = [rotmats[..., 0, :, :]]
    glob_pos: list[torch.Tensor] = [rest[..., 0, :]]
    for j in range(1, num_joints):
        p = int(parents[j])
        offset = rest[..., j, :] - rest[..., p, :]
        glob_pos.append(glob_pos[p] + (glob_rot[p] @ offset[..., None])[..., 0])
        glob_rot.append(glob_rot[p] @ rotmats[..., j, :, :])
    return torch.stack(glob_pos, dim=-2)
