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

REPO = Path(__file__).resolve().parents[2]
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
    _run(["train_lifting.py", "method=diffpose_ours", "debug=lifting", "model.num_iter_perepoch=4",
          "model.lifter.noise=skeleton",
          f"output_log_path={run}", *common])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert any((run / "tb").iterdir())
    _run(["train_lifting.py", f"resume={run}", "model.num_epochs=3", "progress=false", f"dataset_main_path={data}"])
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["meta"]["stage"] == "lifting" and ckpt["meta"]["method"] == "diffpose_ours"
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
    _run(["train_lifting.py", "method=diffhpe_ours", "debug=lifting", "model.num_iter_perepoch=4",
          "model.lifter.mode=refiner",
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


class _Recorder(torch.nn.Module):
    """A lifter stub: records what the protocol feeds it and answers the zero pose (every joint at the root)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def predict(self, p2, mask, num_samples, generator=None):
        self.seen.append((p2.clone(), mask.clone()))
        return torch.zeros(p2.shape[0], num_samples, p2.shape[1], p2.shape[2], 3)


@pytest.mark.parametrize("occlusion", ["none", "rand_joints", "struct_joints", "frames", "arms_legs", "noisy"])
def test_lifting_protocol_feeds_exactly_the_occluded_input_and_scores_in_mm(data, occlusion):
    """What ``evaluate_lifting`` feeds the model: the dataset's 2D where the mask is 1 (bit for bit), exactly the
    fill value 0 where it is 0, and only the joints / frames the occlusion names are masked. The zero answer
    scores MPJPE = the mean root-relative joint distance of the data, in millimetres."""
    from skeleton_diffusion.data.augment.corruption import joint_groups
    from skeleton_diffusion.data.windows.lifting import LiftingWindows, load_lifting
    from skeleton_diffusion.tasks.lifting.protocol import evaluate_lifting

    lift = load_lifting(next((data / "processed" / "SyntheticLifting").glob("*.npz")))
    windows = LiftingWindows(lift, "test", window=9, stride=9)
    rec = _Recorder()
    res = evaluate_lifting(rec, windows, occlusion=occlusion, num_samples=2, batch_size=8, seed=0,
                           device=torch.device("cpu"), mean_pose=torch.zeros(len(lift.joint_names), 3))
    clean = torch.stack([windows[i][0] for i in range(len(windows))])
    p2, mask = (torch.cat(x) for x in zip(*rec.seen))
    assert p2.shape == clean.shape and mask.shape == clean.shape[:3]
    kept, dropped = mask == 1, mask == 0
    assert bool((kept | dropped).all())
    assert torch.equal(p2[dropped], torch.zeros_like(p2[dropped]))          # the fill value, exactly
    groups = joint_groups(lift.joint_names)
    if occlusion == "noisy":
        assert bool(kept.all())
        # noise_std = 0.01 by default: the added noise has that std (its estimate over ~thousands of values)
        assert float((p2 - clean).std()) == pytest.approx(0.01, rel=0.1)
    else:
        assert torch.equal(p2[kept], clean[kept])                             # untouched, bit for bit
    if occlusion in ("none", "noisy"):
        assert not bool(dropped.any())
    else:
        assert bool(dropped.any()) and not bool(dropped[..., 0].all())
        masked_joints = set(torch.nonzero(dropped.any(dim=(0, 1))).flatten().tolist())
        allowed = {"rand_joints": set(range(1, len(lift.joint_names))), "struct_joints": set(groups["right_leg"]),
                   "frames": set(range(len(lift.joint_names))),
                   "arms_legs": set(groups["right_leg"] + groups["left_arm"])}[occlusion]
        assert masked_joints <= allowed, masked_joints - allowed
        if occlusion == "frames":                                             # whole frames go
            assert torch.equal(dropped.all(dim=2), dropped.any(dim=2))
    gt = torch.stack([windows[i][1] for i in range(len(windows))]).double()
    want_mm = float((gt - gt[..., :1, :]).norm(dim=-1).mean()) * 1000.0
    assert 50 < want_mm < 1000                                                 # a human body in millimetres
    assert float(res["metrics"]["MPJPE"]) == pytest.approx(want_mm, rel=1e-6)
    assert float(res["metrics"]["MeanPose_MPJPE"]) == pytest.approx(want_mm, rel=1e-6)
