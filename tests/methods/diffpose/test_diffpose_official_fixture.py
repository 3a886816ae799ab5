"""DiffPose facade (methods.diffpose.official) against the official fixtures (fixtures/lifting/diffpose.pt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skeleton_diffusion.methods.diffpose import official as O
from skeleton_diffusion.methods.diffpose.graph import adjacency_from_edges, chebyshev_polynomials, normalized_laplacian


def _close(ours, ref, rel=1e-5):
    ref = torch.as_tensor(ref)
    ours = torch.as_tensor(ours).to(ref.dtype)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=rel * float(ref.abs().max()))


@pytest.fixture(scope="module")
def fx(shared_dir):
    path = shared_dir / "fixtures" / "lifting" / "diffpose.pt"
    if not path.exists():
        pytest.skip(f"fixture not available: {path}")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def nets(fx):
    c = fx["config"]
    den = O.load_diffpose_denoiser(fx["state_dict_diffusion"], c["hid_dim"], c["num_layer"], c["n_head"])
    pri = O.load_diffpose_pose_prior(fx["state_dict_pose"], c["hid_dim"], c["num_layer"], c["n_head"])
    return den, pri


def test_graph_internals(fx):
    adj = adjacency_from_edges(int(fx["config"]["n_pts"]), fx["config"]["edges"].tolist())
    _close(adj, fx["adjacency"])
    lap = normalized_laplacian(adj)
    _close(lap, fx["laplacian"])
    _close(chebyshev_polynomials(lap, fx["cheb_polynomials"].shape[0]), fx["cheb_polynomials"])


def test_schedules(fx):
    c, s = fx["config"], fx["schedule"]
    for name in ("linear", "quad", "const", "jsd", "sigmoid"):
        ours = O.diffpose_betas(name, c["beta_start"], c["beta_end"], c["num_diffusion_timesteps"])
        assert ours.dtype == np.float64
        _close(torch.from_numpy(ours), s[f"betas_{name}_float64"])
    betas = torch.from_numpy(O.diffpose_betas("linear", c["beta_start"], c["beta_end"],
                                              c["num_diffusion_timesteps"])).float()
    _close(betas, s["betas"])
    _close((1 - betas).cumprod(0), s["alphas_cumprod"])
    from skeleton_diffusion.methods.diffpose.diffusion import compute_alpha
    _close(compute_alpha(betas, s["compute_alpha_t"]).reshape(-1), s["compute_alpha"])


def test_forward_denoiser_and_prior(fx, nets):
    den, pri = nets
    f = fx["forward"]
    from skeleton_diffusion.methods.diffpose.networks import timestep_embedding
    _close(timestep_embedding(f["t"], fx["config"]["hid_dim"]), f["timestep_embedding"])
    with torch.no_grad():
        _close(den(f["x"], f["t"].float()), f["out"])
        _close(pri(f["pose_prior_in"]), f["pose_prior_out"])


def test_training_loss(fx, nets):
    den, _ = nets
    tl, betas = fx["train_loss"], fx["schedule"]["betas"]
    x_t = O.diffpose_q_sample(tl["x0"], tl["t"], tl["e_scaled"], betas)
    _close(x_t, tl["x_t"], rel=1e-4)
    with torch.no_grad():
        _close(den(tl["x_t"], tl["t"].float()), tl["pred_noise"])
        _close(O.diffpose_loss(den, tl["x0"], tl["t"], tl["e_scaled"], betas), tl["loss"])
    # the scaled noise is the white draw times the GMM noise scale (u, v: kernel variance; x, y, z: 1)
    assert torch.all(tl["noise_scale"][..., 2:] == 1)


def test_antithetic_timesteps_draw(fx):
    from skeleton_diffusion.methods.diffpose.diffusion import antithetic_timesteps
    tl = fx["train_loss"]
    n, T = tl["t"].shape[0], int(fx["config"]["num_diffusion_timesteps"])
    torch.manual_seed(int(tl["torch_seed"]))
    e = torch.randn_like(tl["x0"])
    t = antithetic_timesteps(n, T)
    assert torch.equal(t, tl["t"])
    _close(e * tl["noise_scale"], tl["e_scaled"])


@pytest.mark.parametrize("name", ["cpn_eta0", "gt_eta0", "cpn_eta1_times2"])
def test_test_procedure(fx, nets, name):
    den, pri = nets
    case, betas = fx["test"][name], fx["schedule"]["betas"]
    input_2d = case["start_uvxyz"][: case["prior_xyz"].shape[0], :, :2]
    seq = list(range(0, case["test_num_diffusion_timesteps"],
                     case["test_num_diffusion_timesteps"] // fx["config"]["test_timesteps"]))
    assert seq == case["seq"].tolist()
    xs, x0 = O.diffpose_generalized_steps(case["start_uvxyz"], seq, den, betas, case["eta"],
                                          noise=list(case["step_noise"]))
    _close(torch.stack(xs), case["xs"], rel=1e-4)
    _close(torch.stack(x0), case["x0_preds"], rel=1e-4)
    with torch.no_grad():
        prior = pri(input_2d)
    _close(prior - prior[:, :1], case["prior_xyz"])
    out = O.diffpose_lift(pri, den, input_2d, betas, case["test_num_diffusion_timesteps"],
                          fx["config"]["test_timesteps"], case["eta"], case["test_times"], list(case["step_noise"]))
    _close(out, case["output_xyz"], rel=1e-4)


def test_lift_consumes_the_official_random_draws(fx, nets):
    """Without explicit noise the lift draws the discarded start noise, then one noise per step (torch RNG)."""
    den, pri = nets
    case, betas = fx["test"]["cpn_eta1_times2"], fx["schedule"]["betas"]
    input_2d = case["start_uvxyz"][: case["prior_xyz"].shape[0], :, :2]
    torch.manual_seed(int(case["torch_seed"]))
    out = O.diffpose_lift(pri, den, input_2d, betas, case["test_num_diffusion_timesteps"],
                          fx["config"]["test_timesteps"], case["eta"], case["test_times"], None)
    _close(out, case["output_xyz"], rel=1e-4)
    torch.manual_seed(int(case["torch_seed"]))
    _close(torch.randn_like(case["start_uvxyz"]), case["unused_noise_draw"])


def test_denoiser_rejects_wrong_keys(fx):
    from skeleton_diffusion.utils.errors import CheckpointError
    c = fx["config"]
    size = (c["hid_dim"], c["num_layer"], c["n_head"])
    sd = dict(fx["state_dict_diffusion"])
    sd.pop("module.gconv_output.bias")
    with pytest.raises(CheckpointError, match="gconv_output.bias"):
        O.load_diffpose_denoiser(sd, *size)
    with pytest.raises(CheckpointError, match="GCNpose|2 normalised"):
        O.load_diffpose_pose_prior(fx["state_dict_diffusion"], *size)
