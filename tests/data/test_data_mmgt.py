"""MMGT sets, their file format, GT APD, mean-motion references and the side-file builder."""

import json

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from skeleton_diffusion.data.processed import save_processed
from skeleton_diffusion.data.mean_motion import compute_mean_motion, read_mean_motion, segment_mean_speed, write_mean_motion
from skeleton_diffusion.data.mmgt import (
    compute_mmgt,
    compute_mmgt_apd,
    mmgt_summary,
    read_mmapd_csv,
    read_mmgt,
    write_mmapd_csv,
    write_mmgt,
)
from skeleton_diffusion.data.side_files import build_side_files
from skeleton_diffusion.utils.errors import DataFormatError


def test_hand_made_case():
    # 4 "poses" of one node: distances 0-1: 0.3, 0-2: 0.4 (not < 0.4), 1-2: 0.1, 3 far away
    last = np.array([[[0.0, 0, 0]], [[0.3, 0, 0]], [[0.4, 0, 0]], [[5.0, 0, 0]]], dtype=np.float64)
    mm = compute_mmgt(last, 0.4, precision="float64")
    assert mm == {0: {0, 1}, 1: {0, 1, 2}, 2: {1, 2}, 3: {3}}
    s = mmgt_summary({k: sorted(v) for k, v in mm.items()})
    assert s["singletons"] == 1 and s["max_size"] == 3 and s["mean_size"] == pytest.approx(2.0)


def test_matches_pdist_and_is_block_size_independent():
    rng = np.random.default_rng(0)
    last = rng.normal(scale=0.15, size=(300, 21, 3)).astype(np.float32)
    thr = 1.5
    ref = squareform(pdist(last.reshape(300, -1).astype(np.float64))) < thr
    expect = {i: set(np.flatnonzero(ref[i]).tolist()) for i in range(300)}
    assert compute_mmgt(last, thr, precision="float64") == expect
    assert compute_mmgt(last, thr, block_size=37) == compute_mmgt(last, thr, block_size=4096)
    got = compute_mmgt(last, thr)
    assert all(i in got[i] for i in got) and all(i in got[j] for i in got for j in got[i])  # self + symmetric
    assert 1 < np.mean([len(v) for v in got.values()]) < 300


def test_file_format_round_trip_and_official_reader(tmp_path):
    mm = {2: {2}, 0: {3, 0}, 1: {1}, 3: {0, 3}}
    p = write_mmgt(tmp_path / "mmgt_test.txt", mm)
    text = p.read_text()
    assert text.startswith('"{0: {0, 3}, 1: {1}') and json.loads(text) == str({0: {0, 3}, 1: {1}, 2: {2}, 3: {0, 3}})
    assert read_mmgt(p, num_segments=4) == {0: [0, 3], 1: [1], 2: [2], 3: [0, 3]}
    with pytest.raises(DataFormatError, match="5"):
        read_mmgt(p, num_segments=5)
    (tmp_path / "plain.json").write_text(json.dumps({"0": [0], "1": [1, 0]}))
    assert read_mmgt(tmp_path / "plain.json") == {0: [0], 1: [0, 1]}


def test_mmgt_apd_and_csv(tmp_path):
    fut = np.zeros((3, 4, 2, 3), np.float32)
    fut[1] += 1.0  # differs from fut[0] by 1 in all 24 numbers -> distance sqrt(24)
    apd = compute_mmgt_apd(fut, {0: [0, 1], 1: [0, 1], 2: [2]})
    np.testing.assert_allclose(apd, [np.sqrt(24), np.sqrt(24), 0.0], rtol=1e-6)
    p = write_mmapd_csv(tmp_path / "mmapd_GT.csv", apd)
    assert p.read_text().splitlines()[:2] == ["id,gt_APD", f"0,{float(apd[0])!r}"]
    np.testing.assert_allclose(read_mmapd_csv(p), apd, rtol=1e-7)


def test_mean_motion_formula_and_file(tmp_path):
    fut = np.zeros((3, 5, 2, 3), np.float32)
    fut[0, :, :, 0] = np.arange(5)[:, None] * 0.01  # 0.01 m / frame for both joints
    fut[1, :, 0, 2] = np.arange(5) * 0.02  # one joint at 0.02, the other still -> 0.01
    fut[2, :, :, 1] = np.arange(5)[:, None] * 0.03
    np.testing.assert_allclose(segment_mean_speed(fut), [0.01, 0.01, 0.03], rtol=1e-5)
    refs, freqs = compute_mean_motion(list(fut), ["b", "a", "b"], ["a", "b", "c"], batch_size=2)
    np.testing.assert_allclose(refs[:2], [0.01, 0.02], rtol=1e-5)
    assert np.isnan(refs[2]) and freqs == [pytest.approx(1 / 3), pytest.approx(2 / 3), 0.0]
    p = write_mean_motion(tmp_path / "mean_motion_test.txt", ["a", "b", "c"], refs, freqs)
    assert p.read_text().count("\n") == 2 and p.read_text().startswith("a,0.0099999")
    assert read_mean_motion(p, ["b", "a"]) == [pytest.approx(0.02), pytest.approx(0.01)]
    with pytest.raises(DataFormatError, match="missing"):
        read_mean_motion(p, ["zzz"])


def test_build_side_files_on_fake_freeman(tmp_path):
    rng = np.random.default_rng(5)
    proc, ann = tmp_path / "proc", tmp_path / "ann"
    ann.mkdir()
    base = rng.normal(scale=0.2, size=(1, 18, 3)).astype(np.float32)
    data = {f"s{i}": (base + rng.normal(scale=0.02, size=(200, 18, 3))).astype(np.float32) for i in range(3)}
    save_processed(proc / "data_3d_freeman.npz", data)
    (ann / "seq_actions_labels.txt").write_text("s0,jump\ns1,walk\ns2,jump\n")
    rows = [f"s{i},{init},{init + 15},{init + 74}" for i in range(3) for init in (0, 15, 30, 45)]
    (ann / "segments_test.csv").write_text("name,init,pred_init,pred_end\n" + "\n".join(rows) + "\n")
    res = build_side_files("freeman", proc, ann)
    assert res["num_segments"] == 12 and len(res["written"]) == 2
    mm = read_mmgt(proc / "mmgt_test.txt", num_segments=12)
    assert all(i in v for i, v in mm.items())
    table = read_mean_motion(proc / "mean_motion_test.txt")
    assert list(table) == ["jump", "walk"] and table["jump"][1] == pytest.approx(8 / 12)
    again = build_side_files("freeman", proc, ann)
    assert again["written"] == [] and len(again["skipped"]) == 2
    assert build_side_files("freeman", proc, ann, force=True)["written"]


def test_mean_motion_matches_official_fixture():
    from conftest import official_fixture

    z = np.load(official_fixture("metrics.npz"))
    gt = z["gt"].astype(np.float32)  # float16 storage, exact in float32
    refs, freqs = compute_mean_motion(list(gt), [str(c) for c in z["classes"]], [str(c) for c in z["class_names"]])
    np.testing.assert_array_equal(np.array(refs), z["mean_motion_from_gt"])  # official compute_mean_motions
    assert freqs == [0.5, 0.25, 0.25]
