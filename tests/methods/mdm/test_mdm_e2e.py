"""MDM end-to-end through the real command lines, tiny CPU presets: each condition mode trains and is evaluated
or sampled (past: eval.py with every HMP metric, multi-seed; action/text: generation + the editing CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _pipeline_helpers import body_extent, make_synthetic, run_repo_command as _run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TINY = ["model=mdm", "debug=mdm", "dataset=synthetic", "progress=false", "model.num_epochs=1",
        "model.num_iter_perepoch=4", "model.batch_size=8", "model.arch.latent_dim=32", "model.arch.ff_size=64",
        "model.diffusion_timesteps=20", "model.sampling_steps=3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("mdm_data"))


def test_mdm_past_trains_resumes_and_evaluates(data, tmp_path):
    run = tmp_path / "past"
    common = [f"dataset_main_path={data}"]
    _run(["train_diffusion.py", *TINY, "noise=nonisotropic", f"output_log_path={run}", *common])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert any((run / "tb").iterdir())
    _run(["train_diffusion.py", f"resume={run}", "model.num_epochs=2", "progress=false", *common])
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["meta"]["method"] == "mdm" and ckpt["trainer"]["iteration"] == 8 and "ema" in ckpt
    out = tmp_path / "eval"
    proc = _run(["eval.py", "dataset=synthetic", f"checkpoint_path={run}", "stats_mode=probabilistic",
                 "debug=eval", "num_samples=2", "seeds=[0,1]", "progress=false", f"results_path={out}", *common])
    res = json.loads((out / "results.json").read_text())
    text = json.dumps(res)
    for metric in ("ADE", "FDE", "MMADE", "MMFDE", "APD", "CMD", "MAE", "StretchMean", "JitterMean"):
        assert metric in text, metric
    assert "MDM-nonisotropic" in proc.stdout + text
    # units and magnitude against the data: zero-velocity on the same windows (its ADE/FDE are the data's own
    # motion scale in metres). Measured with this 8-iteration preset: MDM ADE 6.72 / FDE 7.93 m against
    # zero-velocity 0.745 / 0.982 m, ratios 9.0 / 8.1 (the tiny model is far from a body yet). Bound: ratio within
    # [1/20, 20] (2x margin above the measured 9; below, 8 iterations cannot beat the baseline 20x). A cm/mm unit
    # (100x/1000x), a missing de-normalisation or a km-scale slip falls outside.
    zv = tmp_path / "eval_zv"
    _run(["eval.py", "dataset=synthetic", "method_specs=zero_velocity", "stats_mode=probabilistic", "debug=eval",
          "seeds=[0]", "progress=false", f"results_path={zv}", *common])  # fmt: skip
    res_zv = json.loads((zv / "results.json").read_text())
    assert res_zv["num_windows"] == res["num_windows"]
    for metric in ("ADE", "FDE"):
        ratio = res["metrics"][metric]["mean"] / res_zv["metrics"][metric]["mean"]
        assert 1 / 20 <= ratio <= 20, (metric, res["metrics"][metric]["mean"], res_zv["metrics"][metric]["mean"])
    # long-term HMP mode (0.5 s -> 5 s): autoregressive rollout to 300 frames on segments_test_long_term_pred.csv
    lt = tmp_path / "eval_long_term"
    _run(["eval.py", "dataset=synthetic", f"checkpoint_path={run}", "if_long_term_test=true", "debug=eval",
          "num_samples=2", "seeds=[0]", "progress=false", "if_store_output=true", f"results_path={lt}", *common])
    res_lt = json.loads((lt / "results.json").read_text())
    n_long = len((data / "processed/Synthetic/hmp/segments_test_long_term_pred.csv").read_text().splitlines()) - 1
    assert res_lt["extra"]["long_term"] is True and res_lt["num_windows"] == n_long >= 1
    assert np.isfinite(res_lt["metrics"]["ADE"]["mean"]) and np.isfinite(res_lt["metrics"]["FDE"]["mean"])
    with np.load(lt / "predictions.npz") as z:
        pred_lt, gt_lt = z["pred"], z["gt"]
    assert pred_lt.shape[:3] == (n_long, 2, 300) and gt_lt.shape[1] == 300 and np.isfinite(pred_lt).all()
    from skeleton_diffusion.methods.registry import load_model

    p = load_model(run, "cpu")
    obs = np.random.default_rng(0).normal(size=(30, 22, 3)).astype(np.float32) * 0.2
    pred = p.predict(obs, num_samples=2, seed=0)
    assert pred.shape == (1, 2, 120, 22, 3)
    np.testing.assert_allclose(pred[..., 0, :], np.broadcast_to(obs[-1, 0], pred[..., 0, :].shape), atol=1e-6)
    assert np.allclose(pred, p.predict(obs, num_samples=2, seed=0))
    # metres at the observation's scale (the eval above runs the normalised sampler, not predict()): body size of
    # the predicted frames against the observed ones. Measured ratio 4.0 (random 0.2 m observation, tiny model);
    # bound 8 = 2x margin; a cm/mm unit or a missing pose_box_size is >=100x off.
    ratio = np.median(body_extent(pred)) / np.median(body_extent(obs))
    assert 1 / 8 <= ratio <= 8, ratio
    long = p.predict(obs, num_samples=1, seed=0, pred_length=300)  # autoregressive long-term rollout
    assert long.shape == (1, 1, 300, 22, 3) and np.isfinite(long).all()
    window = np.random.default_rng(1).normal(size=(150, 22, 3)).astype(np.float32) * 0.2
    keep = [0, 3, 6, 9, 12, 15]  # body-part editing: spine and head kept, limbs generated
    edited = p.edit(window, "joints", keep, num_samples=2)
    assert edited.shape == (2, 120, 22, 3)
    np.testing.assert_allclose(edited[:, :, keep], np.broadcast_to(window[30:, keep], edited[:, :, keep].shape),
                               atol=1e-5)
    assert not np.allclose(edited[:, :, 20], window[30:, 20], atol=1e-2)


@pytest.mark.parametrize("condition", ["action", "text"])
def test_mdm_generation_modes_train_generate_and_edit(data, tmp_path, condition):
    run = tmp_path / condition
    extra = ["model.lambda_pos=1", "model.lambda_vel=1", "model.lambda_fc=1"] if condition == "action" else []
    _run(["train_diffusion.py", *TINY, f"condition={condition}", *extra, f"output_log_path={run}",
          f"dataset_main_path={data}"])
    from skeleton_diffusion.methods.registry import load_model

    p = load_model(run, "cpu")
    assert p.condition == condition
    kw = {"actions": [0, 1]} if condition == "action" else {"texts": ["a person walks", "a person jumps"]}
    g = p.generate(120, num_samples=2, generator=torch.Generator().manual_seed(0), **kw)
    assert g.shape == (2, 2, 120, 22, 3) and torch.isfinite(g).all()
    motion = g[0, 0].numpy()
    np.save(tmp_path / "motion.npy", motion)
    keep = [0, 1, 2, 3, 116, 117, 118, 119]
    cond_arg = "action=1" if condition == "action" else "text=a person walks"
    _run(["-m", "skeleton_diffusion.apps.edit", f"checkpoint_path={run}", f"input={tmp_path / 'motion.npy'}",
          "mode=inbetween", f"keep={keep}".replace(" ", ""), f"output={tmp_path / 'edit.npz'}",
          f"gif={tmp_path / 'edit.gif'}", "num_samples=2", cond_arg])
    with np.load(tmp_path / "edit.npz") as z:
        edited, mask = z["edited"], z["known_mask"]
    assert edited.shape == (2, 120, 22, 3) and mask.shape == (120, 22)
    np.testing.assert_allclose(edited[:, keep], np.broadcast_to(motion[keep], edited[:, keep].shape), atol=1e-6)
    assert not np.allclose(edited[:, 50], motion[50], atol=1e-3)
    assert (tmp_path / "edit.gif").stat().st_size > 1000


@pytest.mark.distributed
@pytest.mark.parametrize("method", ["mdm", "crossdiff"])
def test_motion_methods_train_data_parallel_on_two_processes(data, tmp_path, method):
    """``nproc_per_node=2`` (gloo on CPU) runs the shared launch path for MDM and CrossDiff: both processes train,
    rank 0 writes the run, and the end-of-run replica check (identical weights on every process) passes."""
    run = tmp_path / method
    if method == "mdm":
        args = TINY
    else:
        args = ["experiment=crossdiff_pre", "debug=crossdiff", "dataset=synthetic", "progress=false",
                "model.num_epochs=1", "model.num_iter_perepoch=2", "model.batch_size=8",
                "condition.text_encoder.name=scratch"]
    proc = _run(["train_diffusion.py", *args, "nproc_per_node=2", f"output_log_path={run}",
                 f"dataset_main_path={data}"])
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["meta"]["method"] == method
    assert "weights differ between processes" not in proc.stdout + proc.stderr
    assert "2 processes" in proc.stdout + proc.stderr  # ignite's spawn message: really two workers
