"""Official MDM diffusion: schedules, respacing, buffers, q_sample / posterior / p_mean_variance / p_sample /
DDIM step, training losses and the six sampling loops against ``../shared/fixtures/mdm/diffusion.pt``."""

from __future__ import annotations

import json

import pytest
import torch

from _mdm_helpers import assert_fixture_close, frame_mask, mdm_dir, mdm_load, to_ours  # noqa: F401  (mdm_dir, mdm_load: fixtures)
from skeleton_diffusion.methods.mdm import official as O

BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next", "sqrt_alphas_cumprod",
           "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
           "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
           "posterior_mean_coef1", "posterior_mean_coef2")


@pytest.fixture(scope="module")
def diff(mdm_load):
    return mdm_load("diffusion.pt")


@pytest.fixture(scope="module")
def text_run(mdm_dir):
    return O.load_run(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt", device="cpu")


def _run_with_steps(mdm_dir, steps: int):
    args = json.loads((mdm_dir / "humanml_text_checkpoint" / "args.json").read_text())
    run = O.load_run(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt", device="cpu")
    args["diffusion_steps"] = steps
    from skeleton_diffusion.methods.mdm.convert import build_diffusion
    return build_diffusion(run.model, args)


def test_schedules(diff):
    for name in ("cosine_1000", "cosine_50"):
        ref = diff["schedules"][name]
        T = ref["betas"].numel()
        assert_fixture_close(O.cosine_beta_schedule(T), ref["betas"], name)
        d = O.OfficialMDMDiffusion(_Dummy(), diffusion_steps=T)
        for key in BUFFERS:
            assert_fixture_close(getattr(d, key), ref[key], f"{name}.{key}")
        assert d.num_timesteps == T
    for T in (1000, 50):
        assert_fixture_close(O.linear_beta_schedule(T, official=True), diff["schedules"][f"linear_{T}_betas"],
                             f"linear_{T}")


class _Dummy(torch.nn.Module):
    channels = 263
    out_dim = 10

    def forward(self, x, t, s=None, c=None, **kw):  # pragma: no cover - never called
        return x


def test_space_timesteps(diff):
    for case in diff["space_timesteps"]:
        counts = json.loads(case["section_counts"])
        kept = sorted(O.space_timesteps(int(case["num_timesteps"]), counts))
        assert kept == case["kept"].tolist(), case["section_counts"]
        # the JSON text form is accepted too
        assert sorted(O.space_timesteps(int(case["num_timesteps"]), case["section_counts"])) == kept
    # the documented official defect [1] -> step 0, and its correction
    assert O.space_timesteps(1000, [1]) == [0]
    assert O.space_timesteps(1000, [1], official=False) == [999]


def test_respaced_buffers(diff):
    base = diff["schedules"]["cosine_1000"]
    forms = {"1000_ddim50": "ddim50", "1000_50": [50], "1000_10": [10]}
    for name, form in forms.items():
        ref = diff["respaced"][name]
        kept = O.space_timesteps(1000, form)
        assert kept == ref["timestep_map"].tolist()
        assert_fixture_close(O.respaced_betas(base["alphas_cumprod"], kept), ref["betas"], name)
        d = O.OfficialMDMDiffusion(_Dummy(), diffusion_steps=1000, timestep_respacing=form)
        assert d.timestep_map.tolist() == ref["timestep_map"].tolist()
        for key in BUFFERS:
            assert_fixture_close(getattr(d, key), ref[key], f"{name}.{key}")


def test_core_single_steps(diff, text_run):
    core = diff["core"]
    inp, out = core["inputs"], core["outputs"]
    d = text_run.diffusion
    x0, noise, x_t, t = to_ours(inp["x_start"]), to_ours(inp["noise"]), to_ours(inp["x_t"]), inp["t"]
    s = float(inp["guidance_param"])
    cond = inp["text_embed"]
    fm = frame_mask(inp["mask"])
    assert_fixture_close(d.q_sample(x0, t, noise), to_ours(out["q_sample"]), "q_sample")
    mean, var, logvar = d.q_posterior(x0, x_t, t)
    ref = out["q_posterior"]
    assert_fixture_close(mean, to_ours(ref["mean"]), "posterior mean")
    assert_fixture_close(torch.broadcast_to(var, mean.shape), to_ours(ref["variance"]), "posterior variance")
    assert_fixture_close(torch.broadcast_to(logvar, mean.shape), to_ours(ref["log_variance"]), "posterior logvar")
    with torch.no_grad():
        for key, clip in (("p_mean_variance", False), ("p_mean_variance_clipped", True)):
            res = O.p_mean_variance(d, x_t, t, cond, guidance_param=s, clip_denoised=clip, frame_mask=fm)
            for k in ("mean", "variance", "log_variance", "pred_xstart"):
                assert_fixture_close(torch.broadcast_to(res[k], x_t.shape), to_ours(out[key][k]), f"{key}.{k}")
        res = O.p_sample(d, x_t, t, cond, guidance_param=s, clip_denoised=False, frame_mask=fm,
                         noise=to_ours(inp["p_sample_noise"]))
        for k in ("sample", "pred_xstart"):
            assert_fixture_close(res[k], to_ours(out["p_sample"][k]), f"p_sample.{k}")
        res = O.ddim_sample(d, x_t, t, cond, guidance_param=s, clip_denoised=False, frame_mask=fm, eta=0.0)
        for k in ("sample", "pred_xstart"):
            assert_fixture_close(res[k], to_ours(out["ddim_sample"][k]), f"ddim_sample.{k}")


def test_training_losses(diff, text_run):
    tl = diff["training_losses"]
    inp = tl["inputs"]
    d = text_run.diffusion
    text_run.model.eval()
    kw = dict(x_cond=inp["text_embed"], t=inp["t"], noise=to_ours(inp["noise"]), frame_mask=frame_mask(inp["mask"]))
    with torch.no_grad():
        plain = O.official_training_losses(d, to_ours(inp["x_start"]), inp["t"], x_cond=inp["text_embed"],
                                           noise=to_ours(inp["noise"]), frame_mask=frame_mask(inp["mask"]))
        assert_fixture_close(plain["rot_mse"], tl["outputs"]["plain"]["rot_mse"], "rot_mse")
        assert_fixture_close(plain["loss"], tl["outputs"]["plain"]["loss"], "loss")
        ref = tl["outputs"]["lambda_vel_1"]
        vel = O.official_training_losses(d, to_ours(inp["x_start"]), inp["t"], lambda_vel=1.0, x_cond=kw["x_cond"],
                                         noise=kw["noise"], frame_mask=kw["frame_mask"])
        for k in ("rot_mse", "vel_mse", "loss"):
            assert_fixture_close(vel[k], ref[k], f"lambda_vel_1.{k}")
        means = O.mdm_loss(d, to_ours(inp["x_start"]), lambda_vel=1.0, **kw)
        assert_fixture_close(means["simple"], ref["rot_mse"].mean(), "mdm_loss simple")
        assert_fixture_close(means["vel"], ref["vel_mse"].mean(), "mdm_loss vel")
        assert_fixture_close(means["loss"], ref["loss"].mean(), "mdm_loss loss")
        # the corrected velocity term keeps every row: it differs from the official one
        fixed = O.official_training_losses(d, to_ours(inp["x_start"]), inp["t"], lambda_vel=1.0,
                                           vel_drop_last_row=False, x_cond=kw["x_cond"], noise=kw["noise"],
                                           frame_mask=kw["frame_mask"])
        assert not torch.allclose(fixed["vel_mse"], ref["vel_mse"], rtol=1e-6, atol=0)


LOOPS = {
    "p_sample_loop_50": (50, None),
    "p_sample_loop_respaced_1000_to_50": (1000, [50]),
    "ddim_1000_ddim50": (1000, "ddim50"),
    "ddim_1000_10": (1000, [10]),
    "edit_in_between_50_uncond": (50, None),
    "edit_upper_body_50_text": (50, None),
}


SAMPLE_MOTION_TOO = ("ddim_1000_10", "edit_upper_body_50_text")


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "ddim_1000_10" else pytest.mark.slow)
                                  for n in sorted(LOOPS)])
