"""End-to-end through the real command lines: a tiny text-conditioned MDM is trained and scored by
``eval.py task=generation`` (generation metrics with an evaluator checkpoint)."""

from __future__ import annotations

import json

import math
import pytest
import torch

from _pipeline_helpers import make_synthetic, run_repo_command as _run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TINY_MDM = ["model=mdm", "debug=mdm", "dataset=synthetic", "progress=false", "model.num_epochs=1",
            "model.num_iter_perepoch=3", "model.batch_size=8", "model.arch.latent_dim=32", "model.arch.ff_size=64",
            "model.diffusion_timesteps=20", "model.sampling_steps=2", "condition.num_frames=60"]  # fmt: skip


def test_text_mdm_scored_by_eval_generation(tmp_path):
    from skeleton_diffusion.data.windows.generation import build_synthetic_generation_dataset
    from skeleton_diffusion.tasks.generation.evaluator_networks import GenerationEvaluator, save_evaluator
    from skeleton_diffusion.nn.text_encoders import build_vocab

    data = make_synthetic(tmp_path / "datasets")
    run = tmp_path / "mdm_text"
    _run(["train_diffusion.py", *TINY_MDM, "condition=text", "condition.text_encoder.name=scratch",
          f"output_log_path={run}", f"dataset_main_path={data}"])
    # an (untrained) evaluator is enough to exercise the protocol; training it is tested elsewhere
    ds = build_synthetic_generation_dataset(data / "processed" / "Synthetic" / "hmp", "train", num_frames=60)
    torch.manual_seed(0)
    ev = GenerationEvaluator(22, build_vocab(t for caps in ds.texts for t in caps), ds.action_names, dim=16,
                             movement_hidden=16, movement_latent=16, motion_hidden=16, text_width=16, text_layers=1)
    save_evaluator(ev, tmp_path / "ev.pt")
    out = tmp_path / "eval"
    proc = _run(["eval.py", "task=generation", "dataset=synthetic", f"dataset_main_path={data}",
                 f"checkpoint_path={run}", f"task.evaluator_path={tmp_path / 'ev.pt'}", "task.num_frames=60",
                 "task.test_stride=20", "task.replication_times=2", "task.r_precision_batch=8",
                 "task.diversity_times=8", "task.mm_num_samples=3", "task.mm_num_repeats=3",
                 "task.multimodality_times=2", f"results_path={out}"])  # fmt: skip
    assert "MDM (text)" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["extra"]["condition"] == "text" and res["seeds"] == [0, 1]
    for name in ("R_precision_top1", "R_precision_top2", "R_precision_top3", "FID", "MM_Dist", "Diversity",
                 "MultiModality"):  # fmt: skip
        assert math.isfinite(res["metrics"][name]["mean"]), name
    assert (out / "results.csv").is_file() and (out / "results.md").is_file()
