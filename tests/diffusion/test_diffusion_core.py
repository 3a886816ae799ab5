"""Nonisotropic diffusion math on small models: identities, statistics, DDPM limit, samplers, API errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skeleton_diffusion.diffusion.isotropic import IsotropicGaussianDiffusion
from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
from skeleton_diffusion.diffusion.samplers import ddim_timesteps
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError, InputError

N, D = 21, 8


class Tiny(nn.Module):
    """Small time-aware network; optional condition."""

    self_condition = False

    def __init__(self, channels: int = N, dim: int = D, cond_dim: int = 0) -> None:
        super().__init__()
        self.channels, self.cond_dim = channels, cond_dim
        self.lin = nn.Linear(dim + cond_dim, dim)
        self.mix = nn.Parameter(torch.eye(channels) + 0.05 * torch.randn(channels, channels))
        self.t_emb = nn.Embedding(16, dim)
        self.seen_cond = None
        self.seen_x = []

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        self.seen_cond = x_cond
        self.seen_x.append(x)
        h = torch.cat([x_cond, x], -1) if self.cond_dim else x
        return torch.tanh(self.mix @ self.lin(h) + self.t_emb(t)[:, None])


class Oracle(nn.Module):
    """Returns the exact target for a fixed clean signal ``x0`` (pred_x0) or the matching noise (pred_noise)."""

    self_condition = False
    cond_dim = 0

    def __init__(self, x0: torch.Tensor, objective: str) -> None:
        super().__init__()
        self.channels = x0.shape[1]
        self.x0, self.objective, self.diffusion = x0, objective, None

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        x0 = self.x0.expand_as(x)
        if self.objective == "pred_x0":
            return x0
        return self.diffusion.predict_noise_from_start(x, t, x0)


@pytest.fixture(scope="module")
def amass_cov():
    return get_cov_from_corr(torch.from_numpy(get_skeleton("amass").adjacency()))


def make(amass_cov, model=None, **kw) -> NonisotropicGaussianDiffusion:
    torch.manual_seed(0)
    return NonisotropicGaussianDiffusion(*amass_cov, model if model is not None else Tiny(), latent_size=D, **kw)


def _full(d: NonisotropicGaussianDiffusion, diag: torch.Tensor) -> torch.Tensor:
    U = d.U.double()
    return U @ torch.diag_embed(diag.double()) @ U.T


# ---------------------------------------------------------------------------------------------- identities
def test_q_sample_noise_round_trip(amass_cov):
    d = make(amass_cov)
    x0, eps = torch.rand(6, N, D) * 2 - 1, torch.randn(6, N, D)
    t = torch.arange(6) + 2
    x_t = d.q_sample(x0, t, eps)
    torch.testing.assert_close(d.predict_noise_from_start(x_t, t, x0), eps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(d.predict_start_from_noise(x_t, t, eps), x0, rtol=1e-4, atol=2e-4)


def test_q_sample_formula_and_whitening(amass_cov):
    d = make(amass_cov)
    x0, eps, t = torch.randn(4, N, D), torch.randn(4, N, D), torch.tensor([0, 3, 7, 9])
    ref = []
    for i in range(4):
        Lb = d.Lambda_bar_t[t[i]].double()
        ref.append(d.sqrt_alphas_cumprod[t[i]].double() * x0[i].double()
                   + d.U.double() @ (Lb.sqrt()[:, None] * eps[i].double()))
    torch.testing.assert_close(d.q_sample(x0, t, eps).double(), torch.stack(ref), rtol=1e-5, atol=1e-5)
    r = torch.randn(4, N, D)
    white = torch.stack([(d.Lambda_bar_t[t[i]].double().rsqrt()[:, None]) * (d.U.double().T @ r[i].double())
                         for i in range(4)])
    loss = d.loss_funct(r, torch.zeros_like(r), t)
    torch.testing.assert_close(loss.double(), white.abs(), rtol=1e-5, atol=1e-5)
    d_mse = make(amass_cov, loss_reduction_type="mse")
    torch.testing.assert_close(d_mse.loss_funct(r, torch.zeros_like(r), t).double(), white ** 2, rtol=1e-4, atol=1e-5)


def test_posterior_matches_gaussian_closed_form(amass_cov):
    """q(x_{t-1}|x_t,x_0) from the joint Gaussian with full matrices (float64) equals the class buffers."""
    d = make(amass_cov)
    alphas = 1 - d.betas.double()
    for t in range(1, d.num_timesteps):
        S_prev = _full(d, d.Lambda_bar_t[t - 1])           # Σ̄_{t-1}
        S_step = _full(d, d.Lambda_t[t])                   # Σ_t = β_t[(1-γ_t) I + γ_t Σ_N]
        P = torch.linalg.inv(S_prev) + alphas[t] * torch.linalg.inv(S_step)
        cov = torch.linalg.inv(P)
        coef_x0 = cov @ torch.linalg.inv(S_prev) * d.alphas_cumprod_prev[t].double().sqrt()
        coef_xt = cov @ torch.linalg.inv(S_step) * alphas[t].sqrt()
        torch.testing.assert_close(d.posterior_mean_coef1_x0[t].double(), coef_x0, rtol=0, atol=2e-5)
        torch.testing.assert_close(d.posterior_mean_coef2_xt[t].double(), coef_xt, rtol=0, atol=2e-5)
        torch.testing.assert_close(_full(d, d.Lambda_posterior[t]), cov, rtol=0, atol=2e-6)
    # the per-step covariance really is β_t[(1-γ_t) I + γ_t Σ_N] with γ_t = β_t
    t = 4
    beta = d.betas[t].double()
    torch.testing.assert_close(_full(d, d.Lambda_t[t]),
                               beta * ((1 - beta) * torch.eye(N, dtype=torch.float64) + beta * d.Sigma_N.double()),
                               rtol=0, atol=1e-6)
    # t = 0: the posterior collapses onto x0
    torch.testing.assert_close(d.posterior_mean_coef1_x0[0], torch.eye(N), rtol=0, atol=1e-6)
    assert d.posterior_mean_coef2_xt[0].abs().max() == 0 and d.Lambda_posterior[0].abs().max() == 0


@pytest.mark.parametrize("t", [0, 4, 9])
def test_q_sample_empirical_covariance_is_marginal(amass_cov, t):
    """Monte-Carlo: the covariance across nodes of x_t - sqrt(ᾱ_t) x_0 equals Σ̄_t = U diag(Λ̄_t) Uᵀ."""
    d = make(amass_cov)
    g = torch.Generator().manual_seed(t)
    x0 = torch.rand(1000, N, 64, generator=g)
    eps = torch.randn(1000, N, 64, generator=g)
    x_t = d.q_sample(x0, torch.full((1000,), t), eps)
    z = (x_t - d.sqrt_alphas_cumprod[t] * x0).permute(0, 2, 1).reshape(-1, N).double()   # 64k samples of [N]
    emp = z.T @ z / z.shape[0]
    ref = _full(d, d.Lambda_bar_t[t])
    tol = 6 * (2 / z.shape[0]) ** 0.5 * ref.diagonal().max()
    assert (emp - ref).abs().max() < tol, f"max |emp - Σ̄_t| = {(emp - ref).abs().max():.4g} > {tol:.4g}"
    assert z.mean(0).abs().max() < 6 * (ref.diagonal().max() / z.shape[0]) ** 0.5
    if t == 9:  # the forward process ends close to N(0, Σ_N)
        assert (emp - d.Sigma_N.double()).abs().max() < 0.01 + tol


def test_one_step_forward_composes_to_the_marginal(amass_cov):
    """x_{t-1} ~ q(x_{t-1}|x_0), then x_t = sqrt(α_t) x_{t-1} + Σ_t^{1/2} ε has covariance Σ̄_t (Monte-Carlo)."""
    d = make(amass_cov)
    g = torch.Generator().manual_seed(1)
    t = 5
    x_prev = d.q_sample(torch.zeros(1000, N, 64), torch.full((1000,), t - 1), torch.randn(1000, N, 64, generator=g))
    step = d.U @ (d.Lambda_t[t].sqrt()[:, None] * torch.randn(1000, N, 64, generator=g))
    x_t = (1 - d.betas[t]).sqrt() * x_prev + step
    z = x_t.permute(0, 2, 1).reshape(-1, N).double()
    ref = _full(d, d.Lambda_bar_t[t])
    assert (z.T @ z / z.shape[0] - ref).abs().max() < 6 * (2 / z.shape[0]) ** 0.5


def test_identity_covariance_recovers_ddpm(amass_cov):
    """Λ_N = 1, U = I: every buffer is the textbook DDPM quantity."""
    S, L, U = get_cov_from_corr(torch.from_numpy(get_skeleton("amass").adjacency()), if_run_as_isotropic=True)
    d = NonisotropicGaussianDiffusion(S, L, U, Tiny(), latent_size=D)
    b = d.betas.double()
    ac = torch.cumprod(1 - b, 0)
    acp = torch.nn.functional.pad(ac[:-1], (1, 0), value=1.0)
    eye = torch.eye(N, dtype=torch.float64)
    kw = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.Umm_sqrt_Lambda_bar_t.double(), (1 - ac).sqrt()[:, None, None] * eye, **kw)
    torch.testing.assert_close(d.Lambda_posterior.double(), (b * (1 - acp) / (1 - ac))[:, None].expand(10, N), **kw)
    torch.testing.assert_close(d.posterior_mean_coef1_x0.double(), (b * acp.sqrt() / (1 - ac))[:, None, None] * eye,
                               **kw)
    torch.testing.assert_close(d.posterior_mean_coef2_xt.double(),
                               ((1 - acp) * (1 - b).sqrt() / (1 - ac))[:, None, None] * eye, **kw)
    # and Λ_N -> 1 continuously: a generic U with Λ_N = 1 - 1e-6 gives nearly white marginals
    Q, _ = torch.linalg.qr(torch.randn(N, N, generator=torch.Generator().manual_seed(0)))
    d2 = NonisotropicGaussianDiffusion(Q @ Q.T, torch.full((N,), 1 - 1e-6), Q, Tiny(), latent_size=D)
    for t in (0, 5, 9):
        torch.testing.assert_close(_full(d2, d2.Lambda_bar_t[t]), (1 - ac[t]) * eye, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------- training API
def test_forward_shapes_k_copies_share_t(amass_cov):
    d = make(amass_cov)
    x = torch.rand(3, N, D) * 2 - 1
    noise = torch.randn(3, N, D).repeat_interleave(4, 0)        # identical noise for the 4 copies
    g = torch.Generator().manual_seed(0)
    out = d(x, n_train_samples=4, noise=noise, generator=g)
    assert out.loss.shape == (12,) and out.weight.shape == (3,) and out.model_out.shape == (12, N, D)
    torch.testing.assert_close(out.loss.view(3, 4), out.loss.view(3, 4)[:, :1].expand(3, 4))
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 10, (3,), generator=g)
    torch.testing.assert_close(out.weight, d.alphas_cumprod[t])
    loss, weight, model_out = out  # unpacks like the official tuple
    assert out.weighted_mean().shape == ()


def test_forward_uses_global_rng_in_official_order(amass_cov):
    d = make(amass_cov)
    x = torch.rand(5, N, D)
    torch.manual_seed(7)
    out = d(x)
    torch.manual_seed(7)
    t = torch.randint(0, 10, (5,))
    noise = torch.randn(5, N, D)
    ref = d.p_losses(x, t, noise=noise)
    assert torch.equal(out.loss, ref.loss) and torch.equal(out.weight, ref.weight)


def test_pred_noise_objective_works(amass_cov):
    """Officially broken (missing buffer); here an oracle noise predictor yields zero loss and exact samples."""
    x0 = torch.rand(1, N, D) * 1.6 - 0.8
    oracle = Oracle(x0, "pred_noise")
    d = make(amass_cov, model=oracle, diffusion_objective="pred_noise")
    oracle.diffusion = d
    assert d.loss_weighting == "ones" and torch.equal(d.loss_weight, torch.ones(10))
    out = d(x0.expand(4, N, D).clone(), generator=torch.Generator().manual_seed(0))
    assert out.loss.max() < 1e-4
    samples = d.sample(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(samples, x0.expand(3, N, D), rtol=0, atol=1e-4)


def test_pred_x0_oracle_sampling_returns_x0(amass_cov):
    x0 = torch.rand(1, N, D) * 1.6 - 0.8
    d = make(amass_cov, model=Oracle(x0, "pred_x0"))
    for sampler, steps in (("ancestral", None), ("ddim", 4), ("ddim", 10)):
        s = d.sample(2, sampler=sampler, sampling_timesteps=steps, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(s, x0.expand(2, N, D), rtol=0, atol=1e-5)


class RawConstant(nn.Module):
    """Outputs the raw value ``raw`` everywhere (pred_x0) and records the self-conditioning input of each call."""

    self_condition = True
    cond_dim = 0

    def __init__(self, raw: float) -> None:
        super().__init__()
        self.channels, self.raw, self.self_conds = N, raw, []

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        self.self_conds.append(None if x_self_cond is None else x_self_cond.clone())
        return torch.full_like(x, self.raw)


def test_self_condition_and_activation_paths(amass_cov):
    """tanh is applied to the network output (x0 prediction tanh(2) = 0.964, not 2); self-conditioning feeds the
    previous x0 prediction back: at sampling from the second step on, in training on the coin's half."""
    model = RawConstant(2.0)
    d = make(amass_cov, model=model, diffusion_activation="tanh")
    x0_hat = torch.tanh(torch.tensor(2.0))
    samples = d.sample(2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples, torch.full((2, N, D), float(x0_hat)), rtol=0, atol=1e-5)
    assert model.self_conds[0] is None and len(model.self_conds) == d.num_timesteps
    for sc in model.self_conds[1:]:
        torch.testing.assert_close(sc, torch.full((2, N, D), float(x0_hat)), rtol=0, atol=0)
    x = torch.rand(4, N, D)
    branches = set()
    for seed in range(8):
        model.self_conds.clear()
        out = d(x, generator=torch.Generator().manual_seed(seed))
        branches.add(len(model.self_conds))
        assert model.self_conds[-1] is None or torch.equal(model.self_conds[-1], torch.full_like(x, float(x0_hat)))
        torch.testing.assert_close(out.model_out, torch.full_like(x, float(x0_hat)), rtol=0, atol=0)
    assert branches == {1, 2}  # both halves of the self-conditioning coin were taken
    plain = make(amass_cov, model=RawConstant(2.0), diffusion_activation="identity")  # x0 = 2, clamped to 1
    torch.testing.assert_close(plain.sample(1, generator=torch.Generator().manual_seed(0)),
                               torch.full((1, N, D), 1.0), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------------- samplers
def test_sample_reproducible_with_generator_and_explicit_noise(amass_cov):
    d = make(amass_cov)
    a = d.sample(3, generator=torch.Generator().manual_seed(5), return_all=True)
    b = d.sample(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.samples, b)
    assert a.start_noise.shape == (3, N, D) and a.step_noise.shape == (3, 9, N, D)
    c = d.sample(3, start_noise=a.start_noise, sampling_noise=a.step_noise)
    assert torch.equal(c, b)
    torch.manual_seed(11)
    e = d.sample(3, return_all=True)
    torch.manual_seed(11)
    start = torch.randn(3, N, D)
    steps = torch.stack([torch.randn(3, N, D) for _ in range(9)], 1)
    assert torch.equal(e.start_noise, start) and torch.equal(e.step_noise, steps)
    assert torch.equal(d.p_sample_loop((3, N, D), start_noise=start, sampling_noise=steps), e.samples)


def test_ddim_with_eta_one_and_all_steps_equals_ancestral(amass_cov):
    d = make(amass_cov)
    g = torch.Generator().manual_seed(3)
    start, steps = torch.randn(4, N, D, generator=g), torch.randn(4, 9, N, D, generator=g)
    anc = d.sample(4, start_noise=start, sampling_noise=steps, sampler="ancestral", return_all=True, record_steps=True)
    ddim = d.sample(4, start_noise=start, sampling_noise=steps, sampler="ddim", sampling_timesteps=10, eta=1.0,
                    return_all=True, record_steps=True)
    torch.testing.assert_close(ddim.mean_per_step[:, :-1], anc.mean_per_step[:, :-1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ddim.samples, anc.samples, rtol=1e-4, atol=1e-5)


def test_ddim_eta_zero_is_deterministic_and_uses_fewer_steps(amass_cov):
    model = Tiny()
    d = make(amass_cov, model=model, sampling_timesteps=4)
    assert d.is_ddim_sampling
    start = torch.randn(2, N, D)
    model.seen_x.clear()
    a = d.sample(2, start_noise=start, generator=torch.Generator().manual_seed(0), return_all=True)
    assert len(model.seen_x) == 4 and a.step_noise.shape[1] == 0
    b = d.sample(2, start_noise=start, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.samples, b)
    assert ddim_timesteps(10, 4) == [9, 6, 4, 1] and ddim_timesteps(10, 10) == list(range(9, -1, -1))


def test_marginal_start_noise_and_condition_repeat(amass_cov):
    model = Tiny(cond_dim=3)
    d = make(amass_cov, model=model)
    assert d.condition
    start = torch.randn(4, N, D)
    cond = torch.randn(2, N, 3)
    model.seen_x.clear()
    d.sample(4, cond, start_noise=start, start_noise_type="marginal")
    expected = d.U @ (d.Lambda_bar_t[-1].sqrt()[:, None] * start)
    torch.testing.assert_close(model.seen_x[0], expected)
    assert torch.equal(model.seen_cond, cond.repeat_interleave(2, 0))
    with pytest.raises(InputError, match="x_cond"):
        d.sample(4)


def test_noise_transform_hook_is_applied(amass_cov):
    d = make(amass_cov)
    start = torch.randn(2, N, D)
    zero = d.sample(2, start_noise=start, noise_transform=lambda eps, t: eps * 0)
    no_noise = d.sample(2, start_noise=start, sampling_noise=torch.zeros(2, 9, N, D))
    assert torch.equal(zero, no_noise)


# ------------------------------------------------------------------------------------------------------ errors
def test_errors_are_clear(amass_cov):
    d = make(amass_cov)
    with pytest.raises(InputError, match=r"\[B, 21, 8\]"):
        d(torch.zeros(2, 20, D))
    with pytest.raises(InputError, match="sampling_noise"):
        d.sample(2, sampling_noise=torch.zeros(2, 8, N, D))
    with pytest.raises(InputError, match="start_noise"):
        d.sample(2, start_noise=torch.zeros(3, N, D))
    with pytest.raises(ConfigError, match="pred_v"):
        make(amass_cov, diffusion_objective="pred_v")
    with pytest.raises(ConfigError, match="diffusion_objective"):
        make(amass_cov, diffusion_objective="pred_eps")
    with pytest.raises(ConfigError, match="loss_reduction_type"):
        make(amass_cov, loss_reduction_type="huber")
    with pytest.raises(InputError, match="channels=21"):
        NonisotropicGaussianDiffusion(torch.eye(5), torch.ones(5), torch.eye(5), Tiny(), latent_size=D)
    with pytest.raises(TypeError):
        make(amass_cov, timestep=10)  # typo: rejected, not swallowed


def test_timesteps_alias_and_schedules(amass_cov):
    d = make(amass_cov, timesteps=20)
    assert d.num_timesteps == 20 and d.Lambda_bar_t.shape == (20, N)
    d = make(amass_cov, beta_schedule="exp", diffusion_timesteps=10)
    assert d.num_timesteps == 10
    d = make(amass_cov, beta_schedule="linear", diffusion_timesteps=10)
    assert d.betas.max() <= 0.999


def test_isotropic_pred_v_round_trip():
    torch.manual_seed(0)
    d = IsotropicGaussianDiffusion(Tiny(), latent_size=D, diffusion_objective="pred_v")
    x0, eps, t = torch.randn(3, N, D), torch.randn(3, N, D), torch.tensor([1, 5, 8])
    v = d.predict_v(x0, t, eps)
    torch.testing.assert_close(d.predict_start_from_v(d.q_sample(x0, t, eps), t, v), x0, rtol=1e-4, atol=1e-4)
    assert d.loss_weighting == "snr_over_snr_plus_one"
    assert torch.isfinite(d(x0.clamp(-1, 1)).loss).all()
