"""Lifting data layer: VideoPose3D-format files written here, cameras/projection, corruption, synthetic builder."""

import numpy as np
import pytest
import torch

from skeleton_diffusion.data.builders.h36m_cameras import EXTRINSICS, INTRINSICS, camera_parameters
from skeleton_diffusion.representations.camera import (
    camera_to_world, image_coordinates, normalize_screen_coordinates, project_pinhole, project_to_2d, qrot,
    quaternion_to_matrix, world_to_camera)
from skeleton_diffusion.data.builders.videopose3d import (
    H36M_32_TO_17, load_videopose3d_2d, load_videopose3d_3d, write_videopose3d_2d, write_videopose3d_3d)
from skeleton_diffusion.data.augment.corruption import corrupt_2d, joint_groups, noisy_joints_np
from skeleton_diffusion.apps.create_h36m_lifting_dataset import create_h36m_lifting
from skeleton_diffusion.data.windows.lifting import LiftingWindows, load_lifting
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import DataFormatError

SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")


def _world_poses(rng, t):
    """[T, 32, 3] metres around a pelvis at 1 m height inside the H36M capture volume."""
    base = rng.normal(scale=0.25, size=(1, 32, 3))
    base[:, :, 2] += 1.0
    return (base + rng.normal(scale=0.01, size=(t, 32, 3))).astype(np.float32)


def test_cameras_are_published_values_and_normalised():
    assert len(INTRINSICS) == 4 and set(EXTRINSICS) == set(SUBJECTS)
    assert INTRINSICS[0].id == "54138969" and INTRINSICS[0].res_h == 1002
    cam = camera_parameters("S9", 1)
    assert np.isclose(cam["focal_length"][0], INTRINSICS[1].focal_length[0] / 1000 * 2)
    assert np.allclose(np.linalg.norm(cam["orientation"]), 1.0, atol=1e-5)
    assert 1.0 < np.linalg.norm(cam["translation"]) < 10.0  # metres


def test_quaternion_rotation_and_world_camera_roundtrip():
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    v = rng.normal(size=(5, 3))
    r = quaternion_to_matrix(q)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(qrot(q, v), v @ r.T)
    cam = camera_parameters("S1", 0)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    back = camera_to_world(world_to_camera(x, cam["orientation"], cam["translation"]), cam["orientation"],
                           cam["translation"])
    assert np.allclose(back, x, atol=1e-5)


def test_projection_and_screen_normalisation():
    x = np.array([[0.2, -0.1, 4.0]])
    assert np.allclose(project_pinhole(x, 2.0, 0.1), [[0.2, 0.05]])
    k = np.array([2.0, 2.0, 0.1, 0.0, 0, 0, 0, 0, 0])
    assert np.allclose(project_to_2d(x, k), project_pinhole(x, 2.0, [0.1, 0.0]))  # no distortion: pinhole
    px = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    n = normalize_screen_coordinates(px, 1000, 1002)
    assert np.allclose(n[0], [-1.0, -1.002]) and np.allclose(n[1], [1.0, 1.002]) and np.allclose(n[2], 0, atol=1e-6)
    assert np.allclose(image_coordinates(n, 1000, 1002), px, atol=1e-3)