def test_sampling_loops(diff, mdm_dir, name):
    loop, li = diff["loops"][name], diff["loop_inputs"]
    T, steps = LOOPS[name]
    d = _run_with_steps(mdm_dir, T)
    d.model.eval()
    known = known_mask = None
    if name.startswith("edit"):
        known = to_ours(li["inpainted_motion"])
        known_mask = to_ours(li["in_between_mask" if "in_between" in name else "upper_body_mask"])
    eta = 0.0 if loop["kind"] == "ddim" else 1.0
    noise = None if "step_noise" not in loop else [to_ours(n) for n in loop["step_noise"]]
    kw = dict(eta=eta, guidance_param=float(loop["guidance_param"]), clip_denoised=False,
              start_noise=to_ours(loop["x_T"]), sampling_noise=noise, known=known, known_mask=known_mask,
              frame_mask=frame_mask(li["mask"]))
    # every step (progressive loop): first x0 prediction, the recorded intermediate samples, the final sample
    view = O.OfficialMDMDiffusion(d.model, betas=d.betas, timestep_respacing=steps) if steps is not None else d
    assert view.timestep_map.tolist() == loop["timestep_map"].tolist()
    assert view.num_timesteps == int(loop["num_steps"])
    every = int(loop["samples_every"])
    got, last = [], None
    for k, out in enumerate(O.sample_loop_progressive(view, tuple(kw["start_noise"].shape), li["text_embed"], **kw)):
        if k == 0:
            assert_fixture_close(out["pred_xstart"], to_ours(loop["pred_xstart_first"]), f"{name} first x0")
        if (k + 1) % every == 0:
            got.append(out["sample"])
        last = out["sample"]
    assert len(got) == loop["samples"].shape[0]
    for i, (g, r) in enumerate(zip(got, loop["samples"])):
        assert_fixture_close(g, to_ours(r), f"{name} samples[{i}]")
    assert_fixture_close(last, to_ours(loop["final"]), f"{name} final")
    if name in SAMPLE_MOTION_TOO:  # the INTERFACE entry point (respacing by section counts)
        final = O.sample_motion(d, loop["x_T"].shape[0], x_cond=li["text_embed"], steps=steps, **kw)
        assert_fixture_close(final, to_ours(loop["final"]), f"{name} final (sample_motion)")
