"""3DPW builder: sequence pickles (latin1) written here -> data_3d_3dpw.npz with every actor; axis conventions."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from skeleton_diffusion.data.segments import window_rows, write_csv
from skeleton_diffusion.data.processed import read_processed
from skeleton_diffusion.data.builders.threedpw import LR_PERMUTATION, actor_key, build_3dpw, to_amass_convention
from skeleton_diffusion.apps.create_3dpw_dataset import main as pw_main
from test_builders_smplh_fk import make_body_model_npz, reference_joints


def _actor(rng, frames):
    return dict(poses=rng.normal(0, 0.3, (frames, 72)), trans=rng.normal(0, 1, (frames, 3)), betas=rng.normal(0, 1, 10))


def _write_seq(path: Path, actors, genders) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ann = {"sequence": path.stem, "genders": genders, "poses_60Hz": [a["poses"] for a in actors],
           "trans_60Hz": [a["trans"] for a in actors], "betas": [a["betas"] for a in actors],
           "poses": [a["poses"][::2] for a in actors], "trans": [a["trans"][::2] for a in actors]}
    with open(path, "wb") as fh:
        pickle.dump(ann, fh, protocol=2)


@pytest.fixture(scope="module")
def pw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("3dpw")
    rng = np.random.default_rng(0)
    models = {g: make_body_model_npz(root / "annotations/AMASS/bodymodels/smplh" / g / "model.npz", seed=i)
              for i, g in enumerate(("male", "female"))}
    seqs = root / "raw/3DPW/sequenceFiles"
    actors = {"courtyard_a_00": [_actor(rng, 160), _actor(rng, 160)], "x_01": [_actor(rng, 155)],
              "downtown_b_00": [_actor(rng, 190)]}
    _write_seq(seqs / "train/courtyard_a_00.pkl", actors["courtyard_a_00"], ["m", "f"])
    _write_seq(seqs / "validation/x_01.pkl", actors["x_01"], ["f"])
    _write_seq(seqs / "test/downtown_b_00.pkl", actors["downtown_b_00"], ["m"])
    ann = root / "annotations/3DPW/hmp"
    header = ("name", "init", "pred_init", "pred_end")
    write_csv(ann / "segments_test_zero_shot.csv", header,
              window_rows([("downtown_b_00", 190), ("x_01", 155), ("courtyard_a_00", 160)], 30, 120, 30))
    write_csv(ann / "segments_valid.csv", header, window_rows([("x_01", 155)], 30, 120, 30))
    return root, actors, models


def _expected(model, actor):
    full = np.zeros((actor["poses"].shape[0], 156))
    full[:, :66] = actor["poses"][:, :66]
    return reference_joints(model, full[:3], actor["trans"][:3], actor["betas"])


def test_build_3dpw_keeps_every_actor(pw_root):
    root, actors, models = pw_root
    summary = build_3dpw(root, progress=False)
    pos = read_processed(root / "processed/3DPW/hmp/data_3d_3dpw.npz")
    assert set(pos) == {"train", "valid", "test"}
    assert set(pos["train"]) == {"courtyard_a_00", "courtyard_a_00_actor0"}
    assert set(pos["valid"]) == {"x_01"} and set(pos["test"]) == {"downtown_b_00"}
    clip = pos["train"]["courtyard_a_00"]  # the last actor (female) keeps the sequence name, as officially
    assert clip.shape == (160, 22, 3) and clip.dtype == np.float32
    ref = _expected(models["female"], actors["courtyard_a_00"][1])
    official = np.stack([ref[..., 0], ref[..., 2], ref[..., 1]], -1)[:, LR_PERMUTATION[:22]]
    np.testing.assert_allclose(clip[:3], official, atol=1e-5)
    ref0 = _expected(models["male"], actors["courtyard_a_00"][0])
    np.testing.assert_allclose(pos["train"]["courtyard_a_00_actor0"][:3],
                               np.stack([ref0[..., 0], ref0[..., 2], ref0[..., 1]], -1)[:, LR_PERMUTATION[:22]],
                               atol=1e-5)
    assert summary.sequences_read == 4 and summary.clips_written == 4
    # zero-shot CSV: 190 -> inits 0,30 (2); 155 -> 1; 160 -> 1
    assert summary.csv_ok and summary.windows["test (zero-shot)"] == 4 and summary.windows["valid"] == 1
    hmp = root / "processed/3DPW/hmp"
    assert (hmp / "mmgt_test.txt").is_file() and (hmp / "mean_motion_test.txt").is_file()


def test_axis_conventions_relation():
    rng = np.random.default_rng(3)
    joints = rng.normal(size=(4, 24, 3))
    off = to_amass_convention(joints, "official")
    rot = to_amass_convention(joints, "rotation")
    # official = proper rotation, then mirrored (y -> -y) with left/right labels swapped
    mirrored = rot[:, LR_PERMUTATION[:22]] * np.array([1, -1, 1])
    np.testing.assert_allclose(off, mirrored)
    # the rotation keeps handedness: det of the map is +1; the up axis (old y) becomes z
    np.testing.assert_allclose(rot[..., 2], joints[:, :22, 1])
    assert actor_key("s_00", 1, 2) == "s_00" and actor_key("s_00", 0, 2) == "s_00_actor0"
    with pytest.raises(ValueError):
        to_amass_convention(joints, "xyz")


def test_smpl_24_joint_model_uses_full_pose(tmp_path):
    from skeleton_diffusion.data.builders.smplh_fk import load_body_model
    from skeleton_diffusion.data.builders.threedpw import actor_joints

    make_body_model_npz(tmp_path / "smpl.npz", num_joints=24, num_betas=10)
    make_body_model_npz(tmp_path / "smplh.npz", num_joints=52, num_betas=10)
    rng = np.random.default_rng(5)
    a = _actor(rng, 3)
    b = dict(a, poses=a["poses"].copy())
    b["poses"][:, 66:69] += 0.5  # SMPL joint 22 rotation (moves its child, joint 23)
    smpl = load_body_model(tmp_path / "smpl.npz", 10)
    ja, jb = (actor_joints(x["poses"], x["trans"], x["betas"], smpl) for x in (a, b))
    assert ja.shape == (3, 24, 3) and not np.allclose(ja[:, 23], jb[:, 23])
    smplh = load_body_model(tmp_path / "smplh.npz", 10)  # SMPL+H: SMPL hand values ignored (official)
    ha, hb = (actor_joints(x["poses"], x["trans"], x["betas"], smplh) for x in (a, b))
    np.testing.assert_allclose(ha, hb)


def test_cli_with_smpl_models_and_rotation_axes(pw_root, tmp_path, capsys):
    root, actors, _ = pw_root
    smpl_dir = tmp_path / "smpl"
    for i, g in enumerate(("male", "female")):
        make_body_model_npz(smpl_dir / g / "model.npz", num_joints=24, num_betas=10, seed=i)
    import shutil

    shutil.copytree(root / "raw", tmp_path / "r/raw")
    shutil.copytree(root / "annotations", tmp_path / "r/annotations")
    rc = pw_main(["--data-root", str(tmp_path / "r"), "--body-models", str(smpl_dir), "--axes", "rotation",
                  "--gpu", "--quiet", "--no-side-files"])
    assert rc == 0 and "windows[test (zero-shot)]: 4" in capsys.readouterr().out
    pos = read_processed(tmp_path / "r/processed/3DPW/hmp/data_3d_3dpw.npz")
    assert pos["test"]["downtown_b_00"].shape == (190, 22, 3)
