"""BVH builder: parser + FK on hand-written files, units/axes/resampling, joint maps, real CMU files -> dataset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from _mocap_helpers import TREE  # noqa: E402  (the LAFAN1 hierarchy, cm)
from skeleton_diffusion.data.builders.bvh import SMPL22_NAMES, builtin_map, bvh_to_amass22, load_joint_map
from skeleton_diffusion.data.builders.common import resample, split_clips
from skeleton_diffusion.skeletons.formats.bvh import bvh_forward_kinematics, parse_bvh, resolve_unit, to_z_up
from skeleton_diffusion.data.processed import read_processed
from skeleton_diffusion.apps.create_bvh_dataset import main as bvh_main
from skeleton_diffusion.utils.errors import DataFormatError

CMU_DIR = Path(os.environ.get("CMU_BVH_DIR", "/usr/share/assimp/models/BVH"))  # .ci/run fails when these are absent
CMU_FILES = ["01_01.bvh", "01_03.bvh"]

TINY = """HIERARCHY
ROOT Hips
{
\tOFFSET 0 0 0
\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
\tJOINT Chest
\t{
\t\tOFFSET 0 10 0
\t\tCHANNELS 3 Xrotation Yrotation Zrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 0 5 0
\t\t}
\t}
}
MOTION
Frames: 3
Frame Time: 0.5
1 2 3 0 0 0 0 0 0
0 0 0 90 0 0 0 0 90
0 0 0 90 90 0 0 0 0
"""


def test_parse_and_fk_hand_computed():
    motion = parse_bvh("tiny.bvh", TINY)
    assert motion.joint_names == ["Hips", "Chest", "Chest_End"] and motion.fps == 2.0
    assert [j.parent for j in motion.joints] == [-1, 0, 1]
    pos = bvh_forward_kinematics(motion)
    # frame 0: pure translation
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 12, 3], [1, 17, 3]], atol=1e-12)
    # frame 1: Hips Rz(90) maps (0,10,0) -> (-10,0,0); Chest adds Rz(90): end offset (0,5,0) -> (0,-5,0)
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [-10, 0, 0], [-10, -5, 0]], atol=1e-12)
    # frame 2: channel order Z then X means R = Rz(90) @ Rx(90): (0,10,0) -> Rx -> (0,0,10) -> Rz -> (0,0,10)
    np.testing.assert_allclose(pos[2, 1], [0, 0, 10], atol=1e-12)


def test_parse_errors_name_the_problem():
    with pytest.raises(DataFormatError, match="MOTION"):
        parse_bvh("a.bvh", TINY.split("MOTION")[0])
    with pytest.raises(DataFormatError, match="expected 3 frames x 9 channels"):
        parse_bvh("b.bvh", TINY.rsplit("\n", 2)[0])
    with pytest.raises(DataFormatError, match="CHANNELS"):
        parse_bvh("c.bvh", TINY.replace("Xrotation Yrotation Zrotation", "Xrotation Yrotation Wrotation"))


def test_units_axes_and_resampling():
    motion = parse_bvh("tiny.bvh", TINY)
    assert resolve_unit("cm", motion) == 0.01 and resolve_unit(0.5, motion) == 0.5
    # extent 15 units: closest to a 1.7 m body is the decimetre (1.5 m)
    assert resolve_unit("auto", motion) == pytest.approx(0.1)
    np.testing.assert_allclose(to_z_up(np.array([[1.0, 2.0, 3.0]]), "y"), [[1, -3, 2]])
    x = np.arange(9, dtype=float)[:, None, None] * np.ones((1, 2, 3))  # linear in time
    np.testing.assert_allclose(resample(x, 120, 60)[:, 0, 0], [0, 2, 4, 6, 8])
    up = resample(x, 30, 60)
    assert up.shape[0] == 17
    np.testing.assert_allclose(up[:, 0, 0], np.arange(17) / 2)
    down = resample(x, 50, 30)  # non-integer ratio: linear interpolation at k/30 s
    np.testing.assert_allclose(down[:, 0, 0], np.arange(down.shape[0]) * 50 / 30)


def test_joint_maps(tmp_path):
    cmu = builtin_map("cmu")
    assert set(cmu) == set(SMPL22_NAMES) and cmu["left_knee"] == ["LeftLeg"]
    m = {name: "Hips" for name in SMPL22_NAMES}
    m.update({"LHip": "Chest", "spine1": ["Hips", "Chest"], "unit": "m", "up": "z"})
    path = tmp_path / "map.json"
    path.write_text(json.dumps(m))
    jmap, opts = load_joint_map(path)
    assert jmap["left_hip"] == ["Chest"] and jmap["spine1"] == ["Hips", "Chest"] and opts == {"unit": "m", "up": "z"}
    bvh = tmp_path / "tiny.bvh"
    bvh.write_text(TINY)
    out, info = bvh_to_amass22(bvh, path, fps=2)
    assert out.shape == (3, 22, 3) and info["metres_per_unit"] == 1.0
    np.testing.assert_allclose(out[0, 3], [1, 7, 3])  # mean of Hips (1,2,3) and Chest (1,12,3), z-up unchanged
    del m["head"]
    path.write_text(json.dumps(m))
    with pytest.raises(DataFormatError, match="head"):
        load_joint_map(path)
    with pytest.raises(DataFormatError, match="not in the BVH hierarchy"):
        bvh_to_amass22(bvh, "cmu")


def test_split_modes():
    lengths = {f"c{i:02d}": 1000 for i in range(20)}
    s = split_clips(list(lengths), lengths, "auto")
    assert sum(len(v) for v in s.values()) == 20 and len(s["test"]) == 2 and len(s["valid"]) == 2
    assert not set(s["test"]) & set(s["train"])
    t = split_clips(["a"], {"a": 1000}, "auto")
    assert t["train"]["a"] == (0, 700) and t["valid"]["a"] == (700, 850) and t["test"]["a"] == (850, 1000)
    assert split_clips(["a", "b"], {"a": 5, "b": 6}, "test")["test"] == {"a": (0, 5), "b": (0, 6)}


@pytest.fixture(scope="module")
def cmu_dataset(tmp_path_factory):
    if not all((CMU_DIR / f).is_file() for f in CMU_FILES):
        pytest.skip(f"real CMU BVH files not installed ({CMU_DIR}; apt-get install assimp-testmodels)")
    root = tmp_path_factory.mktemp("cmu")
    (root / "in").mkdir()
    for f in CMU_FILES:
        shutil.copy(CMU_DIR / f, root / "in" / f)
    rc = bvh_main(["--input", str(root / "in"), "--name", "CMUSmall", "--data-root", str(root / "ds"), "--quiet"])
    assert rc == 0
    return root


def test_real_cmu_files_give_human_bone_lengths(cmu_dataset):
    hmp = cmu_dataset / "ds/processed/CMUSmall/hmp"
    pos = read_processed(hmp / "data_3d_cmusmall.npz")
    clips = {(s, c): a for s, d in pos.items() for c, a in d.items()}
    # 01_01: 2752 frames at 120 Hz -> 1376 at 60 Hz, cut 70/15/15 in time
    assert sum(len(a) for (s, c), a in clips.items() if c == "01_01") == 1376
    for (split, clip), arr in clips.items():
        assert arr.shape[1:] == (22, 3) and arr.dtype == np.float32
        for hip, knee in ((1, 4), (2, 5)):
            femur = np.linalg.norm(arr[:, hip] - arr[:, knee], axis=-1)
            assert 0.35 < femur.mean() < 0.5 and femur.std() < 1e-4, (split, clip, femur.mean())
        shin = np.linalg.norm(arr[:, 4] - arr[:, 7], axis=-1)
        assert 0.3 < shin.mean() < 0.5
        # Z-up: the head is above the pelvis, the feet below it
        assert np.mean(arr[:, 15, 2] - arr[:, 0, 2]) > 0.3 and np.mean(arr[:, 10, 2] - arr[:, 0, 2]) < -0.6
    info = json.loads((hmp / "build_info.json").read_text())
    assert info["files"]["01_01"]["metres_per_unit"] == pytest.approx(0.0254 / 0.45)


def test_real_cmu_windows_load_through_the_data_layer(cmu_dataset):
    import torch

    from skeleton_diffusion.data.registry import build_dataset

    hmp = cmu_dataset / "ds/processed/CMUSmall/hmp"
    cfg = json.loads((hmp / "dataset_config.json").read_text())
    n_csv = {s: len((hmp / f"segments_{s}.csv").read_text().strip().splitlines()) - 1 for s in ("valid", "test")}
    assert n_csv["test"] > 0 and n_csv["valid"] > 0
    test = build_dataset(cfg, "test", pose_box_size=1.2, dataset_main_path=cmu_dataset / "ds", if_load_mmgt=True)
    assert len(test) == n_csv["test"]
    obs, fut, extra = test[0]
    assert tuple(obs.shape) == (30, 21, 3) and tuple(fut.shape) == (120, 21, 3)
    assert torch.isfinite(obs).all() and extra["mm_gt"].shape[1:] == (120, 21, 3)
    train = build_dataset(cfg, "train", pose_box_size=1.2, dataset_main_path=cmu_dataset / "ds")
    assert len(train) > 10
    assert (hmp / "mean_motion_test.txt").read_text().count("\n") >= 1


def _write_lafan_like(path: Path, frames: int, rng) -> None:
    children: dict = {}
    for name, parent, _ in TREE:
        children.setdefault(parent, []).append(name)
    offsets = {n: o for n, _, o in TREE}
    lines = ["HIERARCHY"]

    def emit(name, depth, root=False):
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(pad + "\tOFFSET " + " ".join(str(v) for v in offsets[name]))
        chans = "6 Xposition Yposition Zposition Zrotation Yrotation Xrotation" if root else "3 Zrotation Yrotation Xrotation"
        lines.append(pad + "\tCHANNELS " + chans)
        kids = children.get(name, [])
        for k in kids:
            emit(k, depth + 1)
        if not kids:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0 5 0", pad + "\t}"])
        lines.append(pad + "}")

    emit("Hips", 0, root=True)
    n_ch = 6 + 3 * (len(TREE) - 1)
    data = rng.normal(0, 15, (frames, n_ch))
    data[:, :3] = [0, 90, 0]
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1 / 30:.7f}"]
    lines += [" ".join(f"{v:.4f}" for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n")


def test_lafan1_map_units_and_upsampling(tmp_path):
    path = tmp_path / "walk1_subject1.bvh"
    _write_lafan_like(path, 11, np.random.default_rng(0))
    out, info = bvh_to_amass22(path, "lafan1", fps=60)
    assert info["metres_per_unit"] == 0.01 and info["source_fps"] == 30.0
    assert out.shape == (21, 22, 3)  # 11 frames at 30 Hz span 1/3 s -> 21 frames at 60 Hz
    femur = np.linalg.norm(out[::2, 1] - out[::2, 4], axis=-1)  # original frames: exact bone length
    np.testing.assert_allclose(femur, 0.42, atol=1e-5)
    assert out[0, 0, 2] == pytest.approx(0.9, abs=1e-5)  # pelvis height: Y-up cm -> Z-up m


# ---------------------------------------------------------------------------------- native skeleton (issue 17)
@pytest.fixture(scope="module")
def cmu_native(tmp_path_factory):
    if not all((CMU_DIR / f).is_file() for f in CMU_FILES):
        pytest.skip(f"real CMU BVH files not installed ({CMU_DIR}; apt-get install assimp-testmodels)")
    root = tmp_path_factory.mktemp("cmu_native")
    for sub, f in zip(("walk", "run"), CMU_FILES):
        (root / "in" / sub).mkdir(parents=True)
        shutil.copy(CMU_DIR / f, root / "in" / sub / f)
    rc = bvh_main(["--input", str(root / "in"), "--name", "CMUNative", "--data-root", str(root / "ds"), "--quiet",
                   "--skeleton", "native"])
    assert rc == 0
    return root / "ds" / "processed" / "CMUNative" / "hmp"


def _cmu_rigid_joints() -> list[str]:
    """The file's joints that can have a bone: the root and every joint with a non-zero OFFSET (the cgspeed files'
    zero-offset helper joints, e.g. LHipJoint, LowerBack, Neck, LThumb, coincide with their parent in every frame
    and are dropped by --drop-degenerate, the default)."""
    from skeleton_diffusion.skeletons.formats.bvh import parse_bvh

    m = parse_bvh(CMU_DIR / CMU_FILES[0])
    return [j.name for j in m.joints if not j.is_end_site and (j.parent < 0 or np.linalg.norm(j.offset) > 1e-6)]


def test_native_cmu_keeps_the_files_joints_in_metres_z_up(cmu_native):
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file

    sk = load_skeleton_file(cmu_native / "skeleton.json")
    rigid = _cmu_rigid_joints()
    assert len(rigid) == 21  # 31 joints in the file, 10 zero-offset helpers
    assert list(sk.joint_names) == rigid and sk.joint_names[0] == "Hips"
    assert sk.node_types[sk.node_names.index("LeftUpLeg")] == sk.node_types[sk.node_names.index("RightUpLeg")]
    pos = read_processed(cmu_native / "data_3d_cmunative.npz")
    j = {n: i for i, n in enumerate(sk.joint_names)}
    for clips in pos.values():
        for arr in clips.values():
            assert arr.shape[1:] == (len(rigid), 3)
            femur = np.linalg.norm(arr[:, j["LeftUpLeg"]] - arr[:, j["LeftLeg"]], axis=-1)
            assert 0.35 < femur.mean() < 0.5 and femur.std() < 1e-4
            assert np.mean(arr[:, j["Head"], 2] - arr[:, 0, 2]) > 0.3  # Z up
            assert np.mean(arr[:, j["LeftFoot"], 2] - arr[:, 0, 2]) < -0.6
    labels = dict(ln.split(",") for ln in (cmu_native / "clip_labels.txt").read_text().split())
    assert set(labels.values()) == {"walk", "run"}  # folder labels (CMD classes)
    cfg = (cmu_native / "dataset_config.yaml").read_text()
    assert "skeleton.json" in cfg and f"num_joints: {len(rigid)}" in cfg


def test_native_cmu_windows_load_and_subset(cmu_native, tmp_path):
    from skeleton_diffusion.data.registry import build_dataset

    cfg = json.loads((cmu_native / "dataset_config.json").read_text())
    cfg["skeleton_name"] = str(cmu_native / "skeleton.json")
    test = build_dataset(cfg, "test", pose_box_size=1.0, dataset_main_path=cmu_native.parents[2], if_load_mmgt=True)
    obs, fut, _ = test[0]
    nodes = len(_cmu_rigid_joints()) - 1  # the root is not a node
    assert tuple(obs.shape) == (30, nodes, 3) and tuple(fut.shape) == (120, nodes, 3)
    assert len(test.idx_to_class) == 2
    # a joint subset keeps the root, re-links parents and drops the rest
    (tmp_path / "in").mkdir()
    shutil.copy(CMU_DIR / CMU_FILES[0], tmp_path / "in" / CMU_FILES[0])
    keep = "LeftUpLeg,LeftLeg,LeftFoot,RightUpLeg,RightLeg,RightFoot,Spine1,Head,LeftArm,LeftForeArm,LeftHand," \
           "RightArm,RightForeArm,RightHand"
    assert bvh_main(["--input", str(tmp_path / "in"), "--name", "Sub", "--data-root", str(tmp_path / "ds"), "--quiet",
                     "--skeleton", "native", "--joints", keep, "--no-side-files"]) == 0
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file

    sub = load_skeleton_file(tmp_path / "ds/processed/Sub/hmp/skeleton.json")
    assert sub.num_joints == 15 and sub.parents[sub.joint_names.index("LeftUpLeg")] == 0
    assert sub.parents[sub.joint_names.index("LeftArm")] == sub.joint_names.index("Spine1")


def test_side_files_regenerate_with_one_command(cmu_native):
    from skeleton_diffusion.data.side_files import main as side_main

    for f in ("mean_motion_test.txt", "mmgt_test.txt", "mmapd_GT.csv"):
        (cmu_native / f).unlink(missing_ok=True)
    assert side_main([str(cmu_native), "--segments"]) == 0
    for f in ("mean_motion_test.txt", "mmgt_test.txt", "mmapd_GT.csv", "segments_test.csv"):
        assert (cmu_native / f).is_file(), f
    n_test = len((cmu_native / "segments_test.csv").read_text().strip().splitlines()) - 1
    assert len((cmu_native / "mmapd_GT.csv").read_text().strip().splitlines()) - 1 == n_test


def test_zero_shot_split_mode_test_writes_a_config(cmu_dataset, tmp_path):
    (tmp_path / "in").mkdir()
    shutil.copy(CMU_DIR / CMU_FILES[0], tmp_path / "in" / CMU_FILES[0])
    assert bvh_main(["--input", str(tmp_path / "in"), "--name", "ZS", "--data-root", str(tmp_path / "ds"), "--quiet",
                     "--split-mode", "test", "--no-side-files"]) == 0
    cfg = json.loads((tmp_path / "ds/processed/ZS/hmp/dataset_config.json").read_text())
    assert cfg["num_joints"] == 22 and cfg["skeleton_name"] == "amass"
