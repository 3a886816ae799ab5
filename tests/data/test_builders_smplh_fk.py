"""SMPL+H joint forward kinematics (builders/smplh_fk.py) against hand-computed cases and a made-up body model.

``make_body_model_npz`` is reused by the AMASS and 3DPW builder tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from skeleton_diffusion.data.builders.smplh_fk import (
    forward_kinematics,
    load_body_model,
    parents_from_kintree,
    rodrigues,
)
from skeleton_diffusion.utils.errors import DataFormatError

SMPLH_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
for _wrist in (20, 21):
    for _finger in range(5):
        _base = len(SMPLH_PARENTS)
        SMPLH_PARENTS += [_wrist, _base, _base + 1]
assert len(SMPLH_PARENTS) == 52


def make_body_model_npz(path: Path, *, num_joints: int = 52, num_betas: int = 16, seed: int = 0,
                        scale: float = 1.0) -> dict:
    """A small made-up SMPL+H-like model with the real key names (2 vertices per joint)."""
    rng = np.random.default_rng(seed)
    parents = SMPLH_PARENTS[:num_joints]
    # joint rest positions: a human-ish tree (children offset from parents by ~10 cm)
    rest = np.zeros((num_joints, 3))
    for j in range(1, num_joints):
        rest[j] = rest[parents[j]] + rng.normal(0, 0.1, 3)
    num_vertices = 2 * num_joints
    v_template = np.repeat(rest, 2, axis=0) + np.tile([[0.01, 0, 0], [-0.01, 0, 0]], (num_joints, 1))
    j_regressor = np.zeros((num_joints, num_vertices))
    for j in range(num_joints):
        j_regressor[j, 2 * j : 2 * j + 2] = 0.5
    shapedirs = rng.normal(0, 0.01, (num_vertices, 3, num_betas))
    kintree = np.array([[4294967295 if p < 0 else p for p in parents], list(range(num_joints))], dtype=np.int64)
    data = dict(
        v_template=v_template * scale, shapedirs=shapedirs * scale, J_regressor=j_regressor, kintree_table=kintree,
        weights=np.eye(num_joints).repeat(2, axis=0), posedirs=np.zeros((num_vertices, 3, 9 * (num_joints - 1))),
        f=np.array([[0, 1, 2], [1, 2, 3]], dtype=np.int32),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def reference_joints(model: dict, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Straightforward (slow) per-frame 4x4 chain, written independently of the implementation."""
    nb = betas.shape[0]
    v = model["v_template"] + model["shapedirs"][:, :, :nb] @ betas
    joints = model["J_regressor"] @ v
    kt = model["kintree_table"]
    parents = {int(c): (int(p) if p < len(kt[0]) else -1) for p, c in zip(kt[0], kt[1])}
    out = np.zeros((poses.shape[0], joints.shape[0], 3))
    for t in range(poses.shape[0]):
        glob = {}
        for j in range(joints.shape[0]):
            local = np.eye(4)
            local[:3, :3] = Rotation.from_rotvec(poses[t, 3 * j : 3 * j + 3]).as_matrix()
            p = parents[j]
            local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0)
            glob[j] = local if p < 0 else glob[p] @ local
            out[t, j] = glob[j][:3, 3] + trans[t]
    return out


def test_rodrigues_matches_scipy_including_tiny_angles():
    rng = np.random.default_rng(1)
    aa = rng.normal(size=(64, 3)) * rng.uniform(0, 3, (64, 1))
    aa[0] = 0
    aa[1] = [1e-9, 0, 0]
    aa[2] = [0, 3e-5, -2e-5]
    got = rodrigues(torch.from_numpy(aa)).numpy()
    np.testing.assert_allclose(got, Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)


def test_three_joint_chain_hand_computed():
    # root at origin, joint 1 one unit along x, joint 2 one unit further along x.
    rest = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]], dtype=torch.float64)
    parents = np.array([-1, 0, 1])
    # root rotates +90 deg about z, joint 1 rotates +90 deg about z, joint 2 anything (leaf position unaffected)
    aa = torch.tensor([[[0, 0, math.pi / 2], [0, 0, math.pi / 2], [1.0, 2.0, 3.0]]], dtype=torch.float64)
    joints = forward_kinematics(rodrigues(aa), rest, parents)[0].numpy()
    # joint 1 = Rz90 * (1,0,0) = (0,1,0); joint 2 = joint1 + Rz180 * (1,0,0) = (-1,1,0)
    np.testing.assert_allclose(joints, [[0, 0, 0], [0, 1, 0], [-1, 1, 0]], atol=1e-12)


