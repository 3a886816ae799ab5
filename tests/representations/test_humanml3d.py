"""HumanML3D 263-d features (data/humanml3d_features.py) and loader (data/builders/humanml3d.py), on files the
tests write in the release's formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skeleton_diffusion.data.builders.humanml3d import load_humanml3d_split, load_mean_std, parse_texts_file, read_split
from skeleton_diffusion.data.windows.generation import build_humanml3d_generation_dataset
from skeleton_diffusion.data.builders.synthetic import generate_clip
from skeleton_diffusion.data.windows.generation import collate_generation
from skeleton_diffusion.representations.humanml3d import (
    FEATURE_SLICES,
    T2M_RAW_OFFSETS,
    amass_zup_to_humanml3d,
    feature_dim,
    feature_mean_std,
    forward_kinematics,
    inverse_kinematics,
    positions_to_features,
    recover_from_ric,
    skeleton_offsets,
    uniform_skeleton,
)
from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError

S = FEATURE_SLICES()


def _synthetic_hml(seed: int = 0, seconds: float = 4.0) -> np.ndarray:
    pos, _ = generate_clip(np.random.default_rng(seed), int(seconds * 60))
    return amass_zup_to_humanml3d(pos[::3].astype(np.float64))  # 60 -> 20 fps, Y up


def _tpose_offsets() -> np.ndarray:
    lengths = np.full(22, 0.2)
    lengths[[1, 2]] = 0.1  # hips narrower than collars (facing inside IK uses lhip-rhip + rsh-lsh, official)
    lengths[[13, 14]] = 0.15
    return T2M_RAW_OFFSETS * lengths[:, None]


def test_feature_layout():
    assert feature_dim(22) == 263
    assert [S[k].stop - S[k].start for k in S] == [1, 2, 1, 63, 126, 66, 4]


def test_straight_walk_hand_computed():
    t, v = 30, 0.01
    quat = np.zeros((t, 22, 4))
    quat[..., 0] = 1.0
    root = np.stack([np.zeros(t), np.full(t, 1.0), v * np.arange(t)], -1)  # moving along +Z, facing +Z
    pos = forward_kinematics(quat, root, _tpose_offsets())
    feats, glob = positions_to_features(pos)
    assert feats.shape == (t - 1, 263)
    np.testing.assert_allclose(feats[:, S["root_rot_vel"]], 0.0, atol=1e-7)
    np.testing.assert_allclose(feats[:, S["root_lin_vel"]], np.tile([0.0, v], (t - 1, 1)), atol=1e-7)
    np.testing.assert_allclose(feats[:, S["root_y"]], 1.0 - pos[..., 1].min(), atol=1e-6)  # put on the floor
    np.testing.assert_allclose(feats[:, S["local_vel"]], np.tile([0.0, 0.0, v], (t - 1, 22)), atol=1e-7)
    ric = (pos[0, 1:] - pos[0, :1]).reshape(-1).copy()
    ric[1::3] += pos[0, 0, 1] - pos[..., 1].min()  # ric keeps the height above the floor
    np.testing.assert_allclose(feats[:, S["ric"]], np.tile(ric, (t - 1, 1)), atol=1e-6)
    # identity local rotations -> 6-D = first two columns of I
    np.testing.assert_allclose(feats[:, S["rot"]], np.tile([1, 0, 0, 0, 1, 0], (t - 1, 21)), atol=1e-6)
    np.testing.assert_array_equal(feats[:, S["foot_contact"]], 1.0)  # v^2 < 0.002
    fast = root.copy()
    fast[:, 2] *= 10  # 0.1 m/frame -> v^2 = 0.01 > 0.002: no contact
    np.testing.assert_array_equal(positions_to_features(forward_kinematics(quat, fast, _tpose_offsets()))[0][:, -4:], 0)


def test_positions_features_positions_round_trip():
    pos = _synthetic_hml(0)
    feats, glob = positions_to_features(pos)
    assert feats.shape == (len(pos) - 1, 263) and feats.dtype == np.float32
    rec = recover_from_ric(torch.from_numpy(feats).double()).numpy()
    np.testing.assert_allclose(rec, glob[:-1], atol=2e-4)
    # the normalised frame: on the floor, frame-0 root at the xz origin, facing +Z at frame 0
    assert abs(glob[..., 1].min()) < 1e-6
    np.testing.assert_allclose(glob[0, 0, [0, 2]], 0.0, atol=1e-6)
    across = (glob[0, 2] - glob[0, 1]) + (glob[0, 17] - glob[0, 16])
    fwd = np.cross([0, 1, 0], across)
    assert fwd[2] > 0 and abs(fwd[0]) < 1e-5 * np.linalg.norm(fwd)
    # the same motion rotated / shifted in the ground plane gives the same features
    yaw = 0.7
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    moved = pos @ rot.T + np.array([3.0, 0.5, -2.0])
    np.testing.assert_allclose(positions_to_features(moved)[0], feats, atol=2e-4)
    # contacts are binary, 6-D rotations are two unit columns
    assert set(np.unique(feats[:, S["foot_contact"]])) <= {0.0, 1.0}
    rot6 = feats[:, S["rot"]].reshape(-1, 21, 6)
    np.testing.assert_allclose(np.linalg.norm(rot6[..., :3], axis=-1), 1.0, atol=1e-5)
    with pytest.raises(DataFormatError, match=r"\[T >= 2, 22, 3\]"):
        positions_to_features(pos[:, :17])


def test_ik_fk_and_uniform_skeleton():
    pos = _synthetic_hml(1, 2.0)
    offsets = skeleton_offsets(pos[0])
    quat = inverse_kinematics(pos)
    np.testing.assert_allclose(forward_kinematics(quat, pos[:, 0], offsets), pos, atol=1e-5)
    target = offsets * 1.1
    retarget = uniform_skeleton(pos, target)
    np.testing.assert_allclose(np.linalg.norm(retarget[:, 4] - retarget[:, 1], axis=-1),
                               np.linalg.norm(target[4]), rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(retarget[:, 0], pos[:, 0] * 1.1, rtol=1e-6)  # root scaled by the leg ratio


def test_mean_std_groups():
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(50, 263)) * np.linspace(0.1, 3, 263) for _ in range(3)]
    mean, std = feature_mean_std(feats)
    allf = np.concatenate(feats)
    np.testing.assert_allclose(mean, allf.mean(0), rtol=1e-5)
    for sl in S.values():
        np.testing.assert_allclose(std[sl], allf.std(0)[sl].mean(), rtol=1e-5)


def _write_release(root, clips):
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    feats = {}
    for name, (pos, lines) in clips.items():
        feats[name] = positions_to_features(pos)[0]
        np.save(root / "new_joint_vecs" / f"{name}.npy", feats[name])
        (root / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    mean, std = feature_mean_std(list(feats.values()))
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    (root / "train.txt").write_text("000001\n000002\nmissing\n")
    (root / "test.txt").write_text("000003\n")
    return feats


def test_loader_on_release_files(tmp_path):
    root = tmp_path / "HumanML3D"
    walk = _synthetic_hml(2, 4.0)  # 80 frames -> 79 feature rows
    clips = {
        "000001": (walk, ["a person walks forward.#a/DET person/NOUN walk/VERB forward/ADV#0.0#0.0",
                          "someone strolls#someone/PRON stroll/VERB#nan#nan",
                          "a person turns#a/DET person/NOUN turn/VERB#0.5#2.75"]),  # frames 10..54 (45)
        "000002": (walk[:30], ["too short#too/ADV short/ADJ#0.0#0.0"]),
        "000003": (_synthetic_hml(3, 3.0), ["a person waves#a/DET person/NOUN wave/VERB#0.0#0.0"]),
    }
    feats = _write_release(root, clips)
    texts = parse_texts_file(root / "texts" / "000001.txt")
    assert texts[0].caption == "a person walks forward." and texts[0].tokens[2] == "walk/VERB"
    assert (texts[1].start_s, texts[1].end_s) == (0.0, 0.0) and (texts[2].start_s, texts[2].end_s) == (0.5, 2.75)
    assert read_split(root, "train") == ["000001", "000002", "missing"]
    entries = load_humanml3d_split(root, "train")
    assert [e.name for e in entries] == ["000001", "000001_2"]  # short clip and missing id skipped
    assert [t.caption for t in entries[0].texts] == ["a person walks forward.", "someone strolls"]
    np.testing.assert_array_equal(entries[1].features, feats["000001"][10:55])
    mean, std = load_mean_std(root)
    assert mean.shape == std.shape == (263,)
    ds = build_humanml3d_generation_dataset(root, "train", max_frames=64)
    assert len(ds) == 2 and ds.fps == 20 and ds.random_caption
    b = collate_generation([ds[0], ds[1]])
    assert b["motion"].shape == (2, 64, 22, 3)
    assert b["length"].tolist() == [64, 45] and b["mask"].sum().item() == 64 + 45
    # positions recovered from the features: same motion as the processed positions (canonical frame)
    glob = positions_to_features(walk)[1]
    np.testing.assert_allclose(ds.motion(0), glob[:64], atol=3e-4)
    test = build_humanml3d_generation_dataset(root, "test")
    assert len(test) == 1 and test.texts[0] == ["a person waves"] and not test.random_caption
    (root / "texts" / "000003.txt").write_text("broken line without fields\n")
    with pytest.raises(DataFormatError, match="caption#tokens#from#to"):
        load_humanml3d_split(root, "test")
    with pytest.raises(DatasetNotPreparedError, match="val.txt"):
        load_humanml3d_split(root, "val")
