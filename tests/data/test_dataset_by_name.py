"""Issue 15 items 5 and 6: a missing official dataset names its processed file and the command that builds it;
a dataset built by our builders is usable as ``dataset=<name>`` without copying its config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _mocap_helpers import TREE  # noqa: E402  (LAFAN1-like, cm, Y up: what --map lafan1 expects)
from skeleton_diffusion.utils.errors import DatasetNotPreparedError

REPO = Path(__file__).resolve().parents[2]

def _write_bvh(path: Path, frames: int, rng: np.random.Generator) -> None:
    """A smooth random-rotation clip on the LAFAN1 hierarchy at 30 fps."""
    children: dict = {}
    for name, parent, _ in TREE:
        children.setdefault(parent, []).append(name)
    offsets = {n: o for n, _, o in TREE}
    lines = ["HIERARCHY"]

    def emit(name: str, depth: int) -> None:
        pad = "\t" * depth
        lines.extend([f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}", pad + "{",
                      pad + "\tOFFSET " + " ".join(str(v) for v in offsets[name]),
                      pad + "\tCHANNELS " + ("6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"
                                             if depth == 0 else "3 Zrotation Yrotation Xrotation")])
        for kid in children.get(name, []):
            emit(kid, depth + 1)
        if name not in children:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0 5 0", pad + "\t}"])
        lines.append(pad + "}")

    emit("Hips", 0)
    n_ch = 6 + 3 * (len(TREE) - 1)
    t = np.linspace(0, 2 * np.pi * frames / 60, frames)[:, None]
    data = 20 * np.sin(t * rng.uniform(0.5, 2.0, n_ch) + rng.uniform(0, 6.3, n_ch))
    data[:, :3] = [0, 90, 0]
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1 / 30:.7f}"]
    lines += [" ".join(f"{v:.3f}" for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """``<root>/ds`` holding ``processed/MyMocap/hmp/`` built by create_bvh_dataset (2 clips x 1000 frames)."""
    from skeleton_diffusion.apps.create_bvh_dataset import main as bvh_main

    root = tmp_path_factory.mktemp("bvh_by_name")
    (root / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        _write_bvh(root / "in" / f"walk{i}_subject1.bvh", 1000, rng)
    rc = bvh_main(["--input", str(root / "in"), "--name", "MyMocap", "--map", "lafan1",
                   "--data-root", str(root / "ds"), "--quiet"])
    assert rc == 0
    assert (root / "ds/processed/MyMocap/hmp/dataset_config.yaml").is_file()
    return root / "ds"


def _run(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env_extra or {}))
    env.pop("SKELETON_DIFFUSION_TRACEBACK", None)
    env.pop("SKELETON_DIFFUSION_DATASETS", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


# ------------------------------------------------------------------------------------------------ item 6
@pytest.mark.parametrize("name", ["mymocap", "MyMocap"])
def test_built_dataset_composes_by_name_and_loads(built, monkeypatch, name):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from skeleton_diffusion.config import CONFIG_DIR
    from skeleton_diffusion.data.registry import build_dataset

    monkeypatch.setenv("SKELETON_DIFFUSION_DATASETS", str(built))  # the compose API has no sys.argv overrides
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("eval", overrides=[f"dataset={name}", f"dataset_main_path={built}"])
    GlobalHydra.instance().clear()
    assert cfg.dataset.dataset_name == "mymocap" and cfg.dataset.dataset_type == "GenericMotionDataset"
    test = build_dataset(cfg.dataset, "test", pose_box_size=1.2, dataset_main_path=built)
    obs, fut, _ = test[0]
    assert len(test) > 0 and tuple(obs.shape) == (30, 21, 3) and tuple(fut.shape) == (120, 21, 3)


def test_cli_finds_built_dataset_from_dataset_main_path(built, tmp_path):
    """The override on the command line is enough (no env var, another working directory)."""
    res = _run([str(REPO / "train_autoencoder.py"), "dataset=mymocap", f"dataset_main_path={built}", "--cfg", "job"],
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "dataset_name: mymocap" in res.stdout and "GenericMotionDataset" in res.stdout


def test_unknown_dataset_says_where_built_datasets_are_searched(tmp_path):
    res = _run([str(REPO / "eval.py"), "dataset=nosuchset", "method_specs=zero_velocity"], cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out
    assert "Could not find 'dataset/nosuchset'" in out
    assert "/datasets/processed/<NAME>/hmp/dataset_config.yaml" in out  # ./datasets of the working directory
    assert "dataset_main_path=" in out


@pytest.mark.e2e
def test_eval_runs_on_a_built_bvh_dataset_by_name(built, tmp_path):
    res = _run([str(REPO / "eval.py"), "dataset=mymocap", f"dataset_main_path={built}",
                "method_specs=zero_velocity", f"results_path={tmp_path / 'res'}"], cwd=tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    from omegaconf import OmegaConf

    from skeleton_diffusion.data.registry import build_dataset

    metrics = json.loads((tmp_path / "res" / "results.json").read_text())["metrics"]
    # zero velocity computed here from the test windows in metres (pose_box_size=1: no normalisation), with the
    # official ADE/FDE convention: Euclidean norm of the flattened 3N pose difference per frame
    cfg = OmegaConf.load(built / "processed/MyMocap/hmp/dataset_config.yaml")
    test = build_dataset(cfg, "test", pose_box_size=1.0, dataset_main_path=built)
    obs = np.stack([np.asarray(test[i][0], dtype=np.float64) for i in range(len(test))])
    fut = np.stack([np.asarray(test[i][1], dtype=np.float64) for i in range(len(test))])
    dist = np.linalg.norm((fut - obs[:, -1:]).reshape(len(test), fut.shape[1], -1), axis=-1)  # [windows, T]
    assert metrics["ADE"]["unit"] == "m" and metrics["FDE"]["unit"] == "m"
    # float64 here vs the evaluator's float32 sums: measured rel. diff 1.5e-8; bound 1e-6
    assert metrics["ADE"]["mean"] == pytest.approx(dist.mean(), rel=1e-6)
    assert metrics["FDE"]["mean"] == pytest.approx(dist[:, -1].mean(), rel=1e-6)
    # metres, not centimetres: the farthest two joints of each frame are 1.40-2.00 m apart (measured), as the
    # hierarchy's offsets in cm say; a unit slip is a factor 100
    span = np.linalg.norm(fut[:, :, :, None] - fut[:, :, None], axis=-1).max(axis=(-1, -2))
    assert 1.0 < span.min() and span.max() < 2.5
    assert metrics["APD"]["mean"] == 0.0  # one deterministic answer per window
    assert 0 <= metrics["StretchMean"]["mean"] < 1e-3  # a copied real pose keeps its limb lengths (% limb)


# ------------------------------------------------------------------------------------------------ item 5
@pytest.mark.parametrize("name,folder,command", [
    ("amass", "processed/AMASS/hmp/data_3d_amass.npz", "create_amass_dataset"),
    ("h36m", "processed/Human36M/hmp/data_3d_h36m.npz", "create_h36m_dataset")])
@pytest.mark.parametrize("split", ["train", "test"])
def test_missing_official_dataset_names_processed_file_and_command(tmp_path, name, folder, command, split):
    from omegaconf import OmegaConf

    from skeleton_diffusion.data.registry import build_dataset

    cfg = OmegaConf.load(REPO / "configs" / "dataset" / f"{name}.yaml")
    with pytest.raises(DatasetNotPreparedError) as err:
        build_dataset(cfg, split, dataset_main_path=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"Processed dataset '{name}' not found: expected '{tmp_path / folder}'")
    assert f"python -m skeleton_diffusion.apps.{command}" in msg and "dataset_main_path=" in msg
    if split == "test":  # the window CSV is missing too: listed after, with the command that fetches it
        assert "segments_test.csv" in msg and "fetch_annotations" in msg


def test_eval_cli_missing_amass_is_one_paragraph(tmp_path):
    res = _run([str(REPO / "eval.py"), "dataset=amass", f"dataset_main_path={tmp_path / 'none'}",
                "method_specs=zero_velocity"], cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    text = " ".join(res.stderr.split())
    assert "data_3d_amass.npz" in text and "python -m skeleton_diffusion.apps.create_amass_dataset" in text
