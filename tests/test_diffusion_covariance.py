"""Σ_N construction, β/γ schedules and eigen-variances: unit tests and official fixture (covariance.pt)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import official_fixture

from skeleton_diffusion.diffusion import (NonisotropicGaussianDiffusion, compute_eigen_variances,
                                          get_beta_schedule, get_cov_from_corr, is_positive_definite,
                                          make_positive_definite)
from skeleton_diffusion.diffusion.schedules import cosine_beta_schedule, exp_beta_schedule, linear_beta_schedule
from skeleton_diffusion.skeletons import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError, InputError


class _Stub(torch.nn.Module):
    self_condition = False
    cond_dim = 0

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        return x


@pytest.fixture(scope="module")
def cov_fixture():
    return torch.load(official_fixture("covariance.pt"), weights_only=True)


def _close(ours, ref):
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


# --------------------------------------------------------------------------------------------- official fixture
@pytest.mark.parametrize("name", ["amass_adjacency", "amass_reachability"])
def test_get_cov_from_corr_matches_official(cov_fixture, name):
    case = cov_fixture["correlation"][name]
    C = case["correlation"]
    _close(make_positive_definite(C), case["positive_definite_unnormalised"])
    for scale in ("spectral", "frob"):
        S, L, U = get_cov_from_corr(C, if_sigma_n_scale=True, sigma_n_scale=scale)
        ref = case[scale]
        _close(S, ref["Sigma_N"])
        _close(L, ref["Lambda_N"])
        # eigenvectors are unique up to sign: compare with the signs aligned
        signs = torch.sign((U * ref["U"]).sum(0))
        _close(U * signs, ref["U"])


def test_correlation_is_the_skeleton_adjacency(cov_fixture):
    sk = get_skeleton("amass")
    assert torch.equal(cov_fixture["correlation"]["amass_adjacency"]["correlation"],
                       torch.from_numpy(sk.adjacency()))


@pytest.mark.parametrize("variant", ["adjacency_spectral", "adjacency_frob", "reachability_spectral",
                                     "adjacency_gamma_mono_decrease", "adjacency_anisotropic"])
def test_schedule_buffers_match_official(cov_fixture, variant):
    sch = cov_fixture["schedules"][f"amass_{variant}"]
    buffers, cfg = sch["buffers"], sch["config"]
    diffusion = NonisotropicGaussianDiffusion(
        buffers["Sigma_N"], buffers["Lambda_N"], buffers["U"], _Stub(21),
        diffusion_timesteps=cfg["diffusion_timesteps"], beta_schedule=cfg["beta_schedule"],
        diffusion_covariance_type=cfg["diffusion_covariance_type"], gamma_scheduler=cfg["gamma_scheduler"],
        loss_reduction_type=cfg["loss_reduction_type"], diffusion_objective=cfg["diffusion_objective"])
    ours = diffusion.state_dict()
    assert set(buffers) <= set(ours), f"missing official buffers: {set(buffers) - set(ours)}"
    for key, ref in buffers.items():
        _close(ours[key], ref)
    for key in ("Lambda_t", "Lambda_bar_t", "Lambda_bar_t_prev"):
        _close(getattr(diffusion, key), sch[key])
    _close(diffusion.loss_weight, buffers["alphas_cumprod"])
    torch.testing.assert_close(cosine_beta_schedule(10), sch["cosine_beta_schedule_float64"], rtol=0, atol=0)
    # an official-layout state dict (these buffers + a model) loads strictly
    diffusion.load_state_dict({**buffers, "loss_weight": buffers["alphas_cumprod"]}, strict=True)


# ------------------------------------------------------------------------------------------------- unit tests
def test_make_positive_definite_shift_and_passthrough():
    A = torch.from_numpy(get_skeleton("amass").adjacency())
    eig = torch.linalg.eigvalsh(A)
    assert eig.min() < 0  # the AMASS graph has a triangle: not bipartite, still indefinite
    P = make_positive_definite(A)
    rho = eig.abs().max()
    torch.testing.assert_close(P, A + (rho + 1e-6) * torch.eye(21), rtol=0, atol=1e-5)
    assert is_positive_definite(P)
    spd = torch.eye(4) * 2
    assert make_positive_definite(spd) is spd
    Q = make_positive_definite(A, if_submin=True)
    torch.testing.assert_close(torch.linalg.eigvalsh(Q).min(), torch.tensor(1e-6), rtol=0, atol=1e-5)


def test_spectral_and_frob_normalisation_amass_numbers():
    A = torch.from_numpy(get_skeleton("amass").adjacency())
    S, L, U = get_cov_from_corr(A, sigma_n_scale="spectral")
    assert L.max().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.all(L[1:] >= L[:-1])
    torch.testing.assert_close(U @ torch.diag(L) @ U.T, S, rtol=0, atol=1e-6)
    torch.testing.assert_close(U.T @ U, torch.eye(21), rtol=0, atol=1e-5)
    assert S[0, 1].item() == pytest.approx(1 / (2 * 2.531), abs=2e-3)  # spec §4.1 table: 0.1975
    assert torch.diagonal(S).mean().item() == pytest.approx(0.5, abs=2e-3)
    assert L.min().item() == pytest.approx(0.046, abs=2e-3)
    S2, L2, _ = get_cov_from_corr(A, sigma_n_scale="frob")
    torch.testing.assert_close(torch.diagonal(S2), torch.ones(21), rtol=0, atol=1e-5)
    assert L2.mean().item() == pytest.approx(1.0, abs=1e-5)
    S3, L3, _ = get_cov_from_corr(A, if_sigma_n_scale=False)
    assert L3.max().item() == pytest.approx(2 * 2.531, abs=5e-3)


def test_run_as_isotropic_returns_white_noise_covariances():
    A = torch.ones(5, 5) - torch.eye(5, dtype=torch.float64)
    for ctype in ("skeleton-diffusion", "anisotropic"):
        S, L, U = get_cov_from_corr(A, if_run_as_isotropic=True, diffusion_covariance_type=ctype)
        assert torch.equal(S, torch.eye(5, dtype=A.dtype)) and torch.equal(L, torch.ones(5, dtype=A.dtype))
        assert torch.equal(U, torch.eye(5, dtype=A.dtype))
        torch.testing.assert_close(U @ torch.diag(L) @ U.T, S)  # consistent (official returned S = 0)
    S, L, U = get_cov_from_corr(A, if_run_as_isotropic=True, diffusion_covariance_type="isotropic")
    assert torch.equal(L, torch.zeros(5, dtype=A.dtype)) and torch.equal(U, torch.eye(5, dtype=A.dtype))


def test_isotropic_covariance_type_builds_and_is_ddpm():
    """The official 'run as isotropic' config (covariance type 'isotropic', Λ_N = 0) crashed; here it builds."""
    S, L, U = get_cov_from_corr(torch.ones(4, 4) - torch.eye(4), if_run_as_isotropic=True,
                                diffusion_covariance_type="isotropic")
    d = NonisotropicGaussianDiffusion(S, L, U, _Stub(4), diffusion_covariance_type="isotropic", latent_size=3)
    torch.testing.assert_close(d.Lambda_bar_t, (1 - d.alphas_cumprod)[:, None].expand(10, 4))
    torch.testing.assert_close(d.Lambda_t, d.betas[:, None].expand(10, 4), rtol=1e-6, atol=1e-7)


def test_bad_correlation_inputs_raise_clear_errors():
    with pytest.raises(InputError, match="square"):
        get_cov_from_corr(torch.zeros(3, 4))
    with pytest.raises(InputError, match="symmetric"):
        get_cov_from_corr(torch.triu(torch.ones(3, 3)))
    with pytest.raises(InputError, match="NaN"):
        get_cov_from_corr(torch.full((3, 3), float("nan")))
    with pytest.raises(ConfigError, match="sigma_n_scale"):
        get_cov_from_corr(torch.ones(3, 3) - torch.eye(3), sigma_n_scale="fro")


def test_cov_follows_input_device_and_dtype():
    A = (torch.ones(4, 4) - torch.eye(4)).double()
    S, L, U = get_cov_from_corr(A)
    assert S.dtype == L.dtype == U.dtype == torch.float64


# ------------------------------------------------------------------------------------------------- schedules
def test_cosine_schedule_table():
    betas = cosine_beta_schedule(10)
    ac = torch.cumprod(1 - betas, 0)
    expected_beta = [.0279, .0755, .1244, .1772, .2373, .3099, .4040, .5370, .7438, .9990]
    expected_ac = [.9721, .8987, .7869, .6475, .4938, .3408, .2031, .0940, .0241, 2.4e-5]
    assert betas.dtype == torch.float64
    torch.testing.assert_close(betas, torch.tensor(expected_beta, dtype=torch.float64), rtol=0, atol=6e-5)
    torch.testing.assert_close(ac, torch.tensor(expected_ac, dtype=torch.float64), rtol=0, atol=6e-5)


def test_linear_and_exp_schedules_fixed_and_official():
    assert linear_beta_schedule(10, official=True).max().item() == pytest.approx(2.0)
    assert linear_beta_schedule(10).max().item() == pytest.approx(0.999)
    torch.testing.assert_close(linear_beta_schedule(1000)[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64))
    assert exp_beta_schedule(10).shape == (10,)
    assert exp_beta_schedule(10, official=True).shape == (11,)
    assert exp_beta_schedule(10)[0].item() == pytest.approx(math.exp(-3))
    with pytest.raises(ConfigError, match="beta_schedule"):
        get_beta_schedule("quadratic", 10)


def _buffers(T=10):
    betas = cosine_beta_schedule(T).float()
    ac64 = torch.cumprod(1 - cosine_beta_schedule(T), 0)
    ac = ac64.float()
    acp = torch.nn.functional.pad(ac64[:-1], (1, 0), value=1.0).float()
    return betas, ac, acp


@pytest.mark.parametrize("ctype,gamma", [("skeleton-diffusion", "cosine"), ("skeleton-diffusion", "mono_decrease"),
                                         ("anisotropic", "cosine"), ("isotropic", "cosine")])
def test_marginal_recursion_holds(ctype, gamma):
    """Λ̄_t = α_t Λ̄_{t-1} + Λ_t (the per-step and marginal covariances are consistent)."""
    betas = cosine_beta_schedule(10)  # float64 throughout: the identity is exact in real arithmetic
    ac = torch.cumprod(1 - betas, 0)
    acp = torch.nn.functional.pad(ac[:-1], (1, 0), value=1.0)
    L = torch.linspace(0.05, 1.0, 7, dtype=torch.float64)
    Lt, Lb, Lbp = compute_eigen_variances(betas, ac, acp, L, ctype, gamma)
    alphas = 1 - betas
    torch.testing.assert_close(Lb, alphas[:, None] * Lbp + Lt, rtol=1e-10, atol=1e-12)
    assert (Lt > 0).all() and (Lb > 0).all()
    torch.testing.assert_close(Lbp[1:], Lb[:-1])


def test_skeleton_diffusion_ends_near_sigma_n_with_cosine_gamma():
    betas, ac, acp = _buffers()
    L = torch.linspace(0.05, 1.0, 7)
    _, Lb, _ = compute_eigen_variances(betas, ac, acp, L, "skeleton-diffusion", "cosine")
    torch.testing.assert_close(Lb[0], torch.full((7,), betas[0].item()), rtol=0, atol=2e-3)  # nearly isotropic
    torch.testing.assert_close(Lb[-1], L, rtol=0, atol=3e-3)                                 # ≈ Λ_N at the end
    _, Lb2, _ = compute_eigen_variances(betas, ac, acp, L, "skeleton-diffusion", "mono_decrease")
    assert Lb2[-1].min() > 0.9  # nearly white at the end


def test_unknown_schedule_names_raise():
    betas, ac, acp = _buffers()
    with pytest.raises(ConfigError, match="gamma_scheduler"):
        compute_eigen_variances(betas, ac, acp, torch.ones(3), "skeleton-diffusion", "linear")
    with pytest.raises(ConfigError, match="diffusion_covariance_type"):
        compute_eigen_variances(betas, ac, acp, torch.ones(3), "full")
