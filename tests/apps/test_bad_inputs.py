"""Issue 15 item 4: every user-supplied file that is truncated, empty, of the wrong type or the wrong shape gives
one clear error naming the file and what was expected, and the CLIs print it as one paragraph (no traceback).

Loaders covered: observations (``predict.load_observation``), processed datasets (``data.load_processed``), run
configs (``config.load_config``, resume's saved ``config.yaml``), checkpoints (``utils.io.safe_torch_load``,
``training.checkpoint.load_checkpoint`` / ``resolve_checkpoint``) and skeleton files (``skeletons.io``).
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skeleton_diffusion.utils.errors import SkeletonDiffusionError

REPO = Path(__file__).resolve().parents[2]


class _Custom:  # a pickled class instance: refused by every loader (no unpickling of code)
    pass


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _bad_files(tmp_path: Path, suffix: str, good: bytes) -> dict[str, Path]:
    """Truncated / empty / text / pickle / truncated-zip versions of a file type."""
    cases = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "text": b"this is a text file, not the expected format\n",
        "pickle": pickle.dumps({"obs": _Custom()}),
        "zip_garbage": b"PK\x03\x04" + b"\x00" * 40,  # zip magic, corrupt body (zipfile.BadZipFile)
        "binary": bytes(range(256)) * 4,
    }
    out = {}
    for name, data in cases.items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        out[name] = path
    return out


def _assert_clear(exc: BaseException, path: Path, *expected: str) -> None:
    assert isinstance(exc, SkeletonDiffusionError), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert str(path) in msg or path.name in msg, msg
    for word in expected:
        assert word in msg, (word, msg)
    assert len(msg) < 1200 and "Traceback" not in msg


# ------------------------------------------------------------------------------------------------ observations
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
@pytest.mark.parametrize("case", ["truncated", "empty", "text", "pickle", "zip_garbage", "binary"])
def test_observation_file_errors_name_the_file(tmp_path, suffix, case):
    from skeleton_diffusion.apps.predict import load_observation

    obs = np.zeros((30, 22, 3), np.float32)
    good = _npy_bytes(obs) if suffix == ".npy" else _npz_bytes(obs=obs)
    path = _bad_files(tmp_path, suffix, good)[case]
    with pytest.raises(SkeletonDiffusionError) as err:
        load_observation(path)
    _assert_clear(err.value, path, "(T_obs, J, 3)")


def test_observation_wrong_content_and_shape(tmp_path):
    from skeleton_diffusion.tasks.hmp.input_checks import validate_observation
    from skeleton_diffusion.apps.predict import load_observation
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    words = tmp_path / "words.npy"
    np.save(words, np.array(["a", "b"]))
    with pytest.raises(SkeletonDiffusionError) as err:
        load_observation(words)
    _assert_clear(err.value, words, "dtype")
    two = tmp_path / "two.npz"
    np.savez(two, a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(SkeletonDiffusionError) as err:
        load_observation(two)
    _assert_clear(err.value, two, "'obs'")
    empty_npz = tmp_path / "none.npz"
    np.savez(empty_npz)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_observation(empty_npz)
    _assert_clear(err.value, empty_npz, "no arrays")
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((30, 66), np.float32))  # wrong shape: (T, J*3)
    arr = load_observation(flat)
    with pytest.raises(SkeletonDiffusionError, match=r"\(30, 66\)"):
        validate_observation(arr, get_skeleton("amass"), 30)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_observation(tmp_path / "missing.npy")
    _assert_clear(err.value, tmp_path / "missing.npy", "not found")


# ------------------------------------------------------------------------------------------- processed datasets
@pytest.mark.parametrize("case", ["truncated", "empty", "text", "pickle", "zip_garbage", "binary"])
def test_processed_dataset_file_errors_name_the_file(tmp_path, case):
    from skeleton_diffusion.data.processed import load_processed, save_processed

    good_path = tmp_path / "good.npz"
    save_processed(good_path, {"train": {"clip": np.zeros((40, 22, 3), np.float32)}})
    path = _bad_files(tmp_path, ".npz", good_path.read_bytes())[case]
    with pytest.raises(SkeletonDiffusionError) as err:
        load_processed(path)
    _assert_clear(err.value, path, "positions_3d")


@pytest.mark.parametrize("content,expected", [
    ({"positions_3d": np.zeros((3, 22, 3))}, "pickled dict"),
    ({"positions": np.zeros(3)}, "instead of 'positions_3d'"),
])
def test_processed_dataset_wrong_layout(tmp_path, content, expected):
    from skeleton_diffusion.data.processed import load_processed

    path = tmp_path / "data_3d_x.npz"
    np.savez(path, **content)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_processed(path)
    _assert_clear(err.value, path, expected)


def test_processed_dataset_wrong_shape_names_clip_and_shape(tmp_path):
    from skeleton_diffusion.data.processed import load_processed

    path = tmp_path / "data_3d_x.npz"
    np.savez(path, positions_3d={"train": {"clip7": np.zeros((40, 22), np.float32)}})
    with pytest.raises(SkeletonDiffusionError) as err:
        load_processed(path)
    _assert_clear(err.value, path, "clip7", "[T, J, 3]", "(40, 22)")


# ------------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("content,expected", [
    (b"model: {num_epochs: 3\nstage: [", "not valid YAML"),
    (b"", "empty"),
    (bytes(range(256)) * 4, "not valid YAML"),
    (b"- a\n- b\n", "mapping"),
])
def test_run_config_errors_name_the_file(tmp_path, content, expected):
    from skeleton_diffusion.config import load_config
    from skeleton_diffusion.training.run_dir import resolve_resume

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}}, run / "checkpoints" / "last.pt")
    (run / "config.yaml").write_bytes(content)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_config(run / "config.yaml")
    _assert_clear(err.value, run / "config.yaml", expected)
    with pytest.raises(SkeletonDiffusionError) as err:
        resolve_resume(str(run))
    _assert_clear(err.value, run / "config.yaml", expected)


def test_configs_beside_checkpoints_are_checked_by_eval_predict_and_stage_2(tmp_path):
    """eval/predict (a checkpoint without embedded config) and train_diffusion (the autoencoder run) read the run
    folder's config.yaml: an unreadable one is named."""
    from skeleton_diffusion.checkpoints.format import checkpoint_config
    from skeleton_diffusion.training.launch import autoencoder_run_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.pt"
    torch.save({"model": {}}, ckpt)
    (run / "config.yaml").write_text("stage: autoencoder\nmodel: [unclosed\n")
    for load in (lambda: checkpoint_config({}, ckpt), lambda: autoencoder_run_config(run)):
        with pytest.raises(SkeletonDiffusionError) as err:
            load()
        _assert_clear(err.value, run / "config.yaml", "not valid YAML", "line 3")


