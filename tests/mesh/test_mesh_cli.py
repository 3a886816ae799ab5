"""``python -m skeleton_diffusion.apps.fit_mesh`` on every input kind, with .obj files and the GIF; user errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("smplx")
pytest.importorskip("trimesh")

from _mesh_helpers import model_joints, random_params, write_release_like_model  # noqa: E402

from skeleton_diffusion.apps.fit_mesh import main  # noqa: E402
from skeleton_diffusion.mesh import load_body_model  # noqa: E402

FAST = ["--iters-first", "8", "--iters", "5", "--refine-iters", "5"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit_mesh_cli")
    write_release_like_model(d / "models", seed=0)
    model = load_body_model(d / "models")
    motions = [model_joints(model, random_params(6, seed=s)) for s in range(4)]
    return d, motions


def _inputs(d: Path, motions: list[np.ndarray]) -> dict[str, tuple[Path, list[str], np.ndarray]]:
    m = motions
    np.save(d / "0.npy", m[0])  # CrossDiff generate.py sample
    np.savez(d / "pred.npz", pred=np.stack([m[1][3:], m[2][3:]])[None], obs=m[1][None, :3], fps=np.float32(60))
    np.savez(d / "gen.npz", motion=np.stack([m[0], m[3]])[None], captions=np.asarray(["a person walks"]))
    np.savez(d / "edit.npz", edited=np.stack([m[2], m[1]]), input=m[2])
    results = {"motion": np.stack([x.transpose(1, 2, 0) for x in m]), "text": ["w", "x", "y", "z"],
               "lengths": np.array([6, 6, 6, 6]), "num_samples": 2, "num_repetitions": 2}
    np.save(d / "results.npy", results, allow_pickle=True)  # MDM sample/generate.py
    return {"crossdiff": (d / "0.npy", [], m[0]), "predict": (d / "pred.npz", ["--sample", "0"], m[1]),
            "generate": (d / "gen.npz", ["--sample", "1"], m[3]), "edit": (d / "edit.npz", ["--sample", "1"], m[1]),
            "mdm": (d / "results.npy", ["--sample", "1", "--rep", "1"], m[3])}


@pytest.mark.parametrize("kind", ["crossdiff", "predict", "generate", "edit", "mdm"])
def test_round_trip_on_each_input_kind(setup, kind, capsys):
    d, motions = setup
    path, extra, expected = _inputs(d, motions)[kind]
    out = d / f"{kind}_mesh.npz"
    summary = main([str(path), "--model-dir", str(d / "models"), "--out", str(out), "--device", "cpu", *extra, *FAST])
    assert "mean joint error" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_allclose(z["target_joints"], expected, atol=1e-6)
        assert z["vertices"].shape == (len(expected), 6890, 3) and z["faces"].shape[1] == 3
        assert z["body_pose"].shape == (len(expected), 69) and z["betas"].shape == (10,)
        err = np.linalg.norm(z["joints"] - expected, axis=-1).mean() * 1000
        assert float(z["mean_error_mm"]) == pytest.approx(err, rel=1e-3) and err < 5.0
    assert summary["frames"] == len(expected)


def test_obj_files_and_gif(setup):
    d, motions = setup
    np.save(d / "obj_in.npy", motions[0])
    summary = main([str(d / "obj_in.npy"), "--model-dir", str(d / "models"), "--out", str(d / "o.npz"),
                    "--obj-dir", str(d / "objs"), "--gif", str(d / "o.gif"), "--gif-frames", "3", *FAST])
    objs = sorted((d / "objs").glob("*.obj"))
    assert len(objs) == 6 and objs == summary["objs"]
    with np.load(d / "o.npz") as z, open(objs[2]) as fh:
        n_v = sum(line.startswith("v ") for line in fh)
        assert n_v == z["vertices"].shape[1]
    from PIL import Image

    with Image.open(d / "o.gif") as im:
        assert im.n_frames == 3 and im.size[0] >= 600


def test_user_errors_exit_2_with_one_paragraph(setup, tmp_path, capsys):
    d, motions = setup
    np.save(tmp_path / "bad.npy", np.zeros((4, 17, 3)))
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "bad.npy"), "--model-dir", str(d / "models"), "--out", str(tmp_path / "o.npz")])
    assert err.value.code == 2 and "17 joints" in capsys.readouterr().err


def test_missing_model_from_the_command_line(setup, tmp_path, repo_root):
    d, motions = setup
    np.save(tmp_path / "in.npy", motions[0])
    env = dict(os.environ, PYTHONPATH=str(repo_root / "src"))
    env.pop("SKELETON_DIFFUSION_TRACEBACK", None)
    res = subprocess.run([sys.executable, "-m", "skeleton_diffusion.apps.fit_mesh", str(tmp_path / "in.npy"),
                          "--model-dir", str(tmp_path / "no_models"), "--out", str(tmp_path / "o.npz")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "BodyModelNotFoundError" in res.stderr and "Traceback" not in res.stderr
    assert "smpl.is.tue.mpg.de" in res.stderr and not (tmp_path / "o.npz").exists()
