"""AMASS builder: tar.bz2 of SMPL+H npz files (written here) -> zarr -> data_3d_amass.npz + side files."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from skeleton_diffusion.data.builders import amass as amass_mod
from skeleton_diffusion.data.builders.amass import build_amass, extract_archive, load_gendered_models
from skeleton_diffusion.data.builders.common import resolve_device
from skeleton_diffusion.data.processed import read_processed
from skeleton_diffusion.apps.create_amass_dataset import main as amass_main
from test_builders_smplh_fk import make_body_model_npz, reference_joints


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _motion(rng, frames, framerate=None, gender="male", rate_key="mocap_framerate"):
    d = dict(poses=rng.normal(0, 0.2, (frames, 156)).astype(np.float32), trans=np.cumsum(rng.normal(0, 0.01, (frames, 3)), 0),
             betas=rng.normal(0, 1, 16), gender=gender, dmpls=np.zeros((frames, 8)))
    if framerate is not None:
        d[rate_key] = np.array(framerate)
    return d


# (member name, content or None for a non-npz member, expected file_idx or None when skipped/ignored)
def _members(rng):
    return [
        ("Transitions/mazen/walk_poses.npz", _motion(rng, 700, 120.0), 0),
        ("Transitions/mazen/shape.npz", dict(betas=np.zeros(16), gender="male"), None),  # no framerate
        ("Transitions/._walk_poses.npz", b"\x00\x01", None),  # AppleDouble: ignored
        ("Transitions/x/jump_poses.npz", _motion(rng, 320, 60.0, gender=np.array(b"female")), 1),
        ("Transitions/x/odd_poses.npz", _motion(rng, 20, 60.0, gender=np.array(b"male")), None),  # "b'male'"
        ("Transitions/x/run_poses.npz", _motion(rng, 603, 100.0, rate_key="mocap_frame_rate"), 2),
        ("Transitions/notes.txt", b"hello", None),
        ("Transitions/x/neutral_poses.npz", _motion(rng, 20, 60.0, gender="neutral"), None),
        ("Transitions/y/walk_poses.npz", _motion(rng, 620, 120.0, gender="female"), 3),  # duplicate basename
        ("Transitions/y/slow_poses.npz", _motion(rng, 101, 150.0), 4),  # 150/60 = 2.5 -> round-half-even 2
        ("Transitions/y/short_poses.npz", dict(_motion(rng, 10, 60.0), poses=np.zeros((10, 72))), None),  # bad shape
    ]


def _write_tar(path: Path, members) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:bz2") as tar:
        for name, content, _ in members:
            data = content if isinstance(content, bytes) else _npz_bytes(**content)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def amass_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("amass_root")
    rng = np.random.default_rng(0)
    models = {}
    for seed, g in enumerate(("male", "female")):
        models[g] = make_body_model_npz(root / "annotations/AMASS/bodymodels/smplh" / g / "model.npz", seed=seed + 10)
    members = _members(rng)
    _write_tar(root / "raw/AMASS/Transitions.tar.bz2", members)
    other = [("HumanEva/s1/box_poses.npz", _motion(rng, 40, 120.0), 0)]
    _write_tar(root / "raw/AMASS/HumanEva.tar.bz2", other)
    csv = ("dataset,file,file_idx,pred_init,pred_end\n"
           "Transitions,walk_poses,0,180,299\nTransitions,walk_poses,0,200,319\nTransitions,jump_poses,1,180,299\n"
           "Transitions,run_poses,2,180,299\nTransitions,walk_poses,3,180,299\n")
    for name in ("AMASS", "AMASS-MANO"):
        (root / "annotations" / name / "hmp").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / name / "hmp" / "segments_test.csv").write_text(csv)
    return root, members, models


@pytest.fixture(scope="module")
def built(amass_root):
    root, members, models = amass_root
    summary = build_amass(root, if_extract_zip=True, progress=False)
    return root, members, models, summary


def test_file_idx_follows_tar_order_and_official_skip_rules(built):
    root, members, _, summary = built
    record = json.loads((root / "annotations/AMASS/dataset/Transitions/extraction_info.json").read_text())
    kept = {m["file_idx"]: m["member"] for m in record["members"]}
    assert kept == {idx: name for name, _, idx in members if idx is not None}
    skipped = {s["member"]: s["reason"] for s in record["skipped"]}
    assert set(skipped) == {"Transitions/mazen/shape.npz", "Transitions/x/odd_poses.npz",
                            "Transitions/x/neutral_poses.npz", "Transitions/y/short_poses.npz"}
    assert skipped["Transitions/mazen/shape.npz"].startswith("no framerate")
    assert skipped["Transitions/x/odd_poses.npz"].startswith("bad gender")
    assert "b'male'" in skipped["Transitions/x/odd_poses.npz"]
    genders = {m["file_idx"]: m["gender"] for m in record["members"]}
    assert genders[1] == "female"  # b'female' patched as officially
    assert [m["frame_multiplier"] for m in record["members"]] == [2, 1, 2, 2, 2]
    assert summary.sequences_read == 1 + 4 + 5  # HumanEva + 9 npz members of Transitions (AppleDouble ignored)


def test_zarr_layout_and_joint_values(built):
    root, members, models, _ = built
    folder = root / "annotations/AMASS/dataset/Transitions"
    poses = zarr.open(str(folder / "poses.zarr"), mode="r")
    index = zarr.open(str(folder / "poses_index.zarr"), mode="r")[:]
    trans = zarr.open(str(folder / "trans.zarr"), mode="r")
    assert poses.dtype == np.float32 and poses.shape[1:] == (52, 3)
    assert index.tolist() == [[0, 350], [350, 670], [670, 972], [972, 1282], [1282, 1333]]
    assert trans.shape == (1333, 3)
    # run_poses (100 Hz, 603 frames -> every 2nd frame, 302 frames): compare with an independent FK
    content = members[5][1]
    sub = content["poses"][::2][:3]
    ref = reference_joints(models["male"], sub, content["trans"][::2][:3], content["betas"])
    np.testing.assert_allclose(poses[670:673], ref, atol=1e-5)
    np.testing.assert_allclose(trans[670:673], content["trans"][::2][:3], atol=1e-6)
    # jump_poses uses the female model (gender b'female')
    jump = members[3][1]
    ref_f = reference_joints(models["female"], jump["poses"][:2], jump["trans"][:2], jump["betas"])
    np.testing.assert_allclose(poses[350:352], ref_f, atol=1e-5)


def test_processed_npz_layout_keys_and_csv_check(built):
    root, _, _, summary = built
    positions = read_processed(root / "processed/AMASS/hmp/data_3d_amass.npz")
    assert list(positions) == ["HumanEva", "Transitions"]  # split-list order, missing archives skipped
    assert list(positions["Transitions"]) == [0, 1, 2, 3, 4] and all(isinstance(k, int) for k in positions["Transitions"])
    assert positions["Transitions"][2].shape == (302, 22, 3) and positions["Transitions"][2].dtype == np.float32
    assert summary.csv_ok and summary.windows["test"] == 5
    assert "OK" in summary.csv_checks["test"]
    sources = json.loads((root / "processed/AMASS/hmp/clip_sources.json").read_text())
    assert sources["Transitions"]["3"] == "Transitions/y/walk_poses.npz"
    text = summary.format()
    reasons = summary.skip_reasons()
    assert reasons == {"no framerate": 1, "bad gender": 2, "error": 1, "not extracted": 20}
    assert "windows[test]: 5" in text and "bad gender" in text


def test_side_files_written(built):
    root, *_ = built
    hmp = root / "processed/AMASS/hmp"
    from skeleton_diffusion.data.mmgt import read_mmgt

    mmgt = read_mmgt(hmp / "mmgt_test.txt", num_segments=5)
    assert all(i in members for i, members in mmgt.items())
    lines = (hmp / "mean_motion_test.txt").read_text().strip().splitlines()
    transitions = [ln for ln in lines if ln.startswith("Transitions,")]
    assert len(transitions) == 1 and float(transitions[0].split(",")[1]) > 0


def test_csv_mismatch_is_reported(built, tmp_path):
    root, *_ = built
    positions = read_processed(root / "processed/AMASS/hmp/data_3d_amass.npz")
    sources = {"Transitions": {0: "Transitions/mazen/walk_poses.npz", 1: "Transitions/x/jump_poses.npz"}}
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,file,file_idx,pred_init,pred_end\nTransitions,jump_poses,0,180,299\n"
                   "Transitions,jump_poses,1,400,519\nSSM,a,0,180,299\n")
    n, ok, problems = amass_mod.check_amass_csv(positions, sources, bad)
    assert (n, ok) == (3, 0) and len(problems) == 3


def test_mano_variant_reuses_extraction_and_keeps_52_joints(built):
    root, *_ = built
    summary = build_amass(root, include_hands=True, if_extract_zip=True, progress=False)
    assert not (root / "annotations/AMASS-MANO/dataset/Transitions").exists()  # AMASS extraction reused
    positions = read_processed(root / "processed/AMASS-MANO/hmp/data_3d_amass.npz")
    assert positions["Transitions"][0].shape == (350, 52, 3)
    amass22 = read_processed(root / "processed/AMASS/hmp/data_3d_amass.npz")
    np.testing.assert_array_equal(positions["Transitions"][0][:, :22], amass22["Transitions"][0])
    assert summary.csv_ok and (root / "processed/AMASS-MANO/hmp/mmgt_test.txt").is_file()


def test_extraction_is_resumable(amass_root, tmp_path, monkeypatch):
    src_root, members, _ = amass_root
    out = tmp_path / "zarr"
    models = load_gendered_models(src_root / "annotations/AMASS/bodymodels")
    tar_path = src_root / "raw/AMASS/Transitions.tar.bz2"
    (out / "Transitions.partial").mkdir(parents=True)
    (out / "Transitions.partial" / "junk").write_text("left over from a crash")

    calls = {"n": 0}
    real = amass_mod.process_npz

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(amass_mod, "process_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(tar_path, out, models, progress=False)
    assert not (out / "Transitions").exists() and (out / "Transitions.partial").exists()
    monkeypatch.setattr(amass_mod, "process_npz", real)
    record = extract_archive(tar_path, out, models, progress=False)
    assert not (out / "Transitions.partial").exists()
    assert [m["file_idx"] for m in record["members"]] == [0, 1, 2, 3, 4]

    def must_not_run(*args, **kwargs):  # a complete archive is not redone
        raise AssertionError("complete archive re-extracted")

    monkeypatch.setattr(amass_mod, "process_npz", must_not_run)
    again = extract_archive(tar_path, out, models, progress=False)
    assert again["members"] == record["members"]


def test_cli_exit_code_and_rebuild_after_new_extraction(amass_root, tmp_path, capsys):
    import shutil

    src_root, *_ = amass_root
    root = tmp_path / "cli"
    for sub in ("raw", "annotations"):  # extracted zarr folders are copied too (complete archives are reused)
        shutil.copytree(src_root / sub, root / sub)
    shutil.rmtree(root / "annotations/AMASS/dataset/Transitions", ignore_errors=True)
    common = ["--if_extract_zip", "--gpu", "--data-root", str(root), "--quiet", "--no-side-files"]
    # only HumanEva: the test CSV (Transitions rows) does not match -> exit status 2
    assert amass_main(common + ["--datasets", "HumanEva"]) == 2
    assert "MISMATCH" in capsys.readouterr().out
    # extracting Transitions afterwards rebuilds the npz (newly extracted archive) and the check passes
    assert amass_main(common + ["--datasets", "Transitions"]) == 0
    out = capsys.readouterr().out
    assert "AMASS: build summary" in out and "windows[test]: 5" in out
    assert resolve_device(True) in ("cpu", "cuda")  # --gpu never crashes without CUDA
