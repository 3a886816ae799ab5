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
    from skeleton_diffusion.data.processed import read_processed

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
    from skeleton_diffusion.data.registry import build_dataset
    from skeleton_diffusion.data.side_files import regenerate_side_files

    root = tmp_path / "copy"
    folder = root / "processed" / "Synthetic" / "hmp"
    shutil.copytree(synth, folder)
    reference = (folder / LONG_TERM_SEGMENTS).read_text()
    (folder / LONG_TERM_SEGMENTS).unlink()
    cfg = Path(__file__).resolve().parents[2] / "configs" / "dataset" / "synthetic.yaml"
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


def test_regenerate_side_files_without_room_for_long_term_windows_warns(synth, tmp_path):
    import yaml

    from skeleton_diffusion.data.side_files import regenerate_side_files

    folder = tmp_path / "hmp"
    shutil.copytree(synth, folder)
    (folder / LONG_TERM_SEGMENTS).unlink()
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/dataset/synthetic.yaml").read_text())
    cfg["windows_sec"] = {"history": 0.5, "horizon": 3.0}  # 30 + 450 frames: longer than every 5-6 s clip
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    r = regenerate_side_files(folder, dataset_config=tmp_path / "cfg.yaml", force=False)
    assert r["long_term"]["written"] is False and "fits" in r["long_term"]["reason"]
    assert not (folder / LONG_TERM_SEGMENTS).exists()


def test_eval_long_term_on_amass_predicts_factor_times_two_seconds(tmp_path):
    """eval.py if_long_term_test=true on (fake) AMASS: 2 s x 2.5 = 300 future frames, not 2.5 applied twice."""
    import json

    import numpy as np
    from hydra import compose, initialize_config_dir

    from skeleton_diffusion.config import CONFIG_DIR
    from skeleton_diffusion.data.processed import save_processed
    from skeleton_diffusion.apps.evaluate import main as eval_main

    rng = np.random.default_rng(0)
    proc, ann = tmp_path / "processed/AMASS/hmp", tmp_path / "annotations/AMASS/hmp"
    ann.mkdir(parents=True)
    clip = rng.normal(scale=0.3, size=(900, 22, 3)).astype(np.float32)
    save_processed(proc / "data_3d_amass.npz", {"GRAB": {0: clip}})
    (ann / LONG_TERM_SEGMENTS).write_text("dataset,file,file_idx,pred_init,pred_end\nGRAB,a,0,180,659\n"
                                          "GRAB,a,0,300,779\n")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="eval", overrides=[
            "dataset=amass", "method_specs=zero_velocity", "if_long_term_test=true", f"dataset_main_path={tmp_path}",
            "progress=false", "if_store_output=true", f"results_path={tmp_path / 'out'}", "if_compute_cmd=false"])
    eval_main(cfg)
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["num_windows"] == 2 and res["extra"]["long_term"] is True
    with np.load(tmp_path / "out" / "predictions.npz") as z:
        assert z["gt"].shape[1] == 300 and z["pred"].shape[2] == 300
        # the stored future is the CSV window's frames pred_init .. pred_init + 299 (hip-relative)
        ref = clip[180:480, 1:] - clip[180:480, :1]
        np.testing.assert_allclose(z["gt"][0], ref, atol=1e-5)
