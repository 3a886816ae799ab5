"""Official MDM run folders (``modelNNNNNNNNN.pt`` + ``args.json``; flat and EMA) written here, converted with
``convert`` (and the CLI), loaded with ``load_run`` / ``methods.registry.load_model``: fixture outputs reproduced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _mdm_helpers import assert_fixture_close, frame_mask, mdm_dir, mdm_load, to_ours, write_official_folder  # noqa: F401  (mdm_dir, mdm_load: fixtures)
from skeleton_diffusion.methods.mdm import official as O
from skeleton_diffusion.utils.errors import CheckpointError

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def text_ckpt(mdm_dir) -> dict:
    return torch.load(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt", weights_only=True)


def _text_checks(run, fix, *, masked: bool) -> None:
    inp, out = fix["inputs"], fix["outputs"]
    net = run.diffusion.model.eval()
    assert sum(p.numel() for p in net.parameters()) == fix["config"]["num_params"]
    x, t, c, fm = to_ours(inp["x_t"]), inp["t"], inp["text_embed"], frame_mask(inp["mask"])
    sfx = "_mask_frames" if masked else ""
    with torch.no_grad():
        assert_fixture_close(net(x, t, None, c, frame_mask=fm), to_ours(out["cond" + sfx]), "cond" + sfx)
        assert_fixture_close(net(x, t, None, c, force_uncond=True, frame_mask=fm), to_ours(out["uncond" + sfx]),
                             "uncond" + sfx)
        if not masked:
            assert_fixture_close(O.guided_x0(run.diffusion, x, t, c, 2.5, frame_mask=fm), to_ours(out["cfg"]), "cfg")


def test_convert_flat_text(mdm_dir, mdm_load, tmp_path):
    src = tmp_path / "official" / "humanml_text"
    shutil.copytree(mdm_dir / "humanml_text_checkpoint", src)
    out = O.convert(src / "model000000000.pt", tmp_path / "run")
    assert out.is_file() and (tmp_path / "run" / "config.yaml").is_file()
    meta = torch.load(out, weights_only=True)["meta"]
    assert meta["method"] == "mdm" and meta["official_args"]["dataset"] == "humanml"
    run = O.load_run(tmp_path / "run", device="cpu")
    assert run.diffusion.num_timesteps == 1000 and run.diffusion.sigma_small
    sched = mdm_load("diffusion.pt")["schedules"]["cosine_1000"]
    for key in ("posterior_mean_coef1", "posterior_log_variance_clipped", "log_one_minus_alphas_cumprod"):
        assert_fixture_close(getattr(run.diffusion, key), sched[key], key)
    _text_checks(run, mdm_load("text_humanml.pt"), masked=False)
    with pytest.raises(CheckpointError, match="model_avg"):
        O.load_run(tmp_path / "run", device="cpu", use_ema=True)
    with pytest.raises(CheckpointError, match="not empty"):
        O.convert(src / "model000000000.pt", tmp_path / "run")
    O.convert(src / "model000000000.pt", tmp_path / "run", force=True)
    # the generic loader dispatches converted official MDM runs
    from skeleton_diffusion.methods.registry import load_model
    assert isinstance(load_model(tmp_path / "run", device="cpu"), O.OfficialMDMRun)


def test_convert_ema_50_steps_mask_frames(mdm_dir, mdm_load, text_ckpt, tmp_path):
    fix = mdm_load("text_humanml.pt")
    state = {k: v for k, v in text_ckpt.items() if not k.endswith("sequence_pos_encoder.pe")}
    src = write_official_folder(tmp_path / "official", state, _text_args_json(mdm_dir), text_ckpt, ema_decoy=True,
                                args_overrides={"diffusion_steps": 50, "use_ema": True, "mask_frames": True})
    O.convert(src, tmp_path / "run")
    run = O.load_run(tmp_path / "run", device="cpu", use_ema=True)
    assert run.diffusion.num_timesteps == 50
    sched = mdm_load("diffusion.pt")["schedules"]["cosine_50"]
    for key in ("betas", "posterior_variance", "posterior_mean_coef2", "sqrt_recipm1_alphas_cumprod"):
        assert_fixture_close(getattr(run.diffusion, key), sched[key], key)
    assert run.diffusion.model.mask_frames
    _text_checks(run, fix, masked=True)
    decoy = O.load_run(tmp_path / "run", device="cpu")              # the online ('model') weights are the decoy
    x = to_ours(fix["inputs"]["x_t"])
    with torch.no_grad():
        assert not torch.allclose(decoy.model(x, fix["inputs"]["t"], None, fix["inputs"]["text_embed"]),
                                  to_ours(fix["outputs"]["cond"]), atol=1e-3)


def _text_args_json(mdm_dir: Path) -> str:
    return (mdm_dir / "humanml_text_checkpoint" / "args.json").read_text()


def test_convert_action_and_prefix(mdm_load, text_ckpt, tmp_path):
    fix = mdm_load("action_humanact12.pt")
    src = write_official_folder(tmp_path / "act", fix["state_dict_without_pe"], fix["config"]["args_json"], text_ckpt)
    O.convert(src, tmp_path / "act_run")
    run = O.load_run(tmp_path / "act_run", device="cpu")
    net = run.model.eval()
    assert sum(p.numel() for p in net.parameters()) == fix["config"]["num_params"]
    inp = fix["inputs"]
    with torch.no_grad():
        assert_fixture_close(net(to_ours(inp["x_t"]), inp["t"], None, inp["action"]), to_ours(fix["outputs"]["cond"]),
                             "action cond")
    assert run.guidance_param is None                                  # cond_mask_prob 0: no CFG (official assert)

    fix = mdm_load("prefix_humanml.pt")
    src = write_official_folder(tmp_path / "pre", fix["state_dict_without_pe"], fix["config"]["args_json"], text_ckpt)
    O.convert(src, tmp_path / "pre_run")
    run = O.load_run(tmp_path / "pre_run", device="cpu")
    inp = fix["inputs"]
    cond = {"text": inp["text_embed"], "past": inp["prefix"].permute(0, 3, 1, 2)}
    with torch.no_grad():
        assert_fixture_close(O.guided_x0(run.diffusion, to_ours(inp["x_t"]), inp["t"], cond, 2.5,
                                         frame_mask=frame_mask(inp["mask"])), to_ours(fix["outputs"]["cfg"]), "cfg")


def test_older_args_json_gets_defaults(mdm_dir, tmp_path):
    src = tmp_path / "old"
    shutil.copytree(mdm_dir / "humanml_text_checkpoint", src)
    args = json.loads((src / "args.json").read_text())
    for key in ("mask_frames", "pos_embed_max_len", "context_len", "pred_len", "text_encoder_type", "use_ema"):
        args.pop(key)
    (src / "args.json").write_text(json.dumps(args))
    run = O.load_run(src / "model000000000.pt", device="cpu")         # an official file loads directly too
    assert run.args["pos_embed_max_len"] == 5000 and run.args["mask_frames"] is False
    (src / "args.json").unlink()
    with pytest.raises(CheckpointError, match="args.json"):
        O.convert(src / "model000000000.pt", tmp_path / "run")


def test_cli(mdm_dir, tmp_path):
    src = tmp_path / "official"
    shutil.copytree(mdm_dir / "humanml_text_checkpoint", src)
    mod = "skeleton_diffusion.apps.convert"
    env = {"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", mod, "--method", "mdm", str(src / "model000000000.pt"),
                          str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert O.load_run(tmp_path / "out", device="cpu").args["dataset"] == "humanml"
    res = subprocess.run([sys.executable, "-m", mod, "--method", "mdm", str(src / "model000000000.pt"),
                          str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
