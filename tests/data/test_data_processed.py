"""Processed npz files: official layout, atomic save, validation errors, cache is read-only."""

import numpy as np
import pytest

from skeleton_diffusion.data.processed import (
    create_command,
    load_processed,
    load_processed_cached,
    processed_file_name,
    save_processed,
)
from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError


def test_round_trip_official_layout(tmp_path):
    data = {"CMU": {0: np.ones((5, 22, 3), np.float32), 3: np.zeros((7, 22, 3), np.float32)}}
    p = save_processed(tmp_path / "data_3d_amass.npz", data)
    with np.load(p, allow_pickle=True) as npz:  # exactly what the official loaders do
        assert npz.files == ["positions_3d"]
        raw = npz["positions_3d"].item()
    assert list(raw["CMU"]) == [0, 3] and raw["CMU"][3].shape == (7, 22, 3)
    back = load_processed(p, num_joints=22)
    np.testing.assert_array_equal(back["CMU"][0], data["CMU"][0])
    assert not any(f.name.startswith(".") for f in tmp_path.iterdir())  # no temp leftovers


def test_official_style_file_loads(tmp_path):
    p = tmp_path / "data_3d_h36m.npz"
    np.savez_compressed(p, positions_3d={"S9": {"Walking_1": np.zeros((50, 17, 3), np.float32)}})
    assert load_processed(p, num_joints=17)["S9"]["Walking_1"].shape == (50, 17, 3)


def test_missing_file_names_path_and_command(tmp_path):
    with pytest.raises(DatasetNotPreparedError) as e:
        load_processed(tmp_path / processed_file_name("synthetic"), dataset_name="synthetic")
    assert "data_3d_synthetic.npz" in str(e.value)
    assert "python -m skeleton_diffusion.apps.create_synthetic_dataset" in str(e.value)
    assert "--include_hands" in create_command("amass-mano")


def test_bad_shapes_name_file_key_and_shape(tmp_path):
    p = tmp_path / "data_3d_x.npz"
    np.savez_compressed(p, positions_3d={"train": {"clip": np.zeros((10, 22, 2), np.float32)}})
    with pytest.raises(DataFormatError) as e:
        load_processed(p)
    msg = str(e.value)
    assert "data_3d_x.npz" in msg and "['train']['clip']" in msg and "(10, 22, 2)" in msg and "[T, J, 3]" in msg
    np.savez_compressed(p, positions_3d={"clip": np.zeros((10, 17, 3), np.float32)})
    with pytest.raises(DataFormatError, match="at least 22 joints"):
        load_processed(p, num_joints=22)
    np.savez_compressed(p, other=np.zeros(3))
    with pytest.raises(DataFormatError, match="positions_3d"):
        load_processed(p)
    with pytest.raises(DataFormatError):
        save_processed(tmp_path / "y.npz", {"clip": np.zeros((3, 3))})


def test_cached_arrays_are_read_only(tmp_path):
    p = save_processed(tmp_path / "data_3d_g.npz", {"a": np.zeros((4, 22, 3), np.float32)})
    d1 = load_processed_cached(p)
    assert load_processed_cached(p) is d1
    with pytest.raises(ValueError):
        d1["a"][0, 0, 0] = 1.0
