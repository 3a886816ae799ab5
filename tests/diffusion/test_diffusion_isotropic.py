"""Exact recovery of isotropic diffusion (spec §4.9): the nonisotropic class run as isotropic (U = I, Λ_N = 1)
and IsotropicGaussianDiffusion give bit-identical losses, trained weights and samples on CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skeleton_diffusion.diffusion.isotropic import IsotropicGaussianDiffusion
from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
from skeleton_diffusion.skeletons.lookup import get_skeleton

N, D, C = 16, 12, 6


class Net(nn.Module):
    """Conditional network that mixes nodes (so gradients flow through node-axis matrix products)."""

    self_condition = False
    channels = N
    cond_dim = C

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(D + C, 32)
        self.mix = nn.Parameter(torch.eye(N) + 0.1 * torch.randn(N, N))
        self.t_emb = nn.Embedding(10, 32)
        self.out = nn.Linear(32, D)

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        h = torch.tanh(self.mix @ self.inp(torch.cat([x_cond, x], -1)) + self.t_emb(t)[:, None])
        return self.out(h)


def _pair(nonisotropic_kw: dict, isotropic_kw: dict, covariance_type: str = "skeleton-diffusion"):
    A = torch.from_numpy(get_skeleton("h36m").adjacency())
    Sigma_N, Lambda_N, U = get_cov_from_corr(A, if_run_as_isotropic=True,
                                             diffusion_covariance_type=covariance_type)
    torch.manual_seed(123)
    a = NonisotropicGaussianDiffusion(Sigma_N, Lambda_N, U, Net(), latent_size=D,
                                      diffusion_covariance_type=covariance_type, **nonisotropic_kw)
    torch.manual_seed(123)
    b = IsotropicGaussianDiffusion(Net(), latent_size=D, **isotropic_kw)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    return a, b


def _train(diffusion, steps: int = 20, k: int = 1):
    g = torch.Generator().manual_seed(0)
    data = torch.rand(32, N, D, generator=g) * 2 - 1
    cond = torch.randn(32, N, C, generator=g)
    opt = torch.optim.Adam(diffusion.parameters(), lr=1e-2, betas=(0.9, 0.99))
    losses = []
    for step in range(steps):
        idx = torch.arange(8) + (step * 8) % 32
        gen = torch.Generator().manual_seed(1000 + step)
        out = diffusion(data[idx], x_cond=cond[idx], n_train_samples=k, generator=gen)
        loss = out.weighted_mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses)


CONFIGS = {
    # the official isotropic behaviour (plain L1, SNR weight) reproduced by the nonisotropic class
    "isotropic_official": (dict(loss_weighting="snr", mahalanobis_loss=False), dict()),
    # the official nonisotropic behaviour (whitened L1, ᾱ weight) reproduced by the isotropic class
    "nonisotropic_official": (dict(), dict(loss_weighting="alphas_cumprod", mahalanobis_loss=True)),
    "mse": (dict(loss_reduction_type="mse"),
            dict(loss_reduction_type="mse", loss_weighting="alphas_cumprod", mahalanobis_loss=True)),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_twenty_training_steps_bit_identical(config):
    a, b = _pair(*CONFIGS[config])
    losses_a, losses_b = _train(a), _train(b)
    assert torch.equal(losses_a, losses_b), (losses_a - losses_b).abs().max()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), f"{name} differs by {(p - q).abs().max().item():.3g}"
    assert not torch.equal(losses_a[0], losses_a[-1])  # it actually trained


@pytest.mark.parametrize("covariance_type", ["anisotropic", "isotropic"])
def test_other_covariance_types_run_as_isotropic_bit_identical(covariance_type):
    a, b = _pair(dict(loss_weighting="snr", mahalanobis_loss=False), dict(), covariance_type)
    assert torch.equal(_train(a, steps=5, k=3), _train(b, steps=5, k=3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_forward_posterior_and_sampling_bit_identical():
    a, b = _pair(*CONFIGS["isotropic_official"])
    g = torch.Generator().manual_seed(5)
    x0, eps, cond = torch.rand(6, N, D, generator=g) * 2 - 1, torch.randn(6, N, D, generator=g), torch.randn(6, N, C)
    t = torch.tensor([0, 1, 3, 5, 8, 9])
    x_t = a.q_sample(x0, t, eps)
    assert torch.equal(x_t, b.q_sample(x0, t, eps))
    for u, v in zip(a.q_posterior(x0, x_t, t), b.q_posterior(x0, x_t, t)):
        assert torch.equal(u, v.expand_as(u))
    for u, v in zip(a.p_mean_variance(x_t, t, x_cond=cond), b.p_mean_variance(x_t, t, x_cond=cond)):
        assert torch.equal(u, v.expand_as(u))
    assert torch.equal(a.predict_noise_from_start(x_t, t, x0), b.predict_noise_from_start(x_t, t, x0))
    assert torch.equal(a.predict_start_from_noise(x_t, t, eps), b.predict_start_from_noise(x_t, t, eps))
    for kw in (dict(), dict(sampler="ddim", sampling_timesteps=4, eta=0.5)):
        sa = a.sample(6, cond, generator=torch.Generator().manual_seed(9), **kw)
        sb = b.sample(6, cond, generator=torch.Generator().manual_seed(9), **kw)
        assert torch.equal(sa, sb)


def test_isotropic_buffers_match_textbook_ddpm():
    _, b = _pair(*CONFIGS["isotropic_official"])
    beta = b.betas.double()
    ac = torch.cumprod(1 - beta, 0)
    acp = torch.nn.functional.pad(ac[:-1], (1, 0), value=1.0)
    kw = dict(rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(b.posterior_variance.double(), beta * (1 - acp) / (1 - ac), **kw)
    torch.testing.assert_close(b.posterior_mean_coef1.double(), beta * acp.sqrt() / (1 - ac), **kw)
    torch.testing.assert_close(b.posterior_mean_coef2.double(), (1 - acp) * (1 - beta).sqrt() / (1 - ac), **kw)
    torch.testing.assert_close(b.loss_weight.double(), ac / (1 - ac), rtol=1e-4, atol=0)
    assert {"sqrt_one_minus_alphas_cumprod", "posterior_mean_coef1", "posterior_log_variance_clipped",
            "sqrt_recipm1_alphas_cumprod", "loss_weight"} <= set(b.state_dict())


def test_official_default_weightings_differ_by_sqrt_one_minus_alphas_cumprod():
    """Documented difference (spec §4.9): whitened ᾱ-weighted L1 vs SNR-weighted L1, ratio sqrt(1-ᾱ_t)."""
    a, b = _pair(dict(), dict())
    g = torch.Generator().manual_seed(0)
    x0, cond = torch.rand(10, N, D, generator=g) * 2 - 1, torch.randn(10, N, C, generator=g)
    t = torch.arange(10)
    noise = torch.randn(10, N, D, generator=g)
    la = a.p_losses(x0, t, noise=noise, x_cond=cond)
    lb = b.p_losses(x0, t, noise=noise, x_cond=cond)
    ratio = (la.loss * la.weight) / (lb.loss * lb.weight)
    torch.testing.assert_close(ratio, (1 - a.alphas_cumprod).sqrt(), rtol=1e-5, atol=0)
