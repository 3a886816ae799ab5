"""End-to-end inference equals the official implementation on the same weights (denoiser_diffusion.pt).

Our :class:`SkeletonDiffusion` is built the way every user-facing path builds it: our Hydra configs composed
with the AMASS paper recipe (``task.pose_box_size=1.2 model.autoenc_arch.enc_num_layers=2``, ``model=
skeleton_diffusion``) and :mod:`skeleton_diffusion.methods.skeleton_diffusion.factories`; the weights are the fixture's official state
dicts. The official path is ``get_diffusion_latent_codes`` + ``decode_latent_pred`` with recorded noise.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from conftest import official_fixture

AMASS_AE_RECIPE = ["dataset=amass", "task.pose_box_size=1.2", "model.autoenc_arch.enc_num_layers=2"]
AMASS_DIFF_RECIPE = ["model=skeleton_diffusion", "cov_matrix=adjacency"]


def assert_close_ref(ours: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    """Fixture README tolerance: rtol 1e-5, atol 1e-5 * max|ref|."""
    ref = ref.to(ours.dtype)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item(),
                               msg=lambda m: f"{name}: {m}")


def recipe_configs():
    """(AE run config, diffusion run config) of the AMASS recipe, composed from our configs/ folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from skeleton_diffusion.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        ae_cfg = compose("train_autoencoder", overrides=AMASS_AE_RECIPE + ["output_log_path=unused"])
        diff_cfg = compose("train_diffusion", overrides=AMASS_DIFF_RECIPE + ["output_log_path=unused"])
    return ae_cfg, diff_cfg


def fixture_state_dicts():
    case = torch.load(official_fixture("autoencoder.pt"), weights_only=True)["cases"]["amass"]
    ae_sd = OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in case["state_dict"].items())
    w = torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)["weights"]
    sd = OrderedDict()
    for k in w["key_order"]:
        if k in w["tied_base"]:
            sd[k] = w["tied_type_scale"][k].view(-1, 1, 1) * w["tied_base"][k].float().unsqueeze(0)
        else:
            t = w["tensors"][k]
            sd[k] = t.float() if t.is_floating_point() else t
    return ae_sd, sd


def build_fixture_model():
    """Our SkeletonDiffusion (AMASS recipe configs + factories) with the fixture's official weights, eval mode."""
    from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder, build_diffusion
    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import SkeletonDiffusion
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    ae_cfg, diff_cfg = recipe_configs()
    skeleton = get_skeleton(ae_cfg.dataset.skeleton_name)
    ae_sd, sd = fixture_state_dicts()
    ae = build_autoencoder(ae_cfg.model, skeleton)
    ae.load_state_dict(ae_sd, strict=True)
    diffusion = build_diffusion(diff_cfg.model, diff_cfg.cov_matrix, skeleton, latent_size=int(ae_cfg.model.latent_size))
    diffusion.load_state_dict(sd, strict=True)
    model = SkeletonDiffusion(ae, diffusion, pose_box_size=float(ae_cfg.task.pose_box_size),
                              obs_length=int(ae_cfg.model.obs_length), pred_length=int(ae_cfg.model.pred_length))
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def model():
    official_fixture("denoiser_diffusion.pt")
    return build_fixture_model()


@pytest.fixture(scope="module")
def inf():
    return torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)["inference"]


def test_recipe_config_matches_fixture_hyperparameters(model, inf):
    fx = torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)["config"]
    ae_cfg, diff_cfg = recipe_configs()
    assert model.pose_box_size == 1.2
    assert (model.obs_length, model.pred_length) == (inf["obs"].shape[1], inf["pred_length"])
    assert int(ae_cfg.model.latent_size) == fx["latent_size"]
    for key, value in fx["diffusion_arch"].items():
        assert diff_cfg.model.diffusion_arch[key] == value, key
    for key in ("diffusion_timesteps", "diffusion_objective", "beta_schedule", "gamma_scheduler",
                "diffusion_covariance_type", "sigma_n_scale", "loss_reduction_type", "diffusion_activation"):
        assert diff_cfg.model[key] == fx[key], key
    assert sum(p.numel() for p in model.diffusion.model.parameters()) == fx["denoiser_num_params"]


def test_end_to_end_inference_matches_official(model, inf):
    S = inf["num_samples"]
    with torch.no_grad():
        latents, z_past = model.sample_latents(inf["obs"], S, start_noise=inf["start_noise"],
                                               sampling_noise=inf["step_noise"])
        pred = model.decode_latents(inf["obs"], latents, S, pred_length=inf["pred_length"])
    assert latents.shape == inf["latents"].shape and pred.shape == inf["pred"].shape
    assert_close_ref(z_past, inf["z_past"], "z_past")
    assert_close_ref(latents, inf["latents"], "latents")
    assert_close_ref(pred, inf["pred"], "pred")
    assert_close_ref(model.to_metric(pred), inf["pred_metric"], "pred_metric")


@pytest.mark.slow
def test_sample_order_is_observation_major(model, inf):
    """``predict`` in one call; sample ``b*S + s`` belongs to observation ``b`` (repeat_interleave): swapping
    the observations swaps the prediction blocks when the noise blocks are swapped too."""
    S = inf["num_samples"]
    perm_obs = inf["obs"].flip(0)
    blocks = torch.arange(2 * S).view(2, S).flip(0).reshape(-1)
    with torch.no_grad():
        pred = model.predict(perm_obs, S, start_noise=inf["start_noise"][blocks],
                             sampling_noise=inf["step_noise"][blocks])
    assert_close_ref(pred, inf["pred"].flip(0), "pred (swapped)")


@pytest.mark.slow
def test_noise_matters_and_a_seeded_generator_is_reproducible(model, inf):
    obs = inf["obs"][:1]
    with torch.no_grad():
        a = model.predict(obs, 2, generator=torch.Generator().manual_seed(3))
        b = model.predict(obs, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (1, 2, inf["pred_length"], 21, 3)
    assert (a[0, 0] - a[0, 1]).abs().max() > 1e-3  # two different samples from two noise draws