def test_load_config_missing_file(tmp_path):
    from skeleton_diffusion.config import load_config

    with pytest.raises(SkeletonDiffusionError) as err:
        load_config(tmp_path / "nope.yaml")
    _assert_clear(err.value, tmp_path / "nope.yaml", "not found")


# --------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("case", ["truncated", "empty", "text", "pickle", "zip_garbage", "binary"])
def test_checkpoint_file_errors_name_the_file(tmp_path, case):
    from skeleton_diffusion.checkpoints.format import load_checkpoint, resolve_checkpoint
    from skeleton_diffusion.utils.io import safe_torch_load

    good = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(3)}}, good)
    path = _bad_files(tmp_path, ".pt", good.getvalue())[case]
    assert resolve_checkpoint(path) == path
    for load in (lambda: safe_torch_load(path), lambda: load_checkpoint(path, {"model": torch.nn.Linear(1, 1)})):
        with pytest.raises(SkeletonDiffusionError) as err:
            load()
        _assert_clear(err.value, path, "checkpoint")


def test_checkpoint_wrong_content(tmp_path):
    from skeleton_diffusion.checkpoints.format import load_checkpoint, resolve_checkpoint

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_checkpoint(tensor, {"model": torch.nn.Linear(1, 1)})
    _assert_clear(err.value, tensor, "expected a dict")
    other = tmp_path / "other.pt"
    torch.save({"weights": {}}, other)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_checkpoint(other, {"model": torch.nn.Linear(1, 1)})
    _assert_clear(err.value, other, "lacks ['model']")
    shape = tmp_path / "shape.pt"
    torch.save({"model": torch.nn.Linear(2, 2).state_dict()}, shape)
    with pytest.raises(SkeletonDiffusionError) as err:
        load_checkpoint(shape, {"model": torch.nn.Linear(1, 1)})
    _assert_clear(err.value, shape, "model", "size mismatch for weight", "[2, 2]")
    with pytest.raises(SkeletonDiffusionError) as err:
        resolve_checkpoint(tmp_path / "missing.pt")
    _assert_clear(err.value, tmp_path / "missing.pt", "does not exist")
    (tmp_path / "emptyrun").mkdir()
    with pytest.raises(SkeletonDiffusionError) as err:
        resolve_checkpoint(tmp_path / "emptyrun")
    _assert_clear(err.value, tmp_path / "emptyrun", "no checkpoint")


