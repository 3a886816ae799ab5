"""Skeleton tables and matrices, against the spec's tables/appendices and the official fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import official_fixture
from skeleton_diffusion.skeletons.skeleton import SKELETON_NAMES
from skeleton_diffusion.skeletons.lookup import get_skeleton

NAMES = ["amass", "amass-mano", "h36m", "freeman"]


def test_counts_and_types():
    expected = {  # J, N, node types (spec data_eval §1 / models_training §1)
        "amass": (22, 21, 13), "amass-mano": (52, 51, 43), "h36m": (17, 16, 10), "freeman": (18, 17, 9),
        "3dpw": (22, 21, 13),
    }
    for name, (j, n, t) in expected.items():
        sk = get_skeleton(name)
        assert (sk.num_joints, sk.num_nodes, sk.num_node_types) == (j, n, t), name
        assert sk.joint_names[0] == "GlobalRoot"
    assert get_skeleton("amass").node_types == (0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 10, 10, 11, 11, 12, 12)
    assert get_skeleton("h36m").node_types == (0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 7, 8, 9)
    assert get_skeleton("freeman").node_types == (0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8)


def test_node_limbs_hip_triangle_first():
    assert get_skeleton("amass").node_limbs[:3] == ((0, 1), (0, 2), (1, 2))
    assert get_skeleton("h36m").node_limbs[:3] == ((0, 3), (0, 6), (3, 6))
    assert get_skeleton("freeman").node_limbs[:3] == ((1, 0), (1, 6), (0, 6))
    # spec §4.2: 21 node limbs for AMASS, entry 6 = (11, 14) (BMN-Head), entry 20 = (6, 9)
    nl = get_skeleton("amass").node_limbs
    assert len(nl) == 21 and nl[6] == (11, 14) and nl[20] == (6, 9)
    assert len(get_skeleton("amass-mano").node_limbs) == 51


def test_adjacency_properties():
    for name in NAMES:
        a = get_skeleton(name).adjacency()
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, a.T)
        assert np.all(np.diag(a) == 0)
        assert a.sum() == 2 * len(get_skeleton(name).node_limbs)


def test_reachability_stop_none_is_shortest_path():
    from scipy.sparse.csgraph import shortest_path

    for name in NAMES[:1] + NAMES[2:]:
        sk = get_skeleton(name)
        d = shortest_path(sk.adjacency(), unweighted=True)
        expect = np.where(np.isfinite(d) & (d > 0), 0.5 ** (d - 1), 0).astype(np.float32)
        np.testing.assert_allclose(sk.reachability(0.5, None), expect)


def test_reachability_hips_appendix_b():
    sk = get_skeleton("amass")
    r = sk.reachability(0.5, "hips")
    n = {name: i for i, name in enumerate(sk.node_names)}
    # rows that only have adjacency entries
    np.testing.assert_array_equal(r[n["LHip"]], sk.adjacency()[n["LHip"]])
    assert r[n["Spine3"], n["RWrist"]] == pytest.approx(0.0625)
    assert r[n["LWrist"], n["RWrist"]] == pytest.approx(0.0078125)
    assert r[n["Head"], n["LWrist"]] == pytest.approx(0.03125)
    fm = get_skeleton("freeman")
    rf = fm.reachability(0.5, "hips")
    f = {name: i for i, name in enumerate(fm.node_names)}
    assert rf[f["LEar"], f["Nose"]] == 0 and rf[f["LEar"], f["REye"]] == 0  # order effects (spec appendix B)
    assert rf[f["LEye"], f["REye"]] == 0.5 and rf[f["LEar"], f["RShoulder"]] == 0.25
    with pytest.raises(ValueError, match="stop_at"):
        sk.reachability(0.5, "knees")


def test_parents_and_left_right():
    sk = get_skeleton("amass")
    assert sk.parents[:6] == (-1, 0, 0, 0, 1, 2)
    assert sk.left_right[:3] == (True, False, True)
    assert get_skeleton("amass-mano").left_right[22] is False and get_skeleton("amass-mano").left_right[37] is True


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="amass"):
        get_skeleton("kinect")
    assert "3dpw" in SKELETON_NAMES


@pytest.mark.parametrize("name", NAMES)
def test_against_official_fixture(name):
    ref = torch.load(official_fixture("skeletons.pt"), weights_only=True)["skeletons"][name]
    sk = get_skeleton(name)
    assert list(sk.joint_names) == ref["joint_names"]
    assert list(sk.node_names) == ref["node_names"]
    assert list(sk.node_types) == ref["node_types"].tolist()
    assert sk.num_node_types == ref["num_node_types"]
    assert [list(x) for x in sk.limbs] == ref["limbseq_joints"].tolist()
    assert [list(x) for x in sk.node_limbs] == ref["node_limbseq"].tolist() == ref["metric_limbseq"].tolist()
    np.testing.assert_array_equal(sk.adjacency(), ref["adjacency"].numpy())
    np.testing.assert_array_equal(sk.reachability(0.5, "hips"), ref["reachability_factor0.5_stop_hips"].numpy())
    np.testing.assert_array_equal(sk.reachability(0.5, None), ref["reachability_factor0.5_stop_none"].numpy())
    assert sk.limb_angles_idx == ref["limb_angles_idx"]
    assert sk.kinchain == ref["kinchain"]
    assert list(sk.left_right) == ref["left_right_limb"]
    assert list(sk.parents) == ref["parents_joints"]
