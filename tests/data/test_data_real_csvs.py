"""The shipped test/valid CSVs through the real dataset classes (processed data faked with zero-copy arrays).

Checks window counts, window bounds, metadata/classes and class frequencies (CMD weights) as the spec states.
"""

from collections import Counter

import numpy as np
import pytest

import skeleton_diffusion.data.windows.hmp as dsmod
from skeleton_diffusion.data.registry import build_dataset
from skeleton_diffusion.data.registry import DEFAULT_DATASET_CFGS
from skeleton_diffusion.data.segments import read_amass_segments, read_h36m_segments, read_named_segments


def _fake(monkeypatch, tree):
    import skeleton_diffusion.data.registry as factory

    monkeypatch.setattr(dsmod, "load_processed_cached", lambda *a, **k: tree)
    # the processed file is faked, so the factory's up-front "is it on disk?" check must be too
    monkeypatch.setattr(factory, "_require_processed_first", lambda *a, **k: None)


def _zeros(length, joints):
    return np.broadcast_to(np.zeros((1, 1, 3), np.float32), (length, joints, 3))  # no memory


def _cfg(name, ann):
    cfg = dict(DEFAULT_DATASET_CFGS[name])
    cfg.update(precomputed_folder="/nonexistent", annotations_folder=str(ann))
    return cfg


def test_amass_test_csv_windows(monkeypatch, annotations_dir):
    ann = annotations_dir / "AMASS/hmp"
    need: dict = {}
    for r in read_amass_segments(ann / "segments_test_long_term_pred.csv") + read_amass_segments(ann / "segments_test.csv"):
        ds_, fi = r.key
        need.setdefault(ds_, {})[fi] = max(need.get(ds_, {}).get(fi, 0), r.pred_init + 480 + 1)
    _fake(monkeypatch, {d: {fi: _zeros(n, 22) for fi, n in v.items()} for d, v in need.items()})
    ds = build_dataset(_cfg("amass", ann), "test", pose_box_size=1.2)
    assert len(ds) == 12727 and ds.segments.shape == (12727, 3)
    assert (ds.segments[:, 2] - ds.segments[:, 1] == 149).all()
    weights = Counter(ds.class_index(i) for i in range(len(ds)))
    expect = {"DFaust": 0.007622, "DanceDB": 0.469789, "GRAB": 0.323407, "HUMAN4D": 0.147717, "SOMA": 0.032215,
              "SSM": 0.000943, "Transitions": 0.018308}  # spec §6.8 CMD class weights
    for c, w in expect.items():
        assert weights[ds.class_to_idx[c]] / len(ds) == pytest.approx(w, abs=1e-6)
    lt = build_dataset(_cfg("amass", ann), "test", pose_box_size=1.2, if_long_term_test=True, long_term_factor=4)
    assert len(lt) == 8494 and lt.pred_length == 480
    obs, fut, extra = lt[0]
    assert fut.shape == (480, 21, 3) and extra["metadata"] == ("Transitions", "49")


def test_h36m_test_and_valid_csv_windows(monkeypatch, annotations_dir):
    ann = annotations_dir / "Human36M/hmp"
    rows = read_h36m_segments(ann / "segments_test.csv") + read_h36m_segments(ann / "segments_valid.csv")
    need: dict = {}
    for r in rows:
        need.setdefault(r.key[0], {})[r.key[1]] = max(need.get(r.key[0], {}).get(r.key[1], 0), r.pred_end + 1)
    _fake(monkeypatch, {s: {a: _zeros(n, 17) for a, n in v.items()} for s, v in need.items()})
    ds = build_dataset(_cfg("h36m", ann), "test", pose_box_size=1.5)
    assert len(ds) == 5168 and (ds.segments[:, 2] - ds.segments[:, 1] == 124).all()
    counts = Counter(ds.idx_to_class[ds.class_index(i)] for i in range(len(ds)))
    assert counts["Directions"] == 251 and counts["WalkTogether"] == 244 and sum(counts.values()) == 5168
    cfg = _cfg("h36m", ann)
    cfg["data_loader_valid"] = {"segments_path": "segments_valid.csv", "subjects": ["S8"]}
    assert len(build_dataset(cfg, "valid", pose_box_size=1.5)) == 2451


def test_freeman_and_3dpw_csv_windows(monkeypatch, annotations_dir):
    ann = annotations_dir / "FreeMan/hmp"
    need: dict = {}
    for r in read_named_segments(ann / "segments_test.csv") + read_named_segments(ann / "segments_valid.csv"):
        need[r.key[0]] = max(need.get(r.key[0], 0), r.pred_end + 1)
    _fake(monkeypatch, {n: _zeros(v, 18) for n, v in need.items()})
    ds = build_dataset(_cfg("freeman", ann), "test", pose_box_size=1.5)
    assert len(ds) == 11015 and len(ds.idx_to_class) == 45 and all(ds.class_index(i) >= 0 for i in range(0, 11015, 97))
    ann3 = annotations_dir / "3DPW/hmp"
    rows = read_named_segments(ann3 / "segments_test_zero_shot.csv")
    need3: dict = {}
    for r in rows:
        need3[r.key[0]] = max(need3.get(r.key[0], 0), r.pred_end + 1)
    names = list(need3)
    _fake(monkeypatch, {"test": {n: _zeros(need3[n], 24) for n in names[:24]},
                        "valid": {n: _zeros(need3[n], 24) for n in names[24:36]},
                        "train": {n: _zeros(need3[n], 24) for n in names[36:]}})  # fmt: skip
    zs = build_dataset(_cfg("3dpw", ann3), "test", pose_box_size=1.2)
    assert len(zs) == 3252 and len(zs.idx_to_class) == 60 and zs.annotations[0].shape[1] == 22
