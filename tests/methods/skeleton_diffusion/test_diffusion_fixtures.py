"""Equivalence with the official diffusion outputs (denoiser_diffusion.pt), using our Denoiser and diffusion."""

from __future__ import annotations

import pytest
import torch
from conftest import official_fixture
from torch import nn

# helpers below are also imported by tests/methods/skeleton_diffusion/test_best_of_k.py


def load_diffusion_fixture():
    """``(fixture dict, NonisotropicGaussianDiffusion with the fixture weights, in eval mode)``."""
    import skeleton_diffusion.methods.skeleton_diffusion.denoiser as denoiser_mod

    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion

    fx = torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)
    cfg, w = fx["config"], fx["weights"]
    sd = {}
    for key in w["key_order"]:
        if key in w["tied_base"]:
            sd[key] = w["tied_type_scale"][key].view(-1, 1, 1) * w["tied_base"][key].float().unsqueeze(0)
        else:
            sd[key] = w["tensors"][key].float() if w["tensors"][key].is_floating_point() else w["tensors"][key]
    denoiser = denoiser_mod.Denoiser(dim=cfg["latent_size"], cond_dim=cfg["cond_dim"], out_dim=cfg["latent_size"],
                                     num_nodes=cfg["num_nodes"], node_types=cfg["node_types"].tolist(),
                                     **cfg["diffusion_arch"])
    diffusion = NonisotropicGaussianDiffusion(
        sd["Sigma_N"], sd["Lambda_N"], sd["U"], denoiser, diffusion_timesteps=cfg["diffusion_timesteps"],
        diffusion_objective=cfg["diffusion_objective"], beta_schedule=cfg["beta_schedule"],
        gamma_scheduler=cfg["gamma_scheduler"], diffusion_covariance_type=cfg["diffusion_covariance_type"],
        loss_reduction_type=cfg["loss_reduction_type"], diffusion_activation=cfg["diffusion_activation"],
        diffusion_conditioning=cfg["diffusion_conditioning"], latent_size=cfg["latent_size"])
    diffusion.load_state_dict(sd, strict=True)
    return fx, diffusion.eval()


def load_autoencoder_fixture():
    """``(case dict, frozen AutoEncoder with the fixture weights)`` for ``autoencoder.pt`` case ``amass``."""
    import skeleton_diffusion.methods.skeleton_diffusion.autoencoder as ae_mod

    case = torch.load(official_fixture("autoencoder.pt"), weights_only=True)["cases"]["amass"]
    cfg = case["config"]
    ae = ae_mod.AutoEncoder(num_nodes=cfg["num_nodes"], node_types=cfg["node_types"].tolist(),
                            latent_size=cfg["latent_size"], z_activation=cfg["z_activation"],
                            loss_pose_type=cfg["loss_pose_type"], **cfg["autoenc_arch"])
    ae.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in case["state_dict"].items()})
    ae.eval().requires_grad_(False)
    return case, ae


def assert_close_ref(ours: torch.Tensor, ref: torch.Tensor, name: str = "") -> None:
    """The fixture README's tolerance: rtol 1e-5, atol 1e-5 * max|ref|."""
    ref = ref.to(ours.dtype) if ref.is_floating_point() else ref
    atol = 1e-5 * ref.abs().max().item() if ref.numel() else 0.0
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=atol, msg=lambda m: f"{name}: {m}")


@pytest.fixture(scope="module")
def official():
    return load_diffusion_fixture()


