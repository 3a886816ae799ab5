"""Cross-skeleton evaluation through documented joint-map files (issue 17)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from skeleton_diffusion.tasks.hmp.cross_skeleton import (
    JOINT_MAP_DIR,
    evaluate_cross_skeleton,
    load_joint_map,
    map_to_model,
    resample_window,
)
from skeleton_diffusion.skeletons.skeleton import Skeleton
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError, DataFormatError

_CMU = [("Hips", None), ("LHipJoint", "Hips"), ("LeftUpLeg", "LHipJoint"), ("LeftLeg", "LeftUpLeg"),
        ("LeftFoot", "LeftLeg"), ("LeftToeBase", "LeftFoot"), ("RHipJoint", "Hips"), ("RightUpLeg", "RHipJoint"),
        ("RightLeg", "RightUpLeg"), ("RightFoot", "RightLeg"), ("RightToeBase", "RightFoot"), ("LowerBack", "Hips"),
        ("Spine", "LowerBack"), ("Spine1", "Spine"), ("Neck", "Spine1"), ("Neck1", "Neck"), ("Head", "Neck1"),
        ("LeftShoulder", "Spine1"), ("LeftArm", "LeftShoulder"), ("LeftForeArm", "LeftArm"),
        ("LeftHand", "LeftForeArm"), ("RightShoulder", "Spine1"), ("RightArm", "RightShoulder"),
        ("RightForeArm", "RightArm"), ("RightHand", "RightForeArm")]


def test_shipped_maps_cover_every_model_joint():
    m = load_joint_map("h36m17_to_amass22")
    assert m.model_joints == get_skeleton("amass").joint_names and m.data_joints == get_skeleton("h36m").joint_names
    assert len(m.shared) == 12 and ("LWrist", "LWrist") in m.shared_names
    r = load_joint_map(JOINT_MAP_DIR / "amass22_to_h36m17.yaml")
    assert r.model_joints == get_skeleton("h36m").joint_names and len(r.shared) == 12
    # the two directions share the same correspondences
    assert {(b, a) for a, b in r.shared_names} == set(m.shared_names)
    cmu = Skeleton.from_hierarchy("cmu_test", [n for n, _ in _CMU], [p for _, p in _CMU])
    c = load_joint_map("cmu_native_to_amass22", data_skeleton=cmu)
    assert len(c.shared) == 15 and c.to_model[0] == (0,)


def test_bad_maps_name_the_joint(tmp_path):
    with pytest.raises(DataFormatError, match="Spine1"):
        load_joint_map({"model_skeleton": "amass", "data_skeleton": "h36m",
                        "to_model": {"GlobalRoot": "GlobalRoot"}, "shared": {"LHip": "LHip"}})
    base = dict(load_joint_map_dict())
    base["to_model"] = dict(base["to_model"], LHip="NoSuchJoint")
    with pytest.raises(DataFormatError, match="NoSuchJoint"):
        load_joint_map(base)
    with pytest.raises(ConfigError, match="not found"):
        load_joint_map(tmp_path / "nope.yaml")


def load_joint_map_dict() -> dict:
    import yaml

    return yaml.safe_load((JOINT_MAP_DIR / "h36m17_to_amass22.yaml").read_text())


def test_resample_and_map():
    x = np.arange(10, dtype=float)[:, None, None] * np.ones((1, 2, 3))
    np.testing.assert_allclose(resample_window(x, 50, 100, 5)[:, 0, 0], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(resample_window(x, 50, 25, 3, start_s=0.04)[:, 0, 0], [2, 4, 6])
    m = load_joint_map("h36m17_to_amass22")
    data = np.random.default_rng(0).normal(size=(4, 17, 3))
    out = map_to_model(data, m)
    assert out.shape == (4, 22, 3)
    h = {n: i for i, n in enumerate(m.data_joints)}
    np.testing.assert_allclose(out[:, 3], (data[:, h["GlobalRoot"]] + data[:, h["Torso"]]) / 2)  # Spine1


class _ZeroVelocity:
    """Repeats the last observed pose (world space) on the model's skeleton."""

    def __init__(self, skeleton, obs_length, pred_length, fps):
        self.skeleton, self.obs_length, self.pred_length, self.fps = skeleton, obs_length, pred_length, fps

    def predict(self, obs, num_samples=1, seed=0):
        last = obs[:, -1:][:, None]  # [B, 1, 1, J, 3]
        return np.repeat(np.repeat(last, self.pred_length, axis=2), num_samples, axis=1)


def test_zero_velocity_across_skeletons_matches_hand_computation():
    rng = np.random.default_rng(1)
    m = load_joint_map("h36m17_to_amass22")
    windows = [rng.normal(size=(25 + 100, 17, 3)).cumsum(0) * 0.01 for _ in range(3)]
    ds = SimpleNamespace(skeleton=get_skeleton("h36m"), segments=list(range(3)),
                         window_world=lambda i: (windows[i][:25], windows[i][25:]))
    pred = _ZeroVelocity(get_skeleton("amass"), 25, 100, 50.0)  # same fps: no resampling
    res = evaluate_cross_skeleton(pred, ds, m, data_fps=50.0, num_samples=2, batch_size=2)
    d_idx = [b for _, b in m.shared]
    m_idx = [a for a, _ in m.shared]
    ades, fdes = [], []
    for w in windows:
        last_model = map_to_model(w[24], m)
        p = last_model[m_idx] - last_model[0]
        gt = w[25:][:, d_idx] - w[25:][:, :1]
        err = np.linalg.norm((gt - p[None]).reshape(100, -1), axis=-1)
        ades.append(err.mean())
        fdes.append(err[-1])
    assert res["num_windows"] == 3
    assert res["metrics"]["ADE"] == pytest.approx(np.mean(ades), rel=1e-5)
    assert res["metrics"]["FDE"] == pytest.approx(np.mean(fdes), rel=1e-5)
    assert res["metrics"]["APD"] == pytest.approx(0.0, abs=1e-12)
    # the model's skeleton must be the map's
    with pytest.raises(ConfigError, match=r"'h36m'.*h36m17_to_amass22"):
        evaluate_cross_skeleton(_ZeroVelocity(get_skeleton("h36m"), 25, 100, 50.0), ds, m, data_fps=50.0)
