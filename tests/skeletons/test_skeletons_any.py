"""Skeletons from data: hierarchy derivations, files, BVH / URDF / MJCF, registry, joint-order messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import official_fixture
from skeleton_diffusion.skeletons.skeleton import Skeleton
from skeleton_diffusion.skeletons.lookup import get_skeleton, register_skeleton
from skeleton_diffusion.skeletons.formats.files import (
    describe_mismatch,
    load_skeleton_file,
    save_skeleton_file,
    skeleton_from_bvh,
    skeleton_from_dict,
    skeleton_from_mjcf,
    skeleton_from_urdf,
)
from skeleton_diffusion.skeletons.hierarchy import (
    derive_limb_angles,
    derive_node_types,
    side_of,
    subset_hierarchy,
    twin_key,
)

BUILTINS = ["amass", "amass-mano", "h36m", "freeman"]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_are_instances_of_the_hierarchy_mechanism(name):
    """Rebuilt from names + parents only, every built-in gives the official graph matrices and node types."""
    ref = torch.load(official_fixture("skeletons.pt"), weights_only=True)["skeletons"][name]
    sk = get_skeleton(name)
    rebuilt = Skeleton.from_hierarchy(name + "-rebuilt", sk.joint_names, sk.parents,
                                      twin_rule=sk.spec.twin_rule)
    assert rebuilt.num_node_types == ref["num_node_types"]
    assert list(rebuilt.node_types) == ref["node_types"].tolist()
    # same graph: limbs as sets (the official order of the tables is kept by the built-ins themselves)
    assert {tuple(sorted(x)) for x in rebuilt.node_limbs} == {tuple(sorted(x)) for x in ref["node_limbseq"].tolist()}
    np.testing.assert_array_equal(rebuilt.adjacency(), ref["adjacency"].numpy())
    np.testing.assert_array_equal(rebuilt.reachability(0.5, "hips"), ref["reachability_factor0.5_stop_hips"].numpy())
    np.testing.assert_array_equal(rebuilt.reachability(0.5, None), ref["reachability_factor0.5_stop_none"].numpy())
    # the general side rule (any side marker) gives the official plot sides too
    assert list(Skeleton.from_hierarchy("x", sk.joint_names, sk.parents).left_right) == ref["left_right_limb"]


def test_derived_angles_and_chains_are_consistent():
    sk = get_skeleton("h36m")
    rebuilt = Skeleton.from_hierarchy("h36m-rebuilt", sk.joint_names, sk.parents)
    limbs = rebuilt.node_limbs
    for chain in rebuilt.limb_angles_idx:
        for a, b in zip(chain[:-1], chain[1:]):
            assert limbs[a][1] == limbs[b][0], (limbs[a], limbs[b])  # a bone and its child bone
    covered = {(a, b) for c in rebuilt.kinchain for a, b in zip(c[:-1], c[1:])}
    non_root = {(p - 1, c - 1) for p, c in sk.limbs if p != 0}
    assert non_root <= covered  # every bone below the root is drawn
    assert derive_limb_angles(rebuilt.parents, limbs) == tuple(tuple(c) for c in rebuilt.limb_angles_idx)


def test_side_rules_and_twins():
    for left, right in [("LHip", "RHip"), ("LeftUpLeg", "RightUpLeg"), ("left_hip", "right_hip"), ("hip_l", "hip_r"),
                        ("Hip.L", "Hip.R"), ("L_Wrist", "R_Wrist")]:
        assert side_of(left) == "L" and side_of(right) == "R", (left, right)
        assert twin_key(left) == twin_key(right)
    for centre in ("Hips", "Spine1", "Head", "LowerBack", "Neck1", "chest", "BMN"):
        assert side_of(centre) is None and twin_key(centre) == centre
    assert derive_node_types(["LeftArm", "RightArm", "Spine"]) == (0, 0, 1)
    assert derive_node_types(["LeftArm", "Spine"]) == (0, 1)  # no twin -> own type
    assert derive_node_types(["a", "b", "c"], lr_pairs=[("a", "c")]) == (0, 1, 0)
    assert derive_node_types(["LeftArm", "RightArm"], rule="none") == (0, 1)
    with pytest.raises(ValueError, match="zz"):
        derive_node_types(["a", "b"], lr_pairs=[("a", "zz")])


HAND = """\
name: tiny6
joints:
  - {name: Root}
  - {name: LLeg, parent: Root}
  - {name: RLeg, parent: Root}
  - {name: Torso, parent: Root}
  - {name: LArm, parent: Torso}
  - {name: RArm, parent: Torso}
