"""Lifting metrics on hand-computed cases and against scipy's Procrustes."""

import math

import numpy as np
import pytest
import torch

from skeleton_diffusion.metrics.lifting import (
    bone_asymmetry,
    bone_length_std,
    bone_lengths,
    mpjpe,
    mpjve,
    multi_hypothesis,
    n_mpjpe,
    p_mpjpe,
    per_action_mean,
    procrustes_align,
    symmetric_bone_pairs,
)
from skeleton_diffusion.skeletons.lookup import get_skeleton


def _rot(axis: str, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "z":
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def test_mpjpe_known_offset_and_root_relative():
    gt = torch.randn(4, 17, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[:, 5] += torch.tensor([0.03, 0.04, 0.0], dtype=torch.float64)   # one joint 5 cm off
    assert torch.allclose(mpjpe(pred, gt), torch.full((4,), 0.05 / 17, dtype=torch.float64))
    # a global translation is removed by the root-relative protocol, but not with root=None
    shifted = gt + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert torch.allclose(mpjpe(shifted, gt), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(mpjpe(shifted, gt, root=None), torch.full((4,), math.sqrt(14), dtype=torch.float64))


def test_p_mpjpe_of_rotated_scaled_translated_copy_is_zero():
    gt = torch.randn(3, 17, 3, dtype=torch.float64)
    pred = 1.7 * gt @ (_rot("z", 0.7) @ _rot("x", -0.4)).T + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    assert mpjpe(pred, gt).min() > 0.1
    assert torch.allclose(p_mpjpe(pred, gt), torch.zeros(3, dtype=torch.float64), atol=1e-9)


def test_p_mpjpe_excludes_reflections():
    gt = torch.randn(17, 3, dtype=torch.float64)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert float(p_mpjpe(mirrored, gt)) > 1e-3  # a reflection is not a rotation


def test_procrustes_matches_scipy():
    from scipy.linalg import orthogonal_procrustes
    from scipy.spatial import procrustes

    rng = np.random.default_rng(0)
    gt = rng.normal(size=(17, 3))
    pred = gt @ np.linalg.qr(rng.normal(size=(3, 3)))[0] * 0.8 + rng.normal(scale=0.05, size=(17, 3))
    ours = procrustes_align(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()
    # scipy.spatial.procrustes standardises both and returns the disparity of the aligned shapes
    mtx1, mtx2, disparity = procrustes(gt, pred)
    g0 = gt - gt.mean(0)
    ours_std = (ours - gt.mean(0)) / np.linalg.norm(g0)
    assert np.isclose(((mtx1 - ours_std) ** 2).sum(), disparity, rtol=1e-6, atol=1e-10)
    # the rotation agrees with orthogonal_procrustes when it is a proper rotation
    r, _ = orthogonal_procrustes(pred - pred.mean(0), g0)
    if np.linalg.det(r) > 0:
        p0 = pred - pred.mean(0)
        scale = np.trace((p0 @ r).T @ g0) / (p0 ** 2).sum()
        assert np.allclose(ours, scale * p0 @ r + gt.mean(0), atol=1e-8)


def test_n_mpjpe_removes_scale_only():
    gt = torch.randn(2, 17, 3, dtype=torch.float64)
    assert torch.allclose(n_mpjpe(2.5 * gt, gt), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    rotated = gt @ _rot("z", 0.5).T
    assert float(n_mpjpe(rotated, gt).min()) > 1e-3


def test_mpjve_constant_offset_is_zero_and_velocity_error():
    gt = torch.randn(2, 6, 17, 3, dtype=torch.float64)
    assert torch.allclose(mpjve(gt + 0.3, gt), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    pred = gt.clone()
    pred[:, :, 3, 0] += 0.01 * torch.arange(6, dtype=torch.float64)   # joint 3 drifts 1 cm / frame
    assert torch.allclose(mpjve(pred, gt), torch.full((2,), 0.01 / 17, dtype=torch.float64))


def test_multi_hypothesis_best_mean_and_mean_pose():
    gt = torch.zeros(1, 17, 3, dtype=torch.float64)
    hyps = torch.zeros(1, 2, 17, 3, dtype=torch.float64)
    hyps[0, 0, 1:, 0] = 0.1
    hyps[0, 1, 1:, 0] = -0.3
    out = multi_hypothesis(hyps, gt)
    assert math.isclose(float(out["best"]), 0.1 * 16 / 17)
    assert math.isclose(float(out["mean"]), 0.2 * 16 / 17)
    assert math.isclose(float(out["of_mean"]), 0.1 * 16 / 17)


def test_bone_std_and_asymmetry():
    skel = get_skeleton("h36m")
    pose = torch.zeros(17, 3, dtype=torch.float64)
    for p, c in skel.limbs:                       # every bone 0.1 m along x from its parent ...
        pose[c] = pose[p] + torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    seq = pose.expand(5, 17, 3).clone()
    assert torch.allclose(bone_length_std(seq, skel.limbs), torch.zeros((), dtype=torch.float64), atol=1e-12)
    pairs = symmetric_bone_pairs(skel.joint_names, skel.limbs)
    assert len(pairs) == 6  # hip, knee, ankle, shoulder, elbow, wrist bones
    assert float(bone_asymmetry(pose, skel.limbs, pairs)) < 1e-12
    longer = pose.clone()
    lk = skel.joint_names.index("LKnee")
    longer[lk:lk + 2] += torch.tensor([0.06, 0.0, 0.0], dtype=torch.float64)   # left thigh 0.1 -> 0.16 m
    assert math.isclose(float(bone_lengths(longer, skel.limbs)[[c for _, c in skel.limbs].index(lk)]), 0.16)
    assert math.isclose(float(bone_asymmetry(longer, skel.limbs, pairs)), 0.06 / 6, rel_tol=1e-9)
    seq[2] = longer                                # one frame with a longer thigh -> non-zero std
    assert float(bone_length_std(seq, skel.limbs)) > 0


def test_per_action_mean():
    vals = torch.tensor([1.0, 3.0, 10.0])
    out = per_action_mean(vals, torch.tensor([0, 0, 1]), ["a", "b", "c"])
    assert out == {"a": 2.0, "b": 10.0, "average": 6.0}


def test_shape_errors():
    with pytest.raises(ValueError):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))
