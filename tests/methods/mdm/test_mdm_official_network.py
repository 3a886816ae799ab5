"""Official MDM network forward (text, action, prefix completion; cond / uncond / CFG; mask_frames), parameter
counts and the action model's training losses against ``../shared/fixtures/mdm``."""

from __future__ import annotations

import json

import pytest
import torch

from _mdm_helpers import assert_fixture_close, frame_mask, mdm_dir, mdm_load, to_ours  # noqa: F401  (mdm_dir, mdm_load: fixtures)
from skeleton_diffusion.methods.mdm import official as O
from skeleton_diffusion.methods.mdm.args import complete_args
from skeleton_diffusion.methods.mdm.convert import build_diffusion, build_network, read_official
from skeleton_diffusion.utils.errors import CheckpointError, InputError


@pytest.fixture(scope="module")
def text_net(mdm_dir):
    args, weights, _ = read_official(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt")
    return build_network(args, weights).eval()


def _net_from(fix: dict):
    args = complete_args(json.loads(fix["config"]["args_json"]))
    return args, build_network(args, fix["state_dict_without_pe"]).eval()


def test_text_forward(mdm_load, text_net):
    fix = mdm_load("text_humanml.pt")
    inp, out = fix["inputs"], fix["outputs"]
    assert sum(p.numel() for p in text_net.parameters()) == fix["config"]["num_params"]
    x, t, c, fm = to_ours(inp["x_t"]), inp["t"], inp["text_embed"], frame_mask(inp["mask"])
    s = float(fix["config"]["guidance_param"])
    d = build_diffusion(text_net, {"dataset": "humanml"})
    with torch.no_grad():
        assert_fixture_close(text_net(x, t, None, c, frame_mask=fm), to_ours(out["cond"]), "cond")
        assert_fixture_close(text_net(x, t, None, c, force_uncond=True, frame_mask=fm), to_ours(out["uncond"]),
                             "uncond")
        assert_fixture_close(O.guided_x0(d, x, t, c, s, frame_mask=fm), to_ours(out["cfg"]), "cfg")
        # no text at all (editing without a prompt): the unconditional output
        assert_fixture_close(O.guided_x0(d, x, t, None, 0.0, frame_mask=fm), to_ours(out["uncond"]), "no text")
        text_net.mask_frames = True
        try:
            assert_fixture_close(text_net(x, t, None, c, frame_mask=fm), to_ours(out["cond_mask_frames"]),
                                 "cond mask_frames")
            assert_fixture_close(text_net(x, t, None, c, force_uncond=True, frame_mask=fm),
                                 to_ours(out["uncond_mask_frames"]), "uncond mask_frames")
        finally:
            text_net.mask_frames = False


def test_action_forward_and_losses(mdm_load):
    fix = mdm_load("action_humanact12.pt")
    args, net = _net_from(fix)
    assert sum(p.numel() for p in net.parameters()) == fix["config"]["num_params"]
    inp, out = fix["inputs"], fix["outputs"]
    x, t = to_ours(inp["x_t"]), inp["t"]
    with torch.no_grad():
        for action in (inp["action"], inp["action"][:, 0]):          # official [B, 1] and our [B] layout
            assert_fixture_close(net(x, t, None, action), to_ours(out["cond"]), "action cond")
        assert_fixture_close(net(x, t, None, inp["action"], force_uncond=True), to_ours(out["uncond"]),
                             "action uncond")
        d = build_diffusion(net, dict(args, lambda_rcxyz=0.0, lambda_fc=0.0))
        assert d.lambda_vel == fix["config"]["loss_lambdas_used"]["lambda_vel"]
        losses = O.official_training_losses(d, to_ours(inp["x_start"]), t, x_cond=inp["action"],
                                            noise=to_ours(inp["noise"]), frame_mask=frame_mask(inp["mask"]))
        for k in ("rot_mse", "vel_mse", "loss"):
            assert_fixture_close(losses[k], out["losses_vel"][k], k)
        # the geometric terms need SMPL: without a to_xyz the configured λ raise a clear error
        with pytest.raises(InputError, match="to_xyz"):
            O.official_training_losses(build_diffusion(net, args), to_ours(inp["x_start"]), t, x_cond=inp["action"])


def test_prefix_forward(mdm_load):
    fix = mdm_load("prefix_humanml.pt")
    args, net = _net_from(fix)
    assert (net.context_len, net.pred_len) == (fix["config"]["context_len"], fix["config"]["pred_len"])
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for v in fix["state_dict_without_pe"].values())
    inp, out = fix["inputs"], fix["outputs"]
    x, t = to_ours(inp["x_t"]), inp["t"]
    cond = {"text": inp["text_embed"], "past": inp["prefix"].permute(0, 3, 1, 2)}     # [B, C_ctx, J, C]
    fm = frame_mask(inp["mask"])
    d = build_diffusion(net, args)
    with torch.no_grad():
        assert_fixture_close(net(x, t, None, cond, frame_mask=fm), to_ours(out["cond"]), "prefix cond")
        assert_fixture_close(net(x, t, None, cond, force_uncond=True, frame_mask=fm), to_ours(out["uncond"]),
                             "prefix uncond (past kept)")
        assert_fixture_close(O.guided_x0(d, x, t, cond, float(fix["config"]["guidance_param"]), frame_mask=fm),
                             to_ours(out["cfg"]), "prefix cfg")
        with pytest.raises(InputError, match="past"):
            net(x, t, None, inp["text_embed"])


def test_official_key_order(mdm_dir, text_net):
    official = torch.load(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt", weights_only=True)
    assert list(text_net.state_dict()) == list(official)
    for k in ("sequence_pos_encoder.pe", "embed_timestep.sequence_pos_encoder.pe"):
        torch.testing.assert_close(text_net.state_dict()[k], official[k], rtol=0, atol=0)


def test_bad_weights_name_the_file(mdm_dir, tmp_path):
    args, weights, _ = read_official(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt")
    weights = dict(weights)
    weights.pop("embed_text.weight")
    with pytest.raises(CheckpointError, match="embed_text.weight"):
        build_network(args, weights, tmp_path / "model.pt")