"""


def test_yaml_and_json_files_round_trip(tmp_path):
    (tmp_path / "s.yaml").write_text(HAND)
    sk = load_skeleton_file(tmp_path / "s.yaml")
    assert sk.name == "tiny6" and sk.num_joints == 6 and sk.parents == (-1, 0, 0, 0, 3, 3)
    assert sk.node_types == (0, 0, 1, 2, 2)
    assert sk.hip_triangle == (("LLeg", "RLeg"), ("LLeg", "Torso"), ("RLeg", "Torso"))
    assert sk.adjacency().sum() == 2 * 5
    for suffix in (".json", ".yaml"):
        save_skeleton_file(sk, tmp_path / f"out{suffix}")
        back = load_skeleton_file(tmp_path / f"out{suffix}")
        assert back == sk
    compact = {"name": "tiny6", "joint_names": list(sk.joint_names), "parents": list(sk.parents)}
    assert skeleton_from_dict(compact) == sk
    # a file naming a built-in loads the built-in (official tables)
    assert skeleton_from_dict(get_skeleton("h36m").to_dict()) is get_skeleton("h36m")


@pytest.mark.parametrize("bad, match", [
    ({"joints": [{"name": "a"}]}, "name"),
    ({"name": "x", "joints": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}, "no parent"),
    ({"name": "x", "joints": [{"name": "a"}, {"name": "b", "parent": "zz"}, {"name": "c", "parent": "a"}]}, "zz"),
    ({"name": "x", "joints": [{"name": "a"}, {"name": "a", "parent": "a"}, {"name": "c", "parent": "a"}]}, "duplicate"),
    ({"name": "x", "joint_names": ["a", "b", "c"], "parents": [-1, 2, 0]}, "before"),
    ({"name": "h36m", "joints": [{"name": "a"}, {"name": "b", "parent": "a"}, {"name": "c", "parent": "a"}]}, "built-in"),
])
def test_bad_definitions_name_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        skeleton_from_dict(bad, source="file.yaml")


def test_get_skeleton_path_and_registry(tmp_path):
    (tmp_path / "s.yaml").write_text(HAND.replace("tiny6", "tiny6reg"))
    sk = get_skeleton(str(tmp_path / "s.yaml"))
    assert get_skeleton("tiny6reg") is sk and get_skeleton(sk) is sk
    other = Skeleton.from_hierarchy("tiny6reg", ["A", "B", "C"], [-1, 0, 0])
    with pytest.raises(ValueError, match="already registered"):
        register_skeleton(other)
    with pytest.raises(ValueError, match="built-in"):
        register_skeleton(Skeleton.from_hierarchy("tiny3", ["A", "B", "C"], [-1, 0, 0]), "amass")
    with pytest.raises(ValueError, match="not found"):
        get_skeleton(str(tmp_path / "missing.yaml"))


def test_subset_relinks_to_nearest_kept_ancestor():
    names = ["root", "a", "b", "c", "d"]
    kept, parents = subset_hierarchy(names, [-1, 0, 1, 2, 0], ["c", "d"])
    assert kept == [0, 3, 4] and parents == [-1, 0, 0]
    with pytest.raises(ValueError, match="nope"):
        subset_hierarchy(names, [-1, 0, 1, 2, 0], ["nope"])


def test_mismatch_message_names_both_skeletons():
    msg = describe_mismatch("the checkpoint", get_skeleton("amass"), "dataset=h36m", get_skeleton("h36m"))
    assert "'amass'" in msg and "'h36m'" in msg and "joint 1" in msg and "'LHip' vs 'RHip'" in msg


BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT LeftUpLeg
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
  JOINT RightUpLeg
  {
    OFFSET -10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Head
    {
      OFFSET 0 50 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 10 0
      }
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.0333333
0 90 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
"""


def test_skeleton_from_bvh_drops_end_sites(tmp_path):
    (tmp_path / "a.bvh").write_text(BVH)
    sk = skeleton_from_bvh(tmp_path / "a.bvh")
    assert sk.joint_names == ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "Head")
    assert sk.parents == (-1, 0, 0, 0, 3)
    assert sk.node_types == (0, 0, 1, 2)  # LeftUpLeg/RightUpLeg twins
    sub = skeleton_from_bvh(tmp_path / "a.bvh", "sub", joints=["LeftUpLeg", "RightUpLeg", "Head"])
    assert sub.joint_names == ("Hips", "LeftUpLeg", "RightUpLeg", "Head") and sub.parents == (-1, 0, 0, 0)


