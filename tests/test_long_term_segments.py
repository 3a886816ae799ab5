"""Long-term test windows (``segments_test_long_term_pred.csv``) for generic datasets (issue 16 follow-up, H16c)."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest

from skeleton_diffusion.data.builders.synthetic import build_synthetic_dataset
from skeleton_diffusion.data.long_term import LONG_TERM_SEGMENTS, long_term_length, long_term_rows
from skeleton_diffusion.data.segments import CsvSegment, read_named_segments
from skeleton_diffusion.utils.errors import DatasetNotPreparedError


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lt") / "processed" / "Synthetic" / "hmp"
    build_synthetic_dataset(out, seed=0, small=True, verbose=False)
    return out


def test_long_term_length_matches_evaluator():
    assert long_term_length(60) == 300  # 2 s * 2.5 at 60 fps
    assert long_term_length(50, 2.0, 2.5) == 250
    assert long_term_length(60, 1.0, 4) == 240


def test_long_term_rows_keep_fitting_windows_in_order():
    rows = [CsvSegment(0, ("a",), 0, 30, 149, "walk"), CsvSegment(1, ("a",), 60, 90, 209, "idle"),
            CsvSegment(2, ("b",), 0, 30, 149, None), CsvSegment(3, ("b",), 10, 40, 159, "run")]
    out = long_term_rows(rows, {"a": 330, "b": 341}, 30, 300)
    # a@0 ends at 329 < 330 (fits, inclusive end); a@60 ends at 389 (does not); b@0 fits with empty class;
    # b@10 ends at 339 < 341 (fits)
    assert out == [("a", 0, 30, 329, "walk"), ("b", 0, 30, 329, ""), ("b", 10, 40, 339, "run")]
    no_class = long_term_rows([CsvSegment(0, ("a",), 0, 30, 149)], {"a": 400}, 30, 300)
    assert no_class == [("a", 0, 30, 329)]
    assert long_term_rows(rows, {"a": 329, "b": 329}, 30, 300) == []


def test_synthetic_builder_writes_long_term_windows(synth):
    from skeleton_diffusion.data.builders.common import read_processed

    clips = read_processed(synth / "data_3d_synthetic.npz")["test"]
    test = _rows(synth / "segments_test.csv")
    long = _rows(synth / LONG_TERM_SEGMENTS)
    assert list(long[0].keys()) == ["name", "init", "pred_init", "pred_end", "class"]
    fitting = [r for r in test if int(r["init"]) + 330 <= len(clips[r["name"]])]
    assert len(long) == len(fitting) >= 1
    for lr, tr in zip(long, fitting):
        assert (lr["name"], lr["init"], lr["pred_init"], lr["class"]) == \
            (tr["name"], tr["init"], tr["pred_init"], tr["class"])
        assert int(lr["pred_end"]) - int(lr["init"]) + 1 == 330 and int(lr["pred_end"]) < len(clips[lr["name"]])


def test_long_term_dataset_missing_file_hint_and_regeneration(synth, tmp_path):
    from skeleton_diffusion.data.factory import build_dataset
    from skeleton_diffusion.data.side_files import regenerate_side_files

    root = tmp_path / "copy"
    folder = root / "processed" / "Synthetic" / "hmp"
    shutil.copytree(synth, folder)
    reference = (folder / LONG_TERM_SEGMENTS).read_text()
    (folder / LONG_TERM_SEGMENTS).unlink()
    cfg = Path(__file__).resolve().parents[1] / "configs" / "dataset" / "synthetic.yaml"
    kw = dict(pose_box_size=1.0, dataset_main_path=root, obs_length=30, pred_length=300, if_long_term_test=True,
              long_term_factor=2.5, augmentation=0)
    import yaml

    dcfg = yaml.safe_load(cfg.read_text())
    with pytest.raises(DatasetNotPreparedError, match="regenerate_side_files .*--no-force"):
        build_dataset(dcfg, "test", **kw)
    before = {p.name: _md5(p) for p in folder.iterdir()}
    r = regenerate_side_files(folder, dataset_config=cfg, force=False)  # the hinted command
    assert r["long_term"]["written"] and (folder / LONG_TERM_SEGMENTS).read_text() == reference
    assert {p.name: _md5(p) for p in folder.iterdir() if p.name != LONG_TERM_SEGMENTS} == before
    ds = build_dataset(dcfg, "test", **kw)
    assert len(ds) == len(read_named_segments(folder / LONG_TERM_SEGMENTS))
    obs, fut, _ = ds[0]
    assert tuple(obs.shape[:1]) == (30,) and tuple(fut.shape[:1]) == (300,)
    with pytest.raises(Exception, match="330|frames|window"):  # a factor the CSV was not written for
        build_dataset(dcfg, "test", **dict(kw, pred_length=240))


def test_synthetic_rebuild_adds_missing_long_term_file_without_touching_data(synth, tmp_path):
    folder = tmp_path / "hmp"
    shutil.copytree(synth, folder)
    reference = (folder / LONG_TERM_SEGMENTS).read_text()
    (folder / LONG_TERM_SEGMENTS).unlink()
    before = {p.name: _md5(p) for p in folder.iterdir()}
    info = build_synthetic_dataset(folder, seed=0, small=True, verbose=False)  # "already present" path
    assert info.get("skipped") is True
    assert (folder / LONG_TERM_SEGMENTS).read_text() == reference
    assert {p.name: _md5(p) for p in folder.iterdir() if p.name != LONG_TERM_SEGMENTS} == before
