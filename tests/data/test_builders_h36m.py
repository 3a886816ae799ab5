"""Human3.6M builder: D3_Positions CDF files written with cdflib -> data_3d_h36m.npz; shipped CSV regeneration."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cdflib.cdfwrite import CDF

from skeleton_diffusion.data.processed import read_processed
from skeleton_diffusion.data.builders.h36m import (
    CONVERSION_IDX_H36M_32TO17,
    build_h36m,
    h36m_segment_rows,
    read_cdf_positions,
)
from skeleton_diffusion.apps.create_h36m_dataset import main as h36m_main
from skeleton_diffusion.utils.errors import DataFormatError


def write_pose_cdf(path: Path, positions_mm: np.ndarray) -> None:
    """A D3_Positions-style CDF: variable 'Pose' of shape [1, T, 96] float32 (as the real files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = positions_mm.shape[0]
    cdf = CDF(str(path), cdf_spec={"Compressed": False}, delete=True)
    cdf.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True,
                   "Dim_Sizes": [t, 96]}, var_attrs={}, var_data=positions_mm.reshape(1, t, 96).astype(np.float32))
    cdf.close()


FILES = {
    "S9": {"Sitting 1": 180, "TakingPhoto 1": 150, "WalkingDog": 126, "Directions": 130},
    "S11": {"Directions": 140, "Directions 1": 200, "Eating": 125},
}


@pytest.fixture(scope="module")
def h36m_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    rng = np.random.default_rng(0)
    raw = {}
    for subject, files in FILES.items():
        for stem, frames in files.items():
            pos = (rng.normal(0, 300, (frames, 32, 3)) + np.array([0, 0, 900])).astype(np.float32)
            write_pose_cdf(root / "raw/Human36M" / subject / "MyPoseFeatures/D3_Positions" / f"{stem}.cdf", pos)
            raw[(subject, stem)] = pos
    ann = root / "annotations/Human36M/hmp"
    ann.mkdir(parents=True)
    header, rows = h36m_segment_rows([("S9", "Sitting_1", 180), ("S9", "Photo_1", 150), ("S9", "WalkDog", 126),
                                      ("S11", "Directions_1", 200)])
    with open(ann / "segments_test.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    (ann / "mmapd_GT.csv").write_text("id,gt_APD\n" + "".join(f"{i},0.0\n" for i in range(len(rows))))
    return root, raw


def test_build_h36m_from_cdf(h36m_root):
    root, raw = h36m_root
    summary = build_h36m(root, subjects=["S9", "S11"], strict=False, progress=False)
    positions = read_processed(root / "processed/Human36M/hmp/data_3d_h36m.npz")
    assert set(positions["S9"]) == {"Sitting_1", "Photo_1", "WalkDog", "Directions"}
    assert set(positions["S11"]) == {"Directions_1", "Eating"}  # S11 Directions skipped (corrupted)
    clip = positions["S9"]["Photo_1"]
    assert clip.shape == (150, 17, 3) and clip.dtype == np.float32
    expected = raw[("S9", "TakingPhoto 1")][:, CONVERSION_IDX_H36M_32TO17] / np.float32(1000)
    np.testing.assert_array_equal(clip, expected.astype(np.float32))
    assert summary.sequences_read == 7 and summary.skip_reasons() == {"corrupted recording (skipped as in the official script)": 1}
    assert summary.frames == 180 + 150 + 126 + 130 + 200 + 125
    # test windows: Sitting_1 180 -> 3 (0,25,50), Photo_1 150 -> 2, WalkDog 126 -> 1, Directions_1 200 -> 4
    assert summary.csv_ok and summary.windows["test"] == 10
    from skeleton_diffusion.data.processed import read_joint_names
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    # the processed file carries its joint order (issue 17), beside the official layout
    assert read_joint_names(root / "processed/Human36M/hmp/data_3d_h36m.npz") == list(get_skeleton("h36m").joint_names)
    hmp = root / "processed/Human36M/hmp"
    assert (hmp / "mmgt_test.txt").is_file() and (hmp / "mean_motion_test.txt").is_file()
    lines = (hmp / "mean_motion_test.txt").read_text().splitlines()
    assert lines[0].startswith("Directions,") and len(lines) == 15  # official 15 H36M classes in order
    assert "MMGT singletons" in summary.format() and "zero rows of mmapd_GT.csv 10" in summary.format()
    # a second run reuses the npz (skips the work)
    again = build_h36m(root, subjects=["S9", "S11"], strict=False, progress=False)
    assert again.reused and again.windows["test"] == 10


def test_strict_file_count_and_cli(h36m_root, capsys):
    root, _ = h36m_root
    with pytest.raises(DataFormatError, match="expected 30"):
        build_h36m(root, subjects=["S9"], strict=True, force=True, progress=False)
    rc = h36m_main(["--subjects", "S9", "S11", "--no-strict", "--data-root", str(root), "--quiet"])
    assert rc == 0 and "windows[test]: 10" in capsys.readouterr().out


def test_read_cdf_rejects_wrong_width(tmp_path):
    path = tmp_path / "bad.cdf"
    cdf = CDF(str(path), cdf_spec={"Compressed": False}, delete=True)
    cdf.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True,
                   "Dim_Sizes": [2, 95]}, var_attrs={}, var_data=np.zeros((1, 2, 95), np.float32))
    cdf.close()
    with pytest.raises(DataFormatError, match="96"):
        read_cdf_positions(path)


def _shipped_lengths(rows, subject_col, action_col):
    order, last = [], {}
    for r in rows:
        key = (r[subject_col], r[action_col])
        if key not in last:
            order.append(key)
        last[key] = int(r["pred_end"])
    return order, last


@pytest.mark.parametrize("split", ["test", "valid"])
def test_regenerated_csv_matches_shipped_byte_for_byte(annotations_dir, split):
    """Procedure check: given the clip order and lengths (min length = last pred_end + 1), stride-25 windows
    from frame 0 reproduce the shipped file exactly."""
    path = annotations_dir / "Human36M/hmp" / f"segments_{split}.csv"
    text = path.read_text()
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    order, last = _shipped_lengths(rows, "subject", "action")
    clips = [(s, a.replace(" ", "_"), last[(s, a)] + 1) for s, a in order]
    header, gen = h36m_segment_rows(clips, stride=25, style=split)
    lines = [",".join(header)] + [",".join(str(v) for v in r) for r in gen]
    ours = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    assert len(gen) == {"test": 5168, "valid": 2451}[split]
    assert ours == text


def test_mmgt_singleton_check_against_mmapd(tmp_path):
    from skeleton_diffusion.data.builders.common import check_mmgt_singletons
    from skeleton_diffusion.data.mmgt import write_mmgt

    write_mmgt(tmp_path / "mmgt_test.txt", {0: {0}, 1: {1, 2}, 2: {1, 2}, 3: {3}})
    (tmp_path / "mmapd_GT.csv").write_text("id,gt_APD\n0,0.0\n1,3.5\n2,3.5\n3,0.0\n")
    assert check_mmgt_singletons(tmp_path / "mmgt_test.txt", tmp_path / "mmapd_GT.csv").endswith("2: match")
    (tmp_path / "mmapd_GT.csv").write_text("id,gt_APD\n0,0.0\n1,3.5\n2,3.5\n3,1.0\n")
    assert "DIFFER" in check_mmgt_singletons(tmp_path / "mmgt_test.txt", tmp_path / "mmapd_GT.csv")
