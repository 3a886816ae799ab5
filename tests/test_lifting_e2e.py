"""Lifting end to end through the real command lines on a tiny synthetic lifting set (CPU):
train_lifting.py (DiffPose, DiffHPE refiner) -> resume -> eval.py task=lifting under occlusion, with a figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _pipeline_helpers import run_repo_command as _run
import torch

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from skeleton_diffusion.apps.create_synthetic_lifting_dataset import build_synthetic_lifting

    root = tmp_path_factory.mktemp("lifting_data")
    build_synthetic_lifting(root / "processed" / "SyntheticLifting", clips_per_subject=1, frames=60, cameras=1)
    return root


def test_diffpose_trains_resumes_and_evaluates_under_occlusion(data, tmp_path):
    run = tmp_path / "diffpose"
    common = [f"dataset_main_path={data}", "dataset=synthetic_lifting"]
    _run(["train_lifting.py", "method=diffpose", "debug=lifting", "model.num_iter_perepoch=4", "model.lifter.noise=skeleton",
          f"output_log_path={run}", *common])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert any((run / "tb").iterdir())
    _run(["train_lifting.py", f"resume={run}", "model.num_epochs=3", "progress=false", f"dataset_main_path={data}"])
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["meta"]["stage"] == "lifting" and ckpt["meta"]["method"] == "diffpose"
    assert ckpt["trainer"]["iteration"] == 12 and "ema" in ckpt
    out = tmp_path / "eval"
    fig = tmp_path / "fig.png"
    proc = _run(["eval.py", "task=lifting", f"checkpoint_path={run}", "occlusion=rand_joints", "task.num_samples=3",
                 "task.max_windows=40", f"results_path={out}", f"task.figure_path={fig}", "progress=false"])
    res = json.loads((out / "results.json").read_text())
    for metric in ("MPJPE", "PMPJPE", "NMPJPE", "MPJPE_bestK", "MPJPE_meanK", "Asymmetry", "MeanPose_MPJPE",
                   "MPJPE_action_avg"):
        assert metric in res["metrics"], metric
    m = res["metrics"]
    assert m["MPJPE_bestK"]["mean"] <= m["MPJPE_meanK"]["mean"] and res["num_windows"] == 40
    assert res["extra"]["occlusion"] == "rand_joints" and res["extra"]["per_action"]["MPJPE"]
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()
    assert fig.is_file() and fig.read_bytes()[:4] == b"\x89PNG"
    assert "results written" in proc.stdout


def test_diffhpe_refiner_video_windows(data, tmp_path):
    run = tmp_path / "diffhpe"
    _run(["train_lifting.py", "method=diffhpe", "debug=lifting", "model.num_iter_perepoch=4", "model.lifter.mode=refiner",
          "model.lifter.frames=9", "model.lifter.diffusion.timesteps=10", "model.lifter.test_steps=3",
          "model.lifter.noise=diagonal", f"output_log_path={run}", f"dataset_main_path={data}"])
    out = tmp_path / "eval"
    _run(["eval.py", "task=lifting", f"checkpoint_path={run}", "occlusion=all", "task.num_samples=2",
          f"results_path={out}", "progress=false"])
    results = {occ: json.loads((out / occ / "results.json").read_text())
               for occ in ("none", "rand_joints", "struct_joints", "frames", "arms_legs", "noisy")}
    res = results["frames"]
    assert {"MPJVE", "BoneStd"} <= set(res["metrics"]) and res["extra"]["frames"] == 9
    assert res["extra"]["occlusion"] == "frames"
    # same windows and seeds: the occlusions change the input, hence the errors
    assert results["none"]["metrics"]["MPJPE"]["mean"] != results["frames"]["metrics"]["MPJPE"]["mean"]


def test_bad_occlusion_and_non_lifting_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "eval.py", "task=lifting", "checkpoint_path=nowhere", "occlusion=holes"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2 and "occlusion must be one of" in proc.stderr