def test_look_at_camera_is_x_right_y_down_z_forward():
    from skeleton_diffusion.representations.camera import look_at_rotation

    r = look_at_rotation(np.array([-5.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))
    assert np.isclose(np.linalg.det(r), 1.0)
    # looking along +X with Z up: forward = +X, right = -Y, down = -Z
    assert np.allclose(r, [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=1e-12)
    head, feet = r @ (np.array([0.0, 0.0, 1.8]) - [-5, 0, 1]), r @ (np.array([0.0, 0.0, 0.0]) - [-5, 0, 1])
    assert project_pinhole(head, 2.0)[1] < project_pinhole(feet, 2.0)[1]      # head above the feet in the image


def _write_vp3d(tmp_path, rng, frames=30, extra_2d=2):
    pos3d = {s: {"Walking": _world_poses(rng, frames), "Eating 2": _world_poses(rng, frames + 5)} for s in SUBJECTS}
    pos2d = {}
    for s, acts in pos3d.items():
        pos2d[s] = {}
        for a, w in acts.items():
            cams = []
            for c in range(4):
                p = camera_parameters(s, c)
                cam = world_to_camera(w[:, list(H36M_32_TO_17)], p["orientation"], p["translation"])
                uv = image_coordinates(project_to_2d(cam, p["intrinsic"]), p["res_w"], p["res_h"])
                uv = uv + rng.normal(scale=2.0, size=uv.shape)          # "detector" error (px)
                cams.append(np.concatenate([uv, uv[-1:].repeat(extra_2d, 0)]).astype(np.float32))
            pos2d[s][a] = cams
    f3 = write_videopose3d_3d(tmp_path / "data_3d_h36m.npz", pos3d)
    f2 = write_videopose3d_2d(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", pos2d)
    return f3, f2, pos3d


def test_videopose3d_files_load_and_build_lifting_dataset(tmp_path):
    rng = np.random.default_rng(1)
    f3, f2, pos3d = _write_vp3d(tmp_path, rng)
    d3 = load_videopose3d_3d(f3)
    d2, meta = load_videopose3d_2d(f2)
    assert d3["S9"]["Walking"].shape == (30, 32, 3) and len(d2["S9"]["Walking"]) == 4
    assert d2["S9"]["Walking"][0].shape == (32, 17, 2) and meta["num_joints"] == 17
    path = create_h36m_lifting(tmp_path / "out", data_3d=f3, data_2d=f2)
    assert path.name == "data_lifting_h36m_cpn_ft_h36m_dbb.npz"
    data = load_lifting(path)
    # 7 subjects x 2 actions x 4 cameras, 2D cut to the mocap length
    assert len(data.seq_start) == 56 and data.pose_3d.shape == (7 * 4 * (30 + 35), 17, 3)
    assert set(data.seq_subject[data.seq_split == "test"]) == {"S9", "S11"}
    assert set(data.seq_subject[data.seq_split == "train"]) == {"S1", "S5", "S6", "S7", "S8"}
    assert np.allclose(data.pose_3d[:, 0], 0.0)                               # root-relative
    assert np.abs(data.pose_2d).max() < 2.0                                   # normalised to the width
    # 3D is in the camera frame: projecting it (+ root) through the camera recovers the noise-free 2D
    i = 0
    s, c = str(data.seq_subject[i]), int(data.seq_camera[i])
    p = camera_parameters(s, c)
    w = pos3d[s][str(data.seq_action[i])][:, list(H36M_32_TO_17)]
    cam = world_to_camera(w, p["orientation"], p["translation"])
    assert np.allclose(data.pose_3d[: len(cam)], cam - cam[:, :1], atol=1e-5)
    # the measured per-joint 2D error is the injected 2 px (normalised: 2 / 1000 * 2)
    assert np.allclose(data.joint_noise_std, 0.004, rtol=0.25)
    win = LiftingWindows(data, "test", window=5)
    p2, p3, extra = win[0]
    assert p2.shape == (5, 17, 2) and p3.shape == (5, 17, 3) and "class_idx" in extra


def test_videopose3d_bad_files_name_the_problem(tmp_path):
    write_videopose3d_3d(tmp_path / "bad3d.npz", {"S1": {"Walking": np.zeros((5, 31, 3), np.float32)}})
    with pytest.raises(DataFormatError, match=r"positions_3d\[S1\]\[Walking\].*\[T, 32, 3\]"):
        load_videopose3d_3d(tmp_path / "bad3d.npz")
    np.savez(tmp_path / "no_meta.npz", positions_2d=np.array({"S1": {}}, dtype=object))
    with pytest.raises(DataFormatError, match="metadata"):
        load_videopose3d_2d(tmp_path / "no_meta.npz")


def test_from_processed_h36m_projects_through_cameras(tmp_path):
    from skeleton_diffusion.data.builders.common import write_processed

    rng = np.random.default_rng(2)
    proc = {s: {"Walking": _world_poses(rng, 12)[:, list(H36M_32_TO_17)]} for s in SUBJECTS}
    write_processed(tmp_path / "data_3d_h36m.npz", proc)
    data = load_lifting(create_h36m_lifting(tmp_path, from_processed=tmp_path / "data_3d_h36m.npz"))
    assert len(data.seq_start) == 28 and data.pose_2d.shape == (28 * 12, 17, 2)


def test_corruption_types_masks_and_rates():
    names = get_skeleton("h36m").joint_names
    g = joint_groups(names)
    assert g == {"right_leg": [1, 2, 3], "left_arm": [11, 12, 13]}
    x = torch.randn(64, 27, 17, 2)
    gen = torch.Generator().manual_seed(0)
    out, m = corrupt_2d(x, "none", names, generator=gen)
    assert torch.equal(out, x) and bool((m == 1).all())
    out, m = corrupt_2d(x, "rand_joints", names, generator=gen)
    assert abs(float(1 - m[..., 1:].mean()) - 0.2) < 0.02 and bool((m[..., 0] == 1).all())
    assert bool((out[m == 0] == 0).all()) and torch.equal(out[m == 1], x[m == 1])
    out, m = corrupt_2d(x, "struct_joints", names, generator=gen)
    missing = (m == 0)
    assert bool(missing[..., [0, 4, 5, 6] + list(range(7, 17))].logical_not().all())
    assert int(missing[0, :, 1].sum()) == 11                                   # ceil(0.4 * 27) contiguous frames
    out, m = corrupt_2d(x, "frames", names, generator=gen)
    per_frame = (m == 0).all(dim=-1).sum(dim=1)
    assert bool((per_frame == 6).all())                                        # ceil(0.2 * 27)
    out, m = corrupt_2d(x, "arms_legs", names, generator=gen)
    assert bool(((m == 0).sum(dim=1)[:, [1, 2, 3, 11, 12, 13]] == 10).all())   # floor(0.4 * 27) frames
    out, m = corrupt_2d(x, "noisy", names, noise_std=0.01, generator=gen)
    assert bool((m == 1).all()) and abs(float((out - x).std()) - 0.01) < 1e-3
    a, _ = corrupt_2d(x, "rand_joints", names, generator=torch.Generator().manual_seed(3))
    b, _ = corrupt_2d(x, "rand_joints", names, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="occlusion must be one of"):
        corrupt_2d(x, "holes", names)


def test_hmp_noise_goes_through_the_shared_module():
    from skeleton_diffusion.data.augment.augmentation import add_observation_noise

    obs = np.random.default_rng(0).normal(size=(30, 22, 3)).astype(np.float32)
    a = add_observation_noise(obs, 0.25, 0.02, np.random.default_rng(5))
    b = noisy_joints_np(obs, 0.25, 0.02, np.random.default_rng(5))
    assert np.array_equal(a, b) and np.array_equal(a[:, 0], obs[:, 0])
    frac = float((a != obs).any(-1)[:, 1:].mean())
    assert 0.15 < frac < 0.35


def test_synthetic_lifting_dataset(tmp_path):
    from skeleton_diffusion.apps.create_synthetic_lifting_dataset import amass_to_h36m, build_synthetic_lifting

    assert amass_to_h36m(np.zeros((3, 22, 3))).shape == (3, 17, 3)
    path = build_synthetic_lifting(tmp_path, clips_per_subject=1, frames=40, cameras=2, seed=0)
    data = load_lifting(path)
    assert data.skeleton == "h36m" and data.joint_names == get_skeleton("h36m").joint_names
    assert len(data.seq_start) == 7 * 2 and data.pose_3d.shape == (7 * 2 * 40, 17, 3)
    assert np.allclose(data.pose_3d[:, 0], 0.0)
    # 2D = projection of the camera-frame 3D up to the detector noise: check with the clean version
    clean = load_lifting(build_synthetic_lifting(tmp_path / "clean", clips_per_subject=1, frames=40, cameras=2,
                                                 seed=0, noise_px=0.0))
    assert np.allclose(clean.pose_3d, data.pose_3d)
    err_px = np.abs(data.pose_2d - clean.pose_2d).mean() * 500
    assert 0.5 < err_px < 10.0
    # bone lengths of the 3D are nearly constant over time (rigid source; the torso joint is a spine average)
    skel = get_skeleton("h36m")
    bl = np.linalg.norm(np.diff(clean.pose_3d[:40][:, np.array(skel.limbs)], axis=2)[:, :, 0], axis=-1)
    assert bl.std(axis=0).max() < 5e-3 and np.median(bl.std(axis=0)) < 1e-5
