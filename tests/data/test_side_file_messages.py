"""Side-file and data errors name the one command that fixes them (issue 28 item 7)."""

from __future__ import annotations

import pytest

from skeleton_diffusion.data.mmgt import read_mmgt
from skeleton_diffusion.data.processed import missing_dataset_error
from skeleton_diffusion.data.segments import read_named_segments
from skeleton_diffusion.utils.errors import DatasetNotPreparedError


def test_missing_mmgt_names_regenerate_side_files(tmp_path):
    with pytest.raises(DatasetNotPreparedError) as err:
        read_mmgt(tmp_path / "mmgt_test.txt")
    msg = str(err.value)
    assert f"python -m skeleton_diffusion.apps.regenerate_side_files {tmp_path}" in msg and "..." not in msg


def test_missing_segments_mention_segments_flag(tmp_path):
    with pytest.raises(DatasetNotPreparedError, match=r"regenerate_side_files .* --segments"):
        read_named_segments(tmp_path / "segments_test.csv")


def test_native_dataset_suggests_the_native_builder(tmp_path):
    folder = tmp_path / "processed" / "Mine" / "hmp"
    folder.mkdir(parents=True)
    (folder / "skeleton.json").write_text("{}")
    msg = str(missing_dataset_error(folder / "data_3d_mine.npz", "mine"))
    assert "create_native_dataset" in msg and str(folder / "skeleton.json") in msg
    plain = str(missing_dataset_error(tmp_path / "other" / "data_3d_x.npz", "x"))
    assert "create_bvh_dataset" in plain and "create_native_dataset" not in plain