# ------------------------------------------------------------------------------------------- skeleton files
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("content", [b'{"name": "x", "joints": [{"name": "root"', b"", bytes(range(256)) * 4,
                                     b"[1, 2, 3]", b'{"name": "x"}'])
def test_skeleton_file_errors_name_the_file(tmp_path, suffix, content):
    import skeleton_diffusion.skeletons.formats.files as io_mod

    path = tmp_path / f"sk{suffix}"
    path.write_bytes(content)
    with pytest.raises(SkeletonDiffusionError) as err:
        io_mod.load_skeleton_file(path)
    _assert_clear(err.value, path)


# ------------------------------------------------------------------------------------------------------- CLIs
def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SKELETON_DIFFUSION_TRACEBACK", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def _assert_one_paragraph(res: subprocess.CompletedProcess, *words: str) -> None:
    out = res.stdout + res.stderr
    assert res.returncode not in (0, 1), out[-3000:]  # 2: a user error, reported (1 would be an uncaught exception)
    assert "Traceback" not in out, out[-3000:]
    assert "error (" in res.stderr
    paragraph = " ".join(res.stderr.split("error (", 1)[1].split())
    for word in words:
        assert word in paragraph, (word, paragraph)


def test_run_cli_reports_unreadable_or_unwritable_files(tmp_path, capsys, monkeypatch):
    """An OSError naming a file (e.g. an output folder that does not exist) is one paragraph too; others are not
    swallowed."""
    from skeleton_diffusion.config.cli import run_cli

    monkeypatch.delenv("SKELETON_DIFFUSION_TRACEBACK", raising=False)
    target = tmp_path / "no_such_folder" / "pred.npz"
    with pytest.raises(SystemExit) as ex:
        run_cli(lambda: open(target, "wb"))
    assert ex.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot access '{target}'" in err and "No such file or directory" in err
    with pytest.raises(OSError, match="no file here"):
        run_cli(lambda: (_ for _ in ()).throw(OSError("no file here")))


def test_predict_cli_corrupt_npz_is_one_paragraph(tmp_path):
    bad = tmp_path / "obs.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    res = _cli(["-m", "skeleton_diffusion.apps.predict", f"checkpoint_path={tmp_path / 'model.pt'}", f"input={bad}",
                f"output={tmp_path / 'pred.npz'}"], tmp_path)
    _assert_one_paragraph(res, str(bad), "(T_obs, J, 3)")


@pytest.mark.slow
def test_predict_cli_corrupt_checkpoint_is_one_paragraph(tmp_path):
    obs = tmp_path / "obs.npy"
    np.save(obs, np.zeros((30, 22, 3), np.float32))
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(pickle.dumps({"model": _Custom()}))
    res = _cli(["-m", "skeleton_diffusion.apps.predict", f"checkpoint_path={ckpt}", f"input={obs}",
                f"output={tmp_path / 'pred.npz'}"], tmp_path)
    _assert_one_paragraph(res, str(ckpt))


@pytest.mark.slow
def test_eval_cli_truncated_checkpoint_is_one_paragraph(tmp_path):
    ckpt = tmp_path / "model.pt"
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(1000)}}, buf)
    ckpt.write_bytes(buf.getvalue()[:500])
    res = _cli([str(REPO / "eval.py"), f"checkpoint_path={ckpt}", f"results_path={tmp_path / 'res'}"], tmp_path)
    _assert_one_paragraph(res, str(ckpt))


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["config_yaml", "config_keys", "checkpoint"])
def test_train_resume_cli_broken_run_folder_is_one_paragraph(tmp_path, broken):
    from omegaconf import OmegaConf

    from _pipeline_helpers import ae_cfg, make_synthetic

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    if broken == "checkpoint":  # a complete config on real data; the checkpoint is garbage
        cfg = ae_cfg(make_synthetic(tmp_path / "data"), run)
        (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    else:
        (run / "config.yaml").write_text("stage: autoencoder\nmodel: {num_epochs: [\n" if broken == "config_yaml"
                                         else "stage: autoencoder\n")
        (run / "checkpoints" / "last.pt").write_bytes(b"")
    res = _cli([str(REPO / "train_autoencoder.py"), f"resume={run}"], tmp_path)
    _assert_one_paragraph(res, str(run / ("checkpoints/last.pt" if broken == "checkpoint" else "config.yaml")))
