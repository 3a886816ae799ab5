"""DeepMimic clips of the pybullet wheel -> native 15-joint dataset: bone lengths in metres, Z up (issue 17)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skeleton_diffusion.data.builders.deepmimic import (
    FRAME_SIZE,
    build_deepmimic_dataset,
    deepmimic_positions,
    deepmimic_skeleton,
    find_pybullet_data,
    load_deepmimic_motion,
)
from skeleton_diffusion.skeletons.formats.urdf_mjcf import parse_urdf
from skeleton_diffusion.utils.errors import DataFormatError

DATA = find_pybullet_data()
needs_data = pytest.mark.skipif(DATA is None, reason="pybullet not installed (pip install pybullet): its "
                                                     "pybullet_data holds the DeepMimic clips")


def test_bad_motion_file_is_named(tmp_path):
    (tmp_path / "m.txt").write_text(json.dumps({"Loop": "none", "Frames": [[0.1] * 10, [0.1] * 10]}))
    with pytest.raises(DataFormatError, match=rf"m.txt.*{FRAME_SIZE}"):
        load_deepmimic_motion(tmp_path / "m.txt")


def test_fk_identity_pose_is_the_scaled_rest_pose(tmp_path):
    """Identity rotations: joints at the root + scaled URDF offsets (hand-checkable)."""
    urdf = """<robot name="r"><link name="base"/><link name="root"/><link name="chest"/><link name="right_knee"/>
    <joint name="root" type="fixed"><parent link="base"/><child link="root"/></joint>
    <joint name="chest" type="spherical"><parent link="root"/><child link="chest"/><origin xyz="0 1 0"/></joint>
    <joint name="right_knee" type="revolute"><parent link="chest"/><child link="right_knee"/><origin xyz="0 0 2"/>
    <axis xyz="0 0 1"/></joint></robot>"""
    (tmp_path / "r.urdf").write_text(urdf)
    h = parse_urdf(tmp_path / "r.urdf")
    h.names, h.parents = h.names[1:], [-1, 0, 1]
    h.offsets, h.rpy, h.axis = h.offsets[1:], h.rpy[1:], h.axis[1:]
    frame = np.zeros((1, FRAME_SIZE))
    frame[0, 1:4] = [1, 2, 3]
    frame[0, 4] = 1.0  # root quaternion w
    col = 8
    from skeleton_diffusion.data.builders.deepmimic import MOTION_JOINTS

    for _, n in MOTION_JOINTS:
        if n == 4:
            frame[0, col] = 1.0
        col += n
    pos = deepmimic_positions(frame, h, scale=0.5)
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 2.5, 3], [1, 2.5, 4]], atol=1e-12)
    # a 90 degree root yaw about +y turns the chest offset (0,1,0) -> unchanged and (0,0,2) -> (2,0,0)*0.5
    frame[0, 4:8] = [np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0]
    pos = deepmimic_positions(frame, h, scale=0.5)
    np.testing.assert_allclose(pos[0, 2], [2, 2.5, 3], atol=1e-12)


@needs_data
def test_real_clips_have_human_bones_in_metres_z_up(tmp_path):
    summary = build_deepmimic_dataset("DM", data_root=tmp_path, side_files=False)
    assert summary.windows["test"] > 0 and summary.windows["train"] > 50
    hmp = tmp_path / "processed" / "DM" / "hmp"
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file

    sk = load_skeleton_file(hmp / "skeleton.json")
    assert sk.num_joints == 15 and sk.joint_names[0] == "root" and sk.num_node_types == 8
    assert sk == deepmimic_skeleton(DATA)
    pos = np.load(hmp / "data_3d_dm.npz", allow_pickle=True)["positions_3d"].item()
    j = {n: i for i, n in enumerate(sk.joint_names)}
    walk = pos["train"]["walk"]
    for side in ("left", "right"):
        thigh = np.linalg.norm(walk[:, j[f"{side}_hip"]] - walk[:, j[f"{side}_knee"]], axis=-1)
        shin = np.linalg.norm(walk[:, j[f"{side}_knee"]] - walk[:, j[f"{side}_ankle"]], axis=-1)
        forearm = np.linalg.norm(walk[:, j[f"{side}_elbow"]] - walk[:, j[f"{side}_wrist"]], axis=-1)
        assert 0.35 < thigh.mean() < 0.5 and thigh.std() < 1e-5
        assert 0.35 < shin.mean() < 0.5 and 0.2 < forearm.mean() < 0.32
    # Z up: pelvis ~0.85 m above the floor while walking, ankles near the floor, neck above the pelvis
    assert 0.75 < walk[:, 0, 2].mean() < 0.95
    assert -0.02 < walk[:, [j["left_ankle"], j["right_ankle"]], 2].min() < 0.15
    assert np.all(walk[:, j["neck"], 2] > walk[:, 0, 2] + 0.3)
    assert np.linalg.norm(walk[-1, 0, :2] - walk[0, 0, :2]) > 2.0  # 3 walk cycles travel forward
    # the left hip is on the left of the walking direction (+x forward, Z up -> left is +y)
    fwd = walk[-1, 0, :2] - walk[0, 0, :2]
    lat = walk[:, j["left_hip"], :2] - walk[:, j["right_hip"], :2]
    assert np.mean(fwd[0] * lat[:, 1] - fwd[1] * lat[:, 0]) > 0
    # whole clips are held out
    assert set(pos["test"]) == {"dance_b", "getup_faceup"} and not set(pos["test"]) & set(pos["train"])
