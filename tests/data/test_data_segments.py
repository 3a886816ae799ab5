"""Segment CSV parsing: the shipped annotation files give the window counts stated in the spec."""

from collections import Counter

import pytest

from skeleton_diffusion.data.segments import (
    generate_segments,
    generate_segments_array,
    h36m_action_class,
    normalize_h36m_action,
    read_amass_segments,
    read_h36m_segments,
    read_named_segments,
    read_segments_csv,
    write_named_segments,
)
from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError


def test_amass_test_csv(annotations_dir):
    rows = read_amass_segments(annotations_dir / "AMASS/hmp/segments_test.csv")
    assert len(rows) == 12727
    assert rows[0].key == ("Transitions", 0) and rows[0].pred_init == 180
    assert rows[0].window(30, 120) == (150, 299)
    counts = Counter(r.key[0] for r in rows)
    assert counts == {"DanceDB": 5979, "GRAB": 4116, "HUMAN4D": 1880, "SOMA": 410, "Transitions": 233,
                      "DFaust": 97, "SSM": 12}
    assert len({r.key for r in rows}) == 1827
    assert [r.row for r in rows] == list(range(len(rows)))
    # AMASS-MANO ships the same file
    assert [r.key for r in read_amass_segments(annotations_dir / "AMASS-MANO/hmp/segments_test.csv")] == [r.key for r in rows]


def test_amass_long_term_csv(annotations_dir):
    rows = read_amass_segments(annotations_dir / "AMASS/hmp/segments_test_long_term_pred.csv")
    assert len(rows) == 8494
    assert all(r.pred_end - r.pred_init == 479 for r in rows)
    assert rows[0].window(30, 480) == (150, 659)
    assert "SSM" not in {r.key[0] for r in rows}


def test_h36m_csvs(annotations_dir):
    test = read_h36m_segments(annotations_dir / "Human36M/hmp/segments_test.csv")
    assert len(test) == 5168
    assert test[0].key == ("S9", "Sitting_1") and test[0].window(25, 100) == (0, 124)
    counts = Counter(h36m_action_class(r.key[1]) for r in test)
    assert counts["Discussion"] == 624 and counts["Purchases"] == 176 and counts["Photo"] == 274
    assert counts["WalkDog"] == 265 and len(counts) == 15
    valid = read_h36m_segments(annotations_dir / "Human36M/hmp/segments_valid.csv")  # leading index column
    assert len(valid) == 2451 and {r.key[0] for r in valid} == {"S8"}


def test_freeman_and_3dpw_csvs(annotations_dir):
    assert len(read_named_segments(annotations_dir / "FreeMan/hmp/segments_test.csv")) == 11015
    assert len(read_named_segments(annotations_dir / "FreeMan/hmp/segments_valid.csv")) == 3376
    zs = read_named_segments(annotations_dir / "3DPW/hmp/segments_test_zero_shot.csv")
    assert len(zs) == 3252 and len({r.key for r in zs}) == 60
    assert zs[0].window(30, 120) == (0, 149)


def test_h36m_action_names():
    assert normalize_h36m_action("TakingPhoto 1") == "Photo_1"
    assert normalize_h36m_action("WalkingDog") == "WalkDog"
    assert h36m_action_class("Sitting_1") == "Sitting"
    assert h36m_action_class("SittingDown 2") == "SittingDown"


def test_generate_segments_official_off_by_one():
    segs = generate_segments([10, 4, 7], 5)
    # clip 0: starts 0..4 (T - L - 1 = 4), clip 1 too short, clip 2: starts 0..1
    assert segs == [(0, s, s + 4) for s in range(5)] + [(2, 0, 4), (2, 1, 5)]
    assert len(generate_segments([10], 5, include_last=True)) == 6
    for lengths, inc in (([10, 4, 7], False), ([3, 12, 5, 5], True), ([], False)):
        arr = generate_segments_array(lengths, 5, include_last=inc)
        assert arr.shape[1] == 3 and arr.tolist() == [list(t) for t in generate_segments(lengths, 5, include_last=inc)]


def test_named_csv_round_trip_and_errors(tmp_path):
    p = write_named_segments(tmp_path / "segments_test.csv", [("a", 0, 30, 149, "walk"), ("b", 60, 90, 209, "idle")])
    rows = read_named_segments(p)
    assert [(r.key, r.init, r.pred_end, r.label) for r in rows] == [(("a",), 0, 149, "walk"), (("b",), 60, 209, "idle")]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,start\nx,1\n")
    with pytest.raises(DataFormatError, match="missing column"):
        read_named_segments(bad)
    bad.write_text("name,init,pred_init,pred_end\nx,one,2,3\n")
    with pytest.raises(DataFormatError, match="line 2"):
        read_named_segments(bad)
    with pytest.raises(DatasetNotPreparedError, match="not found"):
        read_segments_csv(tmp_path / "nope.csv", "amass")