URDF = """<robot name="arm"><link name="base"/><link name="upper"/><link name="lower"/><link name="hand"/>
<joint name="j1" type="revolute"><parent link="base"/><child link="upper"/><origin xyz="0 0 0.1"/><axis xyz="0 0 1"/></joint>
<joint name="j2" type="revolute"><parent link="upper"/><child link="lower"/><origin xyz="0 0 0.3" rpy="0 0 0"/></joint>
<joint name="j3" type="fixed"><parent link="lower"/><child link="hand"/><origin xyz="0 0 0.25"/></joint>
</robot>"""
MJCF = """<mujoco model="walker"><worldbody><geom name="floor"/>
<body name="torso" pos="0 0 1.2"><body name="thigh_left" pos="0 0.1 -0.2"><body name="leg_left" pos="0 0 -0.45"/></body>
<body name="thigh_right" pos="0 -0.1 -0.2"><body name="leg_right" pos="0 0 -0.45"/></body></body></worldbody></mujoco>"""


def test_urdf_and_mjcf_hierarchies(tmp_path):
    from skeleton_diffusion.skeletons.formats.urdf_mjcf import parse_urdf

    (tmp_path / "r.urdf").write_text(URDF)
    h = parse_urdf(tmp_path / "r.urdf")
    assert h.names == ["base", "upper", "lower", "hand"] and h.parents == [-1, 0, 1, 2]
    np.testing.assert_allclose(h.offsets[2], [0, 0, 0.3])
    assert h.joint_type[1] == "revolute" and h.joint_type[3] == "fixed"
    assert skeleton_from_urdf(tmp_path / "r.urdf").name == "arm"
    (tmp_path / "m.xml").write_text(MJCF)
    sk = skeleton_from_mjcf(tmp_path / "m.xml")
    assert sk.joint_names == ("torso", "thigh_left", "leg_left", "thigh_right", "leg_right")
    assert sk.parents == (-1, 0, 1, 0, 3) and sk.node_types == (0, 1, 0, 1)
    (tmp_path / "bad.urdf").write_text("<robot><link name='a'/><link name='b'/></robot>")
    from skeleton_diffusion.utils.errors import DataFormatError

    with pytest.raises(DataFormatError, match="one root link"):
        parse_urdf(tmp_path / "bad.urdf")


def test_checkpoint_meta_carries_the_skeleton():
    from skeleton_diffusion.checkpoints.format import make_meta

    meta = make_meta("autoencoder", "h36m")
    assert meta["joint_names"] == list(get_skeleton("h36m").joint_names)
    assert skeleton_from_dict(meta["skeleton_def"]) is get_skeleton("h36m")
    json.dumps(meta)  # plain data (weights_only-safe)
    assert "joint_names" not in make_meta("autoencoder", "no-such-skeleton")


def test_checkpoint_skeleton_falls_back_to_meta_and_refuses_mismatch(tmp_path):
    from skeleton_diffusion.methods.skeleton_diffusion.predictor import checkpoint_skeleton
    from skeleton_diffusion.utils.errors import CheckpointError

    sk = Skeleton.from_hierarchy("portable7", ["P", "LA", "RA", "S", "H", "LB", "RB"], [-1, 0, 0, 0, 3, 3, 3])
    meta = {"joint_names": list(sk.joint_names), "skeleton_def": sk.to_dict()}
    got = checkpoint_skeleton(meta, str(tmp_path / "gone" / "skeleton.json"))
    assert got.joint_names == sk.joint_names
    with pytest.raises(CheckpointError, match="amass"):
        checkpoint_skeleton({"joint_names": list(sk.joint_names)}, "amass")


def test_clip_labels_and_clip_checks(tmp_path):
    from skeleton_diffusion.data.builders.native_skeleton import _read_clip_arrays, clip_labels

    paths = {"a__walk_01": "a/walk_01.bvh", "a__walk_02": "a/walk_02.bvh", "b__run_1": "b/run_1.bvh"}
    assert clip_labels(paths, "auto") == {"a__walk_01": "a", "a__walk_02": "a", "b__run_1": "b"}
    assert clip_labels(paths, "filename") == {"a__walk_01": "walk", "a__walk_02": "walk", "b__run_1": "run"}
    assert clip_labels({"x": "humanoid3d_walk.txt", "y": "humanoid3d_run.txt"}) == {"x": "walk", "y": "run"}
    assert clip_labels(paths, "none")["b__run_1"] == "b__run_1"
    with pytest.raises(ValueError, match="labels"):
        clip_labels(paths, "bogus")
    from skeleton_diffusion.utils.errors import DataFormatError

    np.save(tmp_path / "c.npy", np.zeros((10, 4, 3), np.float32))
    with pytest.raises(DataFormatError, match=r"c.*\[T, 6, 3\]"):
        _read_clip_arrays(tmp_path, 6)
    np.save(tmp_path / "c.npy", np.full((10, 6, 3), np.nan, np.float32))
    with pytest.raises(DataFormatError, match="NaN"):
        _read_clip_arrays(tmp_path, 6)
