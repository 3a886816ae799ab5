"""Processed files are read without ``np.load(allow_pickle=True)``: the allow-listed unpickler rebuilds the official
layout (a dict of dicts of arrays) and refuses any other Python object, naming the file and the class."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from skeleton_diffusion.data.processed import load_processed, read_processed
from skeleton_diffusion.utils.errors import DataFormatError


def _write(path, obj):
    arr = np.empty((), dtype=object)
    arr[()] = obj
    np.savez(path, positions_3d=arr)
    return path


def test_official_layout_round_trips(tmp_path):
    clips = {"S1": {"Walking": np.arange(2 * 17 * 3, dtype=np.float32).reshape(2, 17, 3)}}
    path = _write(tmp_path / "data_3d_h36m.npz", clips)
    got = read_processed(path)
    np.testing.assert_array_equal(got["S1"]["Walking"], clips["S1"]["Walking"])
    assert got["S1"]["Walking"].dtype == np.float32


def test_foreign_objects_are_refused(tmp_path):
    path = _write(tmp_path / "data_3d_evil.npz", {"S1": collections.Counter(a=1)})
    for reader in (read_processed, lambda p: load_processed(p, validate=False)):
        with pytest.raises(DataFormatError, match=r"Counter.*not allowed|not allowed.*Counter"):
            reader(path)
