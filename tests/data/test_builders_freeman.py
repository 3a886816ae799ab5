"""FreeMan builder: keypoints3d npy files + annotation files written here -> data_3d_freeman.npz; shipped CSVs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from skeleton_diffusion.data.segments import write_csv
from skeleton_diffusion.data.processed import read_processed
from skeleton_diffusion.data.builders.freeman import build_freeman, freeman_segment_rows, preprocess_keypoints
from skeleton_diffusion.apps.create_freeman_dataset import main as freeman_main
from skeleton_diffusion.utils.errors import DataFormatError

S1, S2, S3, S4, S5, S6 = (f"20220101_aaaa00000{i}_subj0{i}" for i in range(1, 7))


def _save_kpts(path: Path, **keys) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty(1, dtype=object)
    arr[0] = keys
    np.save(path, arr, allow_pickle=True)


@pytest.fixture(scope="module")
def freeman_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("freeman")
    rng = np.random.default_rng(0)
    kp = root / "raw/FreeMan/keypoints3d"
    data = {}
    for name, frames in ((S1, 100), (S2, 100), (S3, 170), (S4, 90), (S5, 90), (S6, 120)):
        data[name] = rng.normal(0, 50, (frames, 17, 3))
    data[S2][:10] = np.nan
    data[S2][90:] = np.nan
    data[S3][80:85] = np.nan
    _save_kpts(kp / f"{S1}.npy", keypoints3d_smoothnet32=data[S1], keypoints3d_optim=data[S1] + 1000)
    _save_kpts(kp / f"{S2}.npy", keypoints3d_smoothnet=data[S2], keypoints3d_optim=data[S2] + 1000)
    for name in (S3, S4, S5, S6):
        _save_kpts(kp / f"{name}.npy", keypoints3d_optim=data[name])
    (root / "raw/FreeMan/ignore_list.txt").write_text(f"{S5}\n")
    ann = root / "annotations/FreeMan/hmp"
    ann.mkdir(parents=True)
    (ann / "bad_sequences.json").write_text(json.dumps([S4]))
    ill = {S2: [(10, 90)], S3: [(0, 80), (85, 170)], S6: [(0, 50), (60, 120)]}
    (ann / "illlposed_slices_idxs.json").write_text(json.dumps(repr(ill)))
    (ann / "seq_actions_labels.txt").write_text(f"{S1},jump\n{S2},walk\n{S3}_slice1,dance\n{S3}_slice2,dance")
    (ann / "test.txt").write_text(f"{S1}\n{S3}_slice1")
    (ann / "valid.txt").write_text(S2)
    (ann / "train.txt").write_text(f"{S3}_slice2")
    header = ("name", "init", "pred_init", "pred_end")
    write_csv(ann / "segments_test.csv", header, freeman_segment_rows([(S1, 100), (f"{S3}_slice1", 80)]))
    write_csv(ann / "segments_valid.csv", header, freeman_segment_rows([(S2, 80)]))
    return root, data


def test_build_freeman(freeman_root):
    root, data = freeman_root
    summary = build_freeman(root, progress=False)
    pos = read_processed(root / "processed/FreeMan/hmp/data_3d_freeman.npz")
    assert set(pos) == {S1, S2, f"{S3}_slice1", f"{S3}_slice2"}
    assert pos[S1].shape == (100, 18, 3) and pos[S1].dtype == np.float32
    assert pos[S2].shape == (80, 18, 3)  # trimmed to [10, 90)
    assert pos[f"{S3}_slice1"].shape == (80, 18, 3) and pos[f"{S3}_slice2"].shape == (85, 18, 3)
    # joint layout: root = mid-hip, then LHip, RHip, ..., cm -> m, coordinate 2 negated; smoothnet32 key first
    raw = data[S1][0]
    exp = np.concatenate([raw[11:], raw[:11]])
    exp = np.concatenate([(exp[0:1] + exp[1:2]) / 2, exp]) / 100
    exp[:, 2] *= -1
    np.testing.assert_allclose(pos[S1][0], exp, atol=1e-6)
    np.testing.assert_allclose(pos[S2][0, 7], data[S2][10, 0] / 100 * np.array([1, 1, -1]), atol=1e-6)  # nose
    assert dict(summary.skipped) == {S4: "bad_sequences.json", S5: "ignore_list.txt",
                                     S6: "sliced sequence without action label (official: dropped)"}
    # test: S1 100 frames -> inits 0, 15 (2 windows); slice1 80 frames -> 1 window; valid: 1 window
    assert summary.csv_ok and summary.windows["test"] == 3 and summary.windows["valid"] == 1
    assert summary.windows["train (stride 1)"] == 85 - 75
    assert (root / "processed/FreeMan/hmp/mmgt_test.txt").is_file()
    mm = (root / "processed/FreeMan/hmp/mean_motion_test.txt").read_text().splitlines()
    assert [ln.split(",")[0] for ln in mm] == ["jump", "dance"]


def test_cli_reports_mismatch(freeman_root, tmp_path, capsys):
    root, _ = freeman_root
    rc = freeman_main(["--data-root", str(root), "--quiet"])
    assert rc == 0 and "OK: all 3 CSV windows" in capsys.readouterr().out
    bad_csv = root / "annotations/FreeMan/hmp/segments_test.csv"
    good = bad_csv.read_text()
    try:
        bad_csv.write_text(good + f"{S1},60,75,134\n")
        assert freeman_main(["--data-root", str(root), "--quiet", "--no-side-files"]) == 2
        assert "MISMATCH" in capsys.readouterr().out
    finally:
        bad_csv.write_text(good)


def test_nan_in_kept_range_is_an_error():
    bad = np.zeros((5, 17, 3))
    bad[2, 3, 1] = np.nan
    with pytest.raises(DataFormatError, match="NaN"):
        preprocess_keypoints(bad)


@pytest.mark.parametrize("split", ["test", "valid"])
def test_shipped_csv_is_windows_of_the_split_list(annotations_dir, split):
    """The shipped CSV = stride-15 windows from frame 0 over ``<split>.txt`` in file order (lengths from the CSV)."""
    ann = annotations_dir / "FreeMan/hmp"
    text = (ann / f"segments_{split}.csv").read_text()
    with open(ann / f"segments_{split}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    last: dict[str, int] = {}
    for r in rows:
        last[r["name"]] = int(r["pred_end"])
    names = (ann / f"{split}.txt").read_text().split()
    assert set(last) <= set(names)
    gen = freeman_segment_rows([(n, last.get(n, -1) + 1) for n in names])
    ours = "\n".join(["name,init,pred_init,pred_end"] + [",".join(map(str, r)) for r in gen])
    assert len(gen) == {"test": 11015, "valid": 3376}[split]
    assert ours + ("\n" if text.endswith("\n") else "") == text
