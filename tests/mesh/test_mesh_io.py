"""Readers of every motion file kind (ours and the official results.npy layouts) and the npz/obj writers."""

from __future__ import annotations

import numpy as np
import pytest

from skeleton_diffusion.mesh.readers import load_joint_sequence
from skeleton_diffusion.utils.errors import DataFormatError, InputError


def _motion(t_len: int, seed: int, joints: int = 22) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, (t_len, joints, 3)).astype(np.float32)


def test_predict_output(tmp_path):
    pred = np.stack([np.stack([_motion(6, 10 * b + s) for s in range(3)]) for b in range(2)])  # [2, 3, 6, 22, 3]
    obs = np.stack([_motion(4, 100 + b) for b in range(2)])
    np.savez(tmp_path / "pred.npz", pred=pred, obs=obs, joint_names=np.asarray(["j"] * 22), fps=np.float32(60))
    seq = load_joint_sequence(tmp_path / "pred.npz", batch=1, sample=2)
    np.testing.assert_array_equal(seq.joints, np.concatenate([obs[1], pred[1, 2]]))
    assert seq.fps == 60 and seq.kind == "prediction"
    np.testing.assert_array_equal(load_joint_sequence(tmp_path / "pred.npz", part="pred").joints, pred[0, 0])
    with pytest.raises(InputError, match="sample"):
        load_joint_sequence(tmp_path / "pred.npz", sample=3)


def test_generate_and_edit_outputs(tmp_path):
    motion = np.stack([np.stack([_motion(5, 10 * b + s) for s in range(2)]) for b in range(2)])
    np.savez(tmp_path / "gen.npz", motion=motion, captions=np.asarray(["walk", "jump"]), fps=np.float32(20))
    seq = load_joint_sequence(tmp_path / "gen.npz", batch=1, sample=1)
    np.testing.assert_array_equal(seq.joints, motion[1, 1])
    assert seq.kind == "generation" and "jump" in seq.label
    edited = np.stack([_motion(7, s) for s in range(2)])
    np.savez(tmp_path / "edit.npz", edited=edited, input=_motion(7, 9), known_mask=np.ones((7, 22), bool))
    seq = load_joint_sequence(tmp_path / "edit.npz", sample=1)
    np.testing.assert_array_equal(seq.joints, edited[1])
    assert seq.kind == "edit" and seq.fps is None


def test_plain_arrays_and_amass_mano(tmp_path):
    x = _motion(8, 1)
    np.save(tmp_path / "0.npy", x)  # CrossDiff generate.py / fit_smpl.py input
    np.testing.assert_array_equal(load_joint_sequence(tmp_path / "0.npy").joints, x)
    np.savez(tmp_path / "m.npz", motion=x)
    np.testing.assert_array_equal(load_joint_sequence(tmp_path / "m.npz").joints, x)
    hands = _motion(8, 2, joints=52)
    np.save(tmp_path / "mano.npy", hands)
    np.testing.assert_array_equal(load_joint_sequence(tmp_path / "mano.npy").joints, hands[:, :22])


def _official_results(num_samples: int = 2, reps: int = 2, t_len: int = 9) -> dict:
    motion = np.random.default_rng(0).normal(0, 0.3, (num_samples * reps, 22, 3, t_len)).astype(np.float32)
    return {"motion": motion, "text": ["a", "b"] * reps, "lengths": np.array([9, 7, 5, 8]),
            "num_samples": num_samples, "num_repetitions": reps}


def test_official_results_npy_and_npz(tmp_path):
    d = _official_results()
    np.save(tmp_path / "results.npy", d, allow_pickle=True)  # what MDM's sample/generate.py writes
    seq = load_joint_sequence(tmp_path / "results.npy", sample=0, rep=1)
    np.testing.assert_array_equal(seq.joints, d["motion"][2].transpose(2, 0, 1)[:5])
    assert seq.fps == 20 and seq.kind == "official-results" and seq.label == "a"
    np.savez(tmp_path / "results.npz", d)  # the npz variant MDM's vis_utils also accepts (key arr_0)
    seq = load_joint_sequence(tmp_path / "results.npz", sample=1, rep=0)
    np.testing.assert_array_equal(seq.joints, d["motion"][1].transpose(2, 0, 1)[:7])
    with pytest.raises(InputError, match="row"):
        load_joint_sequence(tmp_path / "results.npy", sample=2)


def test_pickled_results_with_foreign_objects_are_refused(tmp_path):
    import collections

    np.save(tmp_path / "results.npy", {"motion": np.zeros((1, 22, 3, 2)), "x": collections.OrderedDict()},
            allow_pickle=True)
    with pytest.raises(DataFormatError, match="allow-list"):
        load_joint_sequence(tmp_path / "results.npy")


@pytest.mark.parametrize("arr, match", [(np.zeros((5, 17, 3)), "17 joints"), (np.zeros((5, 22)), "shape"),
                                        (np.full((5, 22, 3), 900.0), "metres")])
def test_bad_inputs(tmp_path, arr, match):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises((InputError, DataFormatError), match=match):
        load_joint_sequence(tmp_path / "x.npy")


def test_missing_and_wrong_type(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_joint_sequence(tmp_path / "none.npy")
    (tmp_path / "t.npy").write_text("hello")
    with pytest.raises(DataFormatError, match="neither"):
        load_joint_sequence(tmp_path / "t.npy")


def test_writers_round_trip(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from skeleton_diffusion.mesh.fitting import SMPLFit
    from skeleton_diffusion.mesh.writers import MESH_NPZ_KEYS, save_mesh_npz, save_obj_frames

    rng = np.random.default_rng(0)
    t_len = 3
    verts = rng.normal(size=(t_len, 10, 3)).astype(np.float32)
    faces = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7]])
    fit = SMPLFit(betas=np.zeros(10, np.float32), global_orient=np.zeros((t_len, 3), np.float32),
                  body_pose=np.zeros((t_len, 69), np.float32), transl=np.ones((t_len, 3), np.float32),
                  target=np.zeros((t_len, 22, 3), np.float32), joints=np.zeros((t_len, 22, 3), np.float32),
                  per_frame_error_mm=np.array([1.0, 2.0, 3.0], np.float32), mean_error_mm=2.0, seconds=0.1,
                  vertices=verts, faces=faces)
    path = save_mesh_npz(tmp_path / "mesh.npz", fit, fps=20.0)
    with np.load(path, allow_pickle=False) as z:
        assert set(MESH_NPZ_KEYS) <= set(z.files)
        np.testing.assert_array_equal(z["vertices"], verts)
        assert z["poses"].shape == (t_len, 72) and float(z["mean_error_mm"]) == 2.0
    objs = save_obj_frames(tmp_path / "objs", verts, faces)
    assert [p.name for p in objs] == ["frame000.obj", "frame001.obj", "frame002.obj"]
    mesh = trimesh.load(objs[1], process=False, force="mesh", maintain_order=True)
    np.testing.assert_allclose(mesh.vertices, verts[1], atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, faces)
