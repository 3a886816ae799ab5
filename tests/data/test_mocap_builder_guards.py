"""Issue 27 items 2-5 and 7: degenerate bones, non-finite values, builder errors (exit 2, one paragraph),
clips shorter than one window, atomic --force rebuilds, T-pose, per-clip rates, skeleton files without 'name'."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _mocap_helpers import bone_lengths, bvh_text, write_bvh  # noqa: E402
from skeleton_diffusion.apps.create_bvh_dataset import main as bvh_main
from skeleton_diffusion.apps.create_native_dataset import main as native_main

FAST = ["--quiet", "--fps", "30", "--map", "lafan1"]


def _bvh(tmp_path: Path, *args: str, name: str = "Mo") -> int:
    return bvh_main(["--input", str(tmp_path / "in"), "--name", name, "--data-root", str(tmp_path / "ds"), *FAST,
                     *args])


def _exit2(capsys, fn, *args, **kw) -> str:
    with pytest.raises(SystemExit) as exc:
        fn(*args, **kw)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().startswith("error (")
    return " ".join(err.split())


# ------------------------------------------------------------------------------------ 2: degenerate bones
def test_zero_length_helper_joint_is_dropped_and_reported(tmp_path, capsys):
    for i in range(2):
        write_bvh(tmp_path / "in" / f"c{i}.bvh", 600, seed=i, helper=True)
    assert _bvh(tmp_path, "--skeleton", "native", "--no-side-files") == 0
    out = capsys.readouterr().out
    assert "dropped 1 joint" in out and "LeftHandHelper" in out
    hmp = tmp_path / "ds/processed/Mo/hmp"
    sk = json.loads((hmp / "skeleton.json").read_text())
    names = [j["name"] if isinstance(j, dict) else j for j in sk.get("joints", sk.get("joint_names", []))]
    assert "LeftHandHelper" not in names and len(names) == 22
    from skeleton_diffusion.data.processed import read_processed
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file

    parents = load_skeleton_file(hmp / "skeleton.json").parents
    for clips in read_processed(hmp / "data_3d_mo.npz").values():
        for arr in clips.values():
            assert bone_lengths(arr, parents).min() > 0.01


def test_zero_length_bone_refused_with_no_drop(tmp_path, capsys):
    write_bvh(tmp_path / "in" / "c.bvh", 600, helper=True)
    msg = _exit2(capsys, _bvh, tmp_path, "--skeleton", "native", "--no-drop-degenerate")
    assert "LeftHandHelper (on LeftHand)" in msg and "--drop-degenerate" in msg
    assert not (tmp_path / "ds/processed/Mo/hmp").exists()


def test_limb_metrics_ignore_zero_reference_limbs():
    from skeleton_diffusion.metrics.limbs import limb_realism, stretch_mean

    rng = np.random.default_rng(0)
    target = torch.tensor(rng.normal(size=(2, 10, 4, 3)), dtype=torch.float32)
    target[:, :, 3] = target[:, :, 2]  # joint 3 on joint 2 in every frame: zero-length limb (2, 3)
    pred = target[:, None].repeat(1, 3, 1, 1, 1) + 0.01 * torch.randn(2, 3, 10, 4, 3)
    limbs = [(0, 1), (1, 2), (2, 3)]
    out = limb_realism(pred, target, limbs)
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    # equals the metric over the valid limbs only
    torch.testing.assert_close(out["StretchMean"], stretch_mean(pred, target, limbs[:2]))
    assert torch.isnan(stretch_mean(pred, target, limbs, reduction="none")[..., 2]).all()


def test_results_files_flag_nonfinite_metrics(tmp_path):
    from skeleton_diffusion.tasks.results import write_results

    run = {"metrics": {"ADE": 0.5, "StretchMean": float("nan"), "JitterMean": float("inf")}, "num_windows": 3,
           "num_samples": 1, "stats_mode": "deterministic", "seed": 0, "wall_time_s": 1.0}
    paths = write_results(tmp_path, run, dataset="mo")
    data = json.loads(paths["json"].read_text())
    assert data["nonfinite_metrics"] == ["StretchMean", "JitterMean"] and "warning" in data
    row = next(csv.DictReader(paths["csv"].open()))
    assert row["nonfinite_metrics"] == "StretchMean;JitterMean" and row["ADE"] == "0.5"
    assert "WARNING" in paths["md"].read_text()


# ------------------------------------------------------------------------------------- 3: non-finite values
def test_nan_in_bvh_refused_naming_file_frame_and_channel(tmp_path, capsys):
    text = bvh_text(600).split("\n")
    first = next(i for i, ln in enumerate(text) if ln.startswith("Frame Time")) + 1
    vals = text[first + 7].split()
    vals[6 + 3 * 1] = "nan"  # frame 7, third joint (LeftLeg), first rotation channel (Zrotation)
    text[first + 7] = " ".join(vals)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.bvh").write_text("\n".join(text))
    msg = _exit2(capsys, _bvh, tmp_path)
    assert "bad.bvh" in msg and "frame 7" in msg and "LeftLeg Zrotation" in msg


def test_nan_in_npy_clip_refused_naming_frame_and_joint(tmp_path, capsys):
    skel = tmp_path / "rig.json"
    skel.write_text(json.dumps({"joint_names": ["root", "a", "b"], "parents": [-1, 0, 1]}))
    clip = np.cumsum(np.ones((200, 3, 3), np.float32), axis=1)
    clip[42, 1, 2] = np.inf
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "c.npy", clip)
    msg = _exit2(capsys, native_main, ["--skeleton", str(skel), "--input", str(tmp_path / "in"), "--name", "N",
                                       "--data-root", str(tmp_path / "ds")])
    assert "frame 42, joint 1, coordinate z" in msg


def test_save_processed_refuses_nan(tmp_path):
    from skeleton_diffusion.data.processed import save_processed
    from skeleton_diffusion.utils.errors import DataFormatError

    arr = np.zeros((5, 3, 3), np.float32)
    arr[2, 0, 0] = np.nan
    with pytest.raises(DataFormatError, match="frame 2, joint 0"):
        save_processed(tmp_path / "x.npz", {"train": {"c": arr}})


# ------------------------------------------------------------------------------ 4: one paragraph, exit 2
def test_truncated_bvh_gives_the_reason_with_quiet(tmp_path, capsys):
    text = bvh_text(600)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.bvh").write_text(text[: len(text) // 2])
    msg = _exit2(capsys, _bvh, tmp_path)
    assert "cut.bvh" in msg and "expected 600 frames" in msg
    (tmp_path / "in" / "cut.bvh").write_text(text[: text.index("MOTION") // 2])  # cut inside the hierarchy
    msg = _exit2(capsys, _bvh, tmp_path)
    assert "cut.bvh" in msg


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_missing_or_empty_input_folder(tmp_path, capsys, make):
    if make == "empty":
        (tmp_path / "in").mkdir()
    msg = _exit2(capsys, _bvh, tmp_path)
    assert str(tmp_path / "in") in msg
    msg = _exit2(capsys, native_main, ["--skeleton", str(tmp_path / "none.json"), "--input", str(tmp_path / "in"),
                                       "--name", "N", "--data-root", str(tmp_path / "ds")])
    assert "none.json" in msg


@pytest.mark.parametrize("parents,word", [([-1, 2, 1], "parent"), ([-1, 0, "zzz"], "zzz")])
def test_skeleton_file_with_cycle_or_unknown_parent(tmp_path, capsys, parents, word):
    skel = tmp_path / "rig.json"
    skel.write_text(json.dumps({"name": "rig", "joint_names": ["root", "a", "b"], "parents": parents}))
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "c.npy", np.zeros((200, 3, 3), np.float32))
    msg = _exit2(capsys, native_main, ["--skeleton", str(skel), "--input", str(tmp_path / "in"), "--name", "N",
                                       "--data-root", str(tmp_path / "ds")])
    assert "rig.json" in msg and word in msg


# ------------------------------------------------------------------ 5: short clips, atomic --force rebuilds
def test_clip_shorter_than_one_window_is_refused(tmp_path, capsys):
    write_bvh(tmp_path / "in" / "short.bvh", 40)  # 40 frames < 15 + 60 at 30 fps
    msg = _exit2(capsys, _bvh, tmp_path)
    assert "no window" in msg and "short: " in msg
    assert not (tmp_path / "ds/processed/Mo/hmp").exists()


def test_force_rebuild_leaves_no_stale_side_files(tmp_path, capsys):
    for i in range(2):
        write_bvh(tmp_path / "in" / f"c{i}.bvh", 600, seed=i)
    assert _bvh(tmp_path, "--map", "lafan1") == 0
    hmp = tmp_path / "ds/processed/Mo/hmp"
    assert {"mean_motion_test.txt", "mmgt_test.txt", "mmapd_GT.csv"} <= {p.name for p in hmp.iterdir()}
    assert _bvh(tmp_path, "--map", "lafan1", "--force", "--no-side-files") == 0
    names = {p.name for p in hmp.iterdir()}
    assert not names & {"mean_motion_test.txt", "mmgt_test.txt", "mmapd_GT.csv"}
    assert [p.name for p in hmp.parent.iterdir()] == ["hmp"]  # no temporary folder left behind


def test_native_build_refuses_to_overwrite_without_force(tmp_path, capsys):
    skel = tmp_path / "rig.json"
    skel.write_text(json.dumps({"joint_names": ["root", "a", "b"], "parents": [-1, 0, 1]}))
    (tmp_path / "in").mkdir()
    t = np.arange(300, dtype=np.float32) / 60
    clip = np.stack([np.stack([t, 0 * t, 0 * t + k * 0.3], -1) for k in range(3)], 1)
    np.save(tmp_path / "in" / "c.npy", clip)
    args = ["--skeleton", str(skel), "--input", str(tmp_path / "in"), "--name", "N", "--data-root",
            str(tmp_path / "ds"), "--no-side-files", "--split-mode", "test"]
    assert native_main(args) == 0  # 7: the compact form needs no 'name' (the file's stem)
    msg = _exit2(capsys, native_main, args)
    assert "--force" in msg
    assert native_main(args + ["--force"]) == 0


# --------------------------------------------------------------------------------------------- 7: smaller
def test_leading_tpose_detected_and_trimmed(tmp_path, capsys):
    write_bvh(tmp_path / "in" / "c.bvh", 300, tpose_frames=12)
    assert _bvh(tmp_path, "--split-mode", "test", "--no-side-files") == 0
    assert "starts with 12 rest-pose frame(s)" in capsys.readouterr().out
    assert _bvh(tmp_path, "--split-mode", "test", "--no-side-files", "--trim-tpose", name="Trim") == 0
    from skeleton_diffusion.data.processed import read_processed

    full = read_processed(tmp_path / "ds/processed/Mo/hmp/data_3d_mo.npz")["test"]["c"]
    cut = read_processed(tmp_path / "ds/processed/Trim/hmp/data_3d_trim.npz")["test"]["c"]
    assert len(full) - len(cut) == 12
    np.testing.assert_array_equal(cut, full[12:])


def test_per_clip_rates_resample_keeping_bones(tmp_path):
    from skeleton_diffusion.data.processed import read_processed

    skel = tmp_path / "rig.json"
    skel.write_text(json.dumps({"name": "rig", "joint_names": ["root", "a", "b"], "parents": [-1, 0, 1]}))
    (tmp_path / "in").mkdir()
    t = np.arange(240) / 120
    ang = 3.0 * np.sin(2 * np.pi * t)
    a = np.stack([np.cos(ang), np.sin(ang), 0 * t], -1) * 0.4
    clip = np.stack([0 * a, a, a + 0.3 * np.stack([np.cos(2 * ang), np.sin(2 * ang), 0 * t], -1)], 1)
    np.save(tmp_path / "in" / "fast.npy", clip.astype(np.float32))  # 120 fps
    np.save(tmp_path / "in" / "slow.npy", clip[::4].astype(np.float32))  # 30 fps
    (tmp_path / "rates.csv").write_text("fast,120\nslow,30\n")
    assert native_main(["--skeleton", str(skel), "--input", str(tmp_path / "in"), "--name", "R", "--data-root",
                        str(tmp_path / "ds"), "--fps", "60", "--rates", str(tmp_path / "rates.csv"),
                        "--no-side-files", "--split-mode", "test", "--obs-seconds", "0.5",
                        "--pred-seconds", "1.0"]) == 0
    out = read_processed(tmp_path / "ds/processed/R/hmp/data_3d_r.npz")["test"]
    assert len(out["fast"]) == 120 and len(out["slow"]) == 119  # 60 frames at 30 fps span 59/30 s -> 119 frames at 60 fps
    lengths = bone_lengths(out["slow"].astype(np.float64), [-1, 0, 1])
    np.testing.assert_allclose(lengths, np.broadcast_to([0.4, 0.3], lengths.shape), atol=2e-6)