def test_root_rotation_is_about_its_rest_position():
    rest = torch.tensor([[0.5, 0.0, 0.0], [0.5, 1.0, 0.0]], dtype=torch.float64)
    aa = torch.tensor([[[math.pi, 0, 0], [0, 0, 0]]], dtype=torch.float64)  # 180 deg about x
    joints = forward_kinematics(rodrigues(aa), rest, np.array([-1, 0]))[0].numpy()
    np.testing.assert_allclose(joints, [[0.5, 0, 0], [0.5, -1, 0]], atol=1e-12)


def test_made_up_body_model_matches_reference(tmp_path):
    data = make_body_model_npz(tmp_path / "model.npz")
    model = load_body_model(tmp_path / "model.npz", num_betas=16)
    assert model.num_joints == 52 and model.num_betas == 16
    assert model.parents.tolist() == SMPLH_PARENTS
    rng = np.random.default_rng(2)
    poses = rng.normal(0, 0.4, (5, 156))
    trans = rng.normal(0, 1, (5, 3))
    betas = rng.normal(0, 1, 16)
    got = model.forward(poses, trans, betas)
    np.testing.assert_allclose(got, reference_joints(data, poses, trans, betas), atol=1e-10)
    # zero pose: joints are the shaped rest joints plus trans
    zero = model.forward(np.zeros((2, 156)), trans[:2], betas)
    np.testing.assert_allclose(zero - trans[:2, None], np.stack([model.rest_joints(betas)] * 2), atol=1e-12)
    # chunking does not change results
    np.testing.assert_allclose(model.forward(poses, trans, betas, chunk_size=2), got, atol=1e-12)


def test_fewer_betas_uses_leading_shape_components(tmp_path):
    data = make_body_model_npz(tmp_path / "model.npz", num_betas=16)
    model10 = load_body_model(tmp_path / "model.npz", num_betas=10)
    betas = np.linspace(-1, 1, 10)
    expected = data["J_regressor"] @ (data["v_template"] + data["shapedirs"][:, :, :10] @ betas)
    np.testing.assert_allclose(model10.rest_joints(betas), expected, atol=1e-12)
    with pytest.raises(DataFormatError, match="betas"):
        model10.rest_joints(np.zeros(16))


def test_bad_inputs_raise_clear_errors(tmp_path):
    make_body_model_npz(tmp_path / "model.npz")
    model = load_body_model(tmp_path / "model.npz")
    with pytest.raises(DataFormatError, match=r"\[T, 156\]"):
        model.forward(np.zeros((3, 72)))
    with pytest.raises(DataFormatError, match="trans"):
        model.forward(np.zeros((3, 156)), np.zeros((2, 3)))
    with pytest.raises(FileNotFoundError, match="smplh"):
        load_body_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "broken.npz", v_template=np.zeros((4, 3)))
    with pytest.raises(DataFormatError, match="J_regressor"):
        load_body_model(tmp_path / "broken.npz")
    with pytest.raises(DataFormatError, match="parents must precede"):
        parents_from_kintree(np.array([[4294967295, 2, 0], [0, 1, 2]]))
    np.testing.assert_array_equal(parents_from_kintree(np.array([[-1, 0, 1], [0, 1, 2]])), [-1, 0, 1])


def test_device_argument_cpu_and_float32(tmp_path):
    make_body_model_npz(tmp_path / "model.npz")
    model = load_body_model(tmp_path / "model.npz")
    poses = np.random.default_rng(0).normal(0, 0.3, (4, 156))
    a = model.forward(poses, device="cpu")
    b = model.forward(poses, device=torch.device("cpu"), dtype=torch.float32)
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.gpu
def test_cuda_matches_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    make_body_model_npz(tmp_path / "model.npz")
    model = load_body_model(tmp_path / "model.npz")
    poses = np.random.default_rng(0).normal(0, 0.3, (64, 156))
    np.testing.assert_allclose(model.forward(poses, device="cuda"), model.forward(poses), atol=1e-9)
