"""Fast best-of-k selection: equal to the naive (official) computation, and to the official fixture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.methods.skeleton_diffusion.best_of_k import (
    auto_chunk_size,
    best_of_k_loss,
    naive_best_of_k_loss,
)
from skeleton_diffusion.utils.errors import ConfigError, InputError
from test_diffusion_fixtures import assert_close_ref, load_autoencoder_fixture, load_diffusion_fixture

N, D, T_OBS, T_PRED = 21, 8, 6, 9


class TinyDenoiser(nn.Module):
    self_condition = False
    channels, cond_dim = N, D

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(2 * D, 16)
        self.mix = nn.Parameter(torch.eye(N) + 0.1 * torch.randn(N, N))
        self.t_emb = nn.Embedding(10, 16)
        self.out = nn.Linear(16, D)

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        return self.out(torch.tanh(self.mix @ self.inp(torch.cat([x_cond, x], -1)) + self.t_emb(t)[:, None]))


class TinyAE(nn.Module):
    """Decoder stand-in with the official API: decode(past, z_future, z_past, ph) -> [B, ph, N, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(D, 3 * T_PRED)
        self.calls: list[int] = []

    def decode(self, x, h, z=None, ph=1):
        self.calls.append(h.shape[0])
        out = torch.tanh(self.lin(h)).view(h.shape[0], N, T_PRED, 3).permute(0, 2, 1, 3)[:, :ph]
        return out + x[:, -1:]

    def loss(self, y_pred, y, type=None, reduction="mean"):
        loss = (y_pred - y).abs().sum(-1).mean(-1).mean(-1)
        return loss.mean() if reduction == "mean" else loss


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    S, L, U = get_cov_from_corr(torch.from_numpy(get_skeleton("amass").adjacency()))
    diffusion = NonisotropicGaussianDiffusion(S, L, U, TinyDenoiser(), latent_size=D)
    ae = TinyAE().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    B = 3
    data = dict(z_future=torch.rand(B, N, D, generator=g) * 2 - 1, z_past=torch.rand(B, N, D, generator=g),
                obs=torch.randn(B, T_OBS, N, 3, generator=g) * 0.3, fut=torch.randn(B, T_PRED, N, 3, generator=g) * 0.3)
    return diffusion, ae, data


def _grads(diffusion):
    return {n: p.grad.clone() for n, p in diffusion.named_parameters()}


@pytest.mark.parametrize("space", ["input_space", "latent_space", "metric_space"])
@pytest.mark.parametrize("chunk", [1, 7, "auto"])
def test_fast_equals_naive(setup, space, chunk):
    diffusion, ae, data = setup
    k = 6
    args = (diffusion, ae, data["z_future"], data["z_past"], data["obs"], data["fut"], k, space)
    diffusion.zero_grad()
    ours = best_of_k_loss(*args, pose_box_size=1.2, chunk_size=chunk, generator=torch.Generator().manual_seed(4))
    ours.loss.backward()
    g_ours = _grads(diffusion)
    diffusion.zero_grad()
    ref = naive_best_of_k_loss(*args, pose_box_size=1.2, generator=torch.Generator().manual_seed(4))
    ref.loss.backward()
    g_ref = _grads(diffusion)
    assert torch.equal(ours.t, ref.t) and torch.equal(ours.noise, ref.noise)
    assert torch.equal(ours.selected_idx, ref.selected_idx)
    torch.testing.assert_close(ours.similarity, ref.similarity, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.candidate_loss, ref.candidate_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.loss, ref.loss, rtol=1e-5, atol=1e-7)
    for name in g_ref:
        torch.testing.assert_close(g_ours[name], g_ref[name], rtol=1e-4, atol=1e-7, msg=name)
    # the selection really picks the minimum and the loss is the weighted selected diffusion loss
    assert torch.equal(ours.selected_idx, ours.similarity.argmin(1))
    torch.testing.assert_close(ours.selected_loss.detach(),
                               ours.candidate_loss.gather(1, ours.selected_idx[:, None])[:, 0])
    torch.testing.assert_close(ours.loss, (ours.selected_loss * diffusion.alphas_cumprod[ours.t]).mean())


def test_chunking_bounds_decoder_batch(setup):
    diffusion, ae, data = setup
    ae.calls.clear()
    best_of_k_loss(diffusion, ae, data["z_future"], data["z_past"], data["obs"], data["fut"], 5, chunk_size=4,
                   generator=torch.Generator().manual_seed(0))
    assert ae.calls == [4, 4, 4, 3]  # 15 candidates; nothing decoded with gradients
    assert auto_chunk_size(torch.device("cpu"), 50) == 1024 and auto_chunk_size(torch.device("cpu"), 2000) == 2000


def test_only_winner_gets_gradient_and_decoder_has_no_graph(setup):
    diffusion, ae, data = setup
    out = best_of_k_loss(diffusion, ae, data["z_future"], data["z_past"], data["obs"], data["fut"], 4,
                         generator=torch.Generator().manual_seed(2))
    assert out.loss.requires_grad and not out.similarity.requires_grad and not out.candidate_loss.requires_grad
    # recomputing with a loss on the selected rows only gives the same gradient as the naive gather
    rows = torch.arange(3) * 4 + out.selected_idx
    manual = diffusion.p_losses(data["z_future"], out.t, noise=out.noise[rows], x_cond=data["z_past"])
    torch.testing.assert_close(out.loss, manual.weighted_mean(), rtol=1e-6, atol=0)


def test_k1_is_plain_weighted_loss(setup):
    diffusion, ae, data = setup
    g = torch.Generator().manual_seed(3)
    out = best_of_k_loss(diffusion, ae, data["z_future"], data["z_past"], None, None, 1, generator=g)
    g = torch.Generator().manual_seed(3)
    ref = diffusion(data["z_future"], x_cond=data["z_past"], generator=g)
    assert torch.equal(out.loss, ref.weighted_mean())
    naive = naive_best_of_k_loss(diffusion, ae, data["z_future"], data["z_past"], None, None, 1,
                                 t=out.t, noise=out.noise)
    assert torch.equal(naive.loss, out.loss)


def test_global_rng_order_matches_official(setup):
    diffusion, ae, data = setup
    torch.manual_seed(5)
    out = best_of_k_loss(diffusion, ae, data["z_future"], data["z_past"], data["obs"], data["fut"], 4)
    torch.manual_seed(5)
    t = torch.randint(0, 10, (3,))
    noise = torch.randn(12, N, D)
    assert torch.equal(out.t, t) and torch.equal(out.noise, noise)


def test_bad_inputs(setup):
    diffusion, ae, data = setup
    z, zp, obs, fut = data["z_future"], data["z_past"], data["obs"], data["fut"]
    with pytest.raises(ConfigError, match="similarity_space"):
        best_of_k_loss(diffusion, ae, z, zp, obs, fut, 3, "pose_space")
    with pytest.raises(ConfigError, match="pose_box_size"):
        best_of_k_loss(diffusion, ae, z, zp, obs, fut, 3, "metric_space")
    with pytest.raises(InputError, match="obs and fut"):
        best_of_k_loss(diffusion, ae, z, zp, None, None, 3)
    with pytest.raises(ConfigError, match="positive int"):
        best_of_k_loss(diffusion, ae, z, zp, obs, fut, 0)
    with pytest.raises(InputError, match="noise"):
        best_of_k_loss(diffusion, ae, z, zp, obs, fut, 3, noise=torch.zeros(3, N, D))


# ------------------------------------------------------------------------------------------ official fixture
@pytest.fixture(scope="module")
def official():
    from conftest import official_fixture

    fx = torch.load(official_fixture("best_of_k.pt"), weights_only=True)
    _, diffusion = load_diffusion_fixture()
    _, ae = load_autoencoder_fixture()
    return fx, diffusion, ae


def _run(official, space, fn=best_of_k_loss, **kw):
    fx, diffusion, ae = official
    torch.manual_seed(fx["torch_seed"])
    return fn(diffusion, ae, fx["z_future"], fx["z_past"], fx["obs"], fx["future"],
              fx["config"]["train_pick_best_sample_among_k"], space, pose_box_size=1.2,
              prediction_horizon=fx["config"]["prediction_horizon_eval"], **kw)


def test_official_best_of_k_selection(official):
    fx = official[0]
    with torch.no_grad():
        out = _run(official, "input_space", chunk_size=3)
    assert torch.equal(out.t, fx["t"]) and torch.equal(out.noise, fx["noise"])
    assert torch.equal(out.selected_idx, fx["selected_idx"])
    assert_close_ref(out.similarity, fx["similarity"], "similarity")
    assert_close_ref(out.candidate_loss.flatten(), fx["candidate_diffusion_loss"], "candidate_diffusion_loss")
    assert_close_ref(out.loss_weight, fx["loss_weight"], "loss_weight")
    assert_close_ref(out.selected_loss, fx["selected_loss"], "selected_loss")
    assert_close_ref(out.loss, fx["loss"], "loss")
    assert out.loss.item() == pytest.approx(fx["train_step"]["loss"], rel=1e-5)


@pytest.mark.slow
def test_official_best_of_k_train_step(official):
    """Gradients (only the winners contribute) and one official optimiser step."""
    fx, diffusion, _ = official
    diffusion.train()
    diffusion.zero_grad()
    out = _run(official, "input_space")
    assert torch.equal(out.selected_idx, fx["selected_idx"])
    out.loss.backward()
    params = dict(diffusion.named_parameters())
    for name, ref in fx["train_step"]["grads_small"].items():
        assert_close_ref(params[name].grad, ref, f"grad {name}")
    opt_cfg = fx["config"]["optimizer"]   # clip 1.0, Adam(lr 1e-3, betas (0.9, 0.99))
    saved = {n: p.detach().clone() for n, p in params.items()}
    norm = torch.nn.utils.clip_grad_norm_(diffusion.parameters(), opt_cfg["max_grad_norm"])
    assert norm.item() == pytest.approx(fx["train_step"]["grad_norm_before_clip"], rel=1e-5)
    opt = torch.optim.Adam(diffusion.parameters(), lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]),
                           weight_decay=opt_cfg["weight_decay"])
    opt.step()
    try:
        grads = fx["train_step"]["grads_small"]
        compared = total = 0
        for name, ref in fx["train_step"]["params_after_step_small"].items():
            # Adam's first step is lr * g / (|g| + eps): where |g| is within ~100 eps it amplifies the float32
            # rounding of g, so such elements are left out (the gradients themselves were compared above)
            ok = grads[name].abs() > 1e-6
            compared, total = compared + int(ok.sum()), total + ok.numel()
            torch.testing.assert_close(params[name].detach()[ok], ref[ok], rtol=1e-5, atol=1e-3 * opt_cfg["lr"],
                                       msg=lambda m, name=name: f"param {name}: {m}")
        assert compared > 0.9 * total
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])
        diffusion.zero_grad()
        diffusion.eval()


@pytest.mark.parametrize("space", ["latent_space", "metric_space"])
def test_official_variants(official, space):
    ref = official[0]["variants"][space]
    with torch.no_grad():
        out = _run(official, space)
    assert torch.equal(out.selected_idx, ref["selected_idx"])
    assert_close_ref(out.selected_loss, ref["selected_loss"], "selected_loss")
    assert_close_ref(out.loss, ref["loss"], "loss")


@pytest.mark.slow
def test_official_naive_matches_fixture(official):
    fx = official[0]
    with torch.no_grad():
        out = _run(official, "input_space", fn=naive_best_of_k_loss)
    assert torch.equal(out.selected_idx, fx["selected_idx"])
    assert_close_ref(out.loss, fx["loss"], "loss")