def test_forward_quantities_match(official):
    fx, d = official
    F = fx["forward"]
    with torch.no_grad():
        assert_close_ref(d.q_sample(F["x0"], F["t"], F["noise"]), F["x_t"], "x_t")
        assert_close_ref(d.model(F["x_t"], F["t"], None, F["cond"]), F["denoiser_out"], "denoiser_out")
        pred_noise, pred_x0 = d.model_predictions(F["x_t"], F["t"], None, x_cond=F["cond"], clip_x_start=False)
        assert_close_ref(pred_x0, F["pred_x0"], "pred_x0")
        assert_close_ref(pred_noise, F["pred_noise"], "pred_noise")
        mean, var, log_var, x0c = d.p_mean_variance(F["x_t"], F["t"], None, x_cond=F["cond"], clip_denoised=True)
        assert_close_ref(mean, F["p_mean"], "p_mean")
        assert_close_ref(var, F["p_variance"], "p_variance")
        assert_close_ref(log_var, F["p_log_variance"], "p_log_variance")
        assert_close_ref(x0c, F["pred_x0_clipped"], "pred_x0_clipped")
        assert_close_ref(d.q_posterior(F["x0"], F["x_t"], F["t"])[0], F["q_posterior_mean_true_x0"], "q_posterior")
        assert_close_ref(d.loss_funct(F["pred_x0"], F["x0"], F["t"]), F["loss_elementwise"], "loss_elementwise")
        out = d.p_losses(F["x0"], F["t"], noise=F["noise"], x_cond=F["cond"])
        assert_close_ref(out.loss, F["loss_per_sample"], "loss_per_sample")
        assert_close_ref(out.weight, F["loss_weight"], "loss_weight")
        assert_close_ref(out.weighted_mean(), F["loss_weighted_mean"], "loss_weighted_mean")


def test_forward_with_global_seed_matches(official):
    fx, d = official
    F, R = fx["forward"], fx["forward_random"]
    assert R["rng_calls"][0].startswith("randint") and R["rng_calls"][1].startswith("randn")
    torch.manual_seed(R["torch_seed"])
    with torch.no_grad():
        out = d(F["x0"], x_cond=F["cond"])
    torch.manual_seed(R["torch_seed"])
    t = d.sample_timesteps(F["x0"].shape[0], F["x0"].device)
    assert torch.equal(t, R["t_drawn"])
    assert_close_ref(out.loss, R["loss_per_sample"], "loss_per_sample")
    assert_close_ref(out.weight, R["loss_weight"], "loss_weight")
    assert_close_ref(out.model_out, R["model_out"], "model_out")
    assert_close_ref(out.weighted_mean(), R["trainer_loss_k1"], "trainer_loss_k1")


def test_ten_step_sampling_with_recorded_noise_matches(official):
    fx, d = official
    S = fx["sampling"]
    out = d.sample(S["x_cond"].shape[0], S["x_cond"], start_noise=S["start_noise"], sampling_noise=S["step_noise"],
                   return_all=True, record_steps=True)
    assert_close_ref(out.x0_per_step, S["x0_pred_per_step"], "x0_pred_per_step")
    assert_close_ref(out.mean_per_step, S["mean_per_step"], "mean_per_step")
    assert_close_ref(out.x_t_per_step, S["x_t_per_step"], "x_t_per_step")
    assert_close_ref(out.samples, S["samples"], "samples")


class _Zero(nn.Module):
    self_condition = False
    channels, cond_dim, out_dim = 21, 96, 96

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        return torch.zeros_like(x)


def test_sampling_draws_noise_in_the_official_order(official):
    """With the global seed set as the fixture did, our sampler draws exactly the recorded noise."""
    fx, d = official
    S = fx["sampling"]
    probe = type(d)(d.Sigma_N, d.Lambda_N, d.U, _Zero(), diffusion_conditioning=True, latent_size=96)
    probe.load_state_dict({k: v for k, v in d.state_dict().items() if not k.startswith("model.")})
    torch.manual_seed(S["torch_seed"])
    out = probe.sample(6, S["cond"], return_all=True)   # condition repeat-interleaved 3x, as validation does
    assert torch.equal(out.start_noise, S["start_noise"])
    assert torch.equal(out.step_noise, S["step_noise"])


@pytest.mark.slow
def test_inference_latents_match(official):
    fx, d = official
    inf = fx["inference"]
    latents = d.sample(6, inf["z_past"], start_noise=inf["start_noise"], sampling_noise=inf["step_noise"])
    assert_close_ref(latents, inf["latents"], "latents")
