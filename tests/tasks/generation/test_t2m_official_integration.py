"""``evaluator=official`` end to end: a converted official MDM (tiny, random), local CLIP / DistilBERT folders,
a HumanML3D-format folder, GloVe and finest.tar, all written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _t2m_official_files import (
    write_official_mdm,
    write_official_tree,
    write_tiny_clip,
    write_tiny_distilbert,
)

from skeleton_diffusion.methods.mdm.convert import convert, load_run
from skeleton_diffusion.methods.mdm.sampling import guided_x0, sample_motion
from skeleton_diffusion.tasks.generation.batched_sampling import window_generators, window_noise

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2m_official")
    out = write_official_tree(root)
    out["clip"] = write_tiny_clip(root / "clip")
    out["bert"] = write_tiny_distilbert(root / "bert")
    convert(write_official_mdm(root / "mdm_official"), root / "mdm_run")
    out["run"] = root / "mdm_run"
    return out


def test_clip_reads_20_tokens_plus_start_end_on_humanml(files):
    """MDM's encode_text on HumanML3D: context 22 (sos + 20 + eos); words past the 20th change nothing."""
    run = load_run(files["run"], "cpu")
    enc = run.text_encoder(files["clip"])
    assert enc.max_length == 22
    long = "abcdefghijklmnopqrst"  # 20 one-character tokens with "</w>" at the end: a single word = 20 tokens
    a, b = enc([" ".join(long)]), enc([" ".join(long) + " z y x"])
    torch.testing.assert_close(a, b)
    assert not torch.allclose(enc(["a b"]), enc(["a c"]))


def test_batched_guidance_equals_two_forwards(files):
    """One forward of [x; x] with [cond; zeros] = the official two passes (ClassifierFreeSampleModel)."""
    from skeleton_diffusion.methods.mdm.generation import batched_guided_x0

    run = load_run(files["run"], "cpu")
    torch.manual_seed(0)
    x = torch.randn(3, 263, 196)
    t = torch.tensor([0, 2, 3])
    cond = run.text_encoder(files["clip"])(["a person walks", "man", "jump"])
    ref = guided_x0(run.diffusion, x, t, cond, 2.5)
    ours = batched_guided_x0(run.model, x, run.diffusion.model_timesteps(t), cond, 2.5)
    # batch 6 vs 3 picks other GEMM blockings: float32 rounding (measured 2e-7) x 50
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_generator_equals_official_loop_and_ignores_batching(files):
    """Per-window noise: the adapter's sample of a row = the official p_sample loop fed that row's draws, and
    the rows do not depend on how many are sampled together."""
    run = load_run(files["run"], "cpu")
    gen_small = run.t2m_generator(files["clip"], max_batch=1, seed=7)
    gen_big = run.t2m_generator(files["clip"], max_batch=64, seed=7)
    caps = ["a person walks", "man runs", "a person walks"]
    a = gen_small.generate(caps, torch.tensor([50, 60, 70]), 2, window_ids=[5, 6, 7])
    b = gen_big.generate(caps, torch.tensor([50, 60, 70]), 2, window_ids=[5, 6, 7])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # batched forwards: float32 rounding only
    assert a.shape == (3, 2, 196, 263)
    assert not torch.allclose(a[0, 0], a[2, 0])  # same caption, other window -> other noise
    # the official loop on window 6, repeat 1 with the same draws
    g = window_generators(7, [6], 1)
    steps = run.diffusion.num_timesteps
    draws = [window_noise(g, (263, 196)) for _ in range(steps + 1)]
    cond = run.text_encoder(files["clip"])(["man runs"])
    ref = sample_motion(run.diffusion, 1, x_cond=cond, guidance_param=2.5, start_noise=draws[0],
                        sampling_noise=draws[1:])  # fmt: skip
    torch.testing.assert_close(a[1, 1], ref[0].T, rtol=1e-5, atol=1e-5)


def test_distilbert_model_generates(files, tmp_path):
    """text_encoder_type='bert' (trans_dec): DistilBERT token states + mask from a local folder; 'auto' picks it."""
    run = load_run(write_official_mdm(tmp_path / "bert_mdm", text_encoder_type="bert"), "cpu",
                   text_encoder_path=str(files["bert"]))  # fmt: skip
    from skeleton_diffusion.nn.text_encoders import DistilBERTTokenEncoder

    assert isinstance(run.text_encoder(), DistilBERTTokenEncoder)
    out = run.generate(["a person walks", "man"], None, 1, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 196, 263) and torch.isfinite(out).all()


def test_missing_text_encoder_folder_is_one_paragraph(files):
    run = load_run(files["run"], "cpu")
    from skeleton_diffusion.utils.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not a folder holding a CLIP model"):
        run.t2m_generator(str(files["run"] / "nope"))


def _eval_cmd(files, out, *extra):
    return [sys.executable, str(REPO / "eval.py"), "task=generation", "dataset=humanml3d", "evaluator=official",
            f"checkpoint_path={files['run']}", f"task.official_root={files['official']}",
            f"task.official_data_root={files['data']}", f"task.text_encoder_path={files['clip']}", "device=cpu",
            "task.eval_mode=debug", "task.official_options={batch_size:4,replication_times:2,diversity_times:5}",
            f"results_path={out}", *extra]  # fmt: skip


@pytest.mark.slow
def test_eval_py_official_end_to_end(files, tmp_path):
    out = tmp_path / "res"
    proc = subprocess.run(_eval_cmd(files, out), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for head in ("Matching Score", "R_precision", "FID", "Diversity"):
        assert f"========== {head} Summary ==========" in proc.stdout
    assert "---> [vald](top 1) Mean:" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["extra"]["evaluator"] == "official" and res["num_runs"] == 2
    assert (out / "official_table.txt").read_text().strip() in proc.stdout
    vald = res["extra"]["official_summary"]["FID"]["vald"]["mean"]
    assert res["metrics"]["FID"]["mean"] == pytest.approx(vald)
    # CrossDiff's protocol switch changes the FID reference (same batches), so the generated FID changes
    out2 = tmp_path / "res_cd"
    proc2 = subprocess.run(_eval_cmd(files, out2, "task.official_protocol=crossdiff"), cwd=REPO,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    fid = [json.loads((o / "results.json").read_text())["metrics"]["FID"]["values"] for o in (out, out2)]
    assert fid[0] != pytest.approx(fid[1])


def test_eval_official_bad_protocol_is_config_error(files, tmp_path):
    from omegaconf import OmegaConf

    from skeleton_diffusion.apps.evaluate import load_generator
    from skeleton_diffusion.tasks.generation.official_eval import run_official
    from skeleton_diffusion.utils.errors import ConfigError

    cfg = OmegaConf.create({"checkpoint_path": str(files["run"]), "device": "cpu", "seed": 0,
                            "dataset": {"dataset_name": "humanml3d"},
                            "task": {"official_root": str(files["official"]), "official_data_root": str(files["data"]),
                                     "text_encoder_path": str(files["clip"]), "official_protocol": "nope"}})  # fmt: skip
    with pytest.raises(ConfigError, match="official_protocol"):
        run_official(cfg, load_generator)
