"""Σ_N construction, β/γ schedules and eigen-variances: unit tests and official fixture (covariance.pt)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import official_fixture

from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.schedules import compute_eigen_variances, get_beta_schedule
from skeleton_diffusion.diffusion.covariance import get_cov_from_corr, is_positive_definite, make_positive_definite
from skeleton_diffusion.diffusion.schedules import cosine_beta_schedule, exp_beta_schedule, linear_beta_schedule
from skeleton_diffusion.skeletons.lookup import get_skeleton
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
#: Neighbouring eigenvalues closer than this (times λ_max) are compared as one eigenspace. The projector onto an
#: eigenspace is unique, but float32 eigh moves it by up to ~eps32·λ_max/gap (Davis–Kahan; AMASS reachability has
#: a pair 5.4e-4 apart whose single eigenvectors move by 3e-5). At gap ≥ 0.03 λ_max the official float32
#: projectors agree with the float64 ones to ≤ 0.43 of the tolerance below (measured).
CLUSTER_GAP = 0.03


def _clusters(eigenvalues):
    """``[start, stop)`` ranges of ascending eigenvalues whose neighbours are closer than CLUSTER_GAP·λ_max."""
    out, start = [], 0
    gaps = (eigenvalues[1:] - eigenvalues[:-1]) > CLUSTER_GAP * eigenvalues.abs().max()
    for i, is_gap in enumerate(gaps.tolist(), start=1):
        if is_gap:
            out.append((start, i))
            start = i
    return out + [(start, eigenvalues.numel())]


def _projector(U, start, stop):
    return U[:, start:stop] @ U[:, start:stop].T


@pytest.mark.parametrize("name", ["amass_adjacency", "amass_reachability"])
def test_get_cov_from_corr_matches_official(cov_fixture, name):
    """Compare what is unique: Σ_N, Λ_N, U diag(Λ_N) Uᵀ and the projector onto every (clustered) eigenspace."""
    case = cov_fixture["correlation"][name]
    C = case["correlation"]
    _close(make_positive_definite(C), case["positive_definite_unnormalised"])
    for scale in ("spectral", "frob"):
        S, L, U = get_cov_from_corr(C, if_sigma_n_scale=True, sigma_n_scale=scale)
        ref = case[scale]
        _close(S, ref["Sigma_N"])
        _close(L, ref["Lambda_N"])
        _close(U @ torch.diag(L) @ U.T, ref["U"] @ torch.diag(ref["Lambda_N"]) @ ref["U"].T)
        _close(U.T @ U, torch.eye(C.shape[0]))
        clusters = _clusters(ref["Lambda_N"])
        assert sum(stop - start for start, stop in clusters) == C.shape[0]
        for start, stop in clusters:
            _close(_projector(U, start, stop), _projector(ref["U"], start, stop))


def _sign_invariant(buffers):
    """The products of the diffusion buffers that do not depend on U's column signs or eigenspace bases."""
    out = {}
    for key, value in buffers.items():
        if key in ("U", "U_transposed"):
            continue
        if key.startswith("Umm_"):  # U diag(.)  ->  U diag(.)² Uᵀ
            out[key] = value @ value.mT
        elif key.endswith("mmUt") or key == "mahalanobis_S_sqrt_recip":  # diag(.) Uᵀ  ->  U diag(.)² Uᵀ
            out[key] = value.mT @ value
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("variant,corr", [("adjacency_spectral", "amass_adjacency"),
                                          ("reachability_spectral", "amass_reachability")])
def test_diffusion_buffers_from_fresh_covariance_match_official(cov_fixture, variant, corr):
    """A diffusion built from our own get_cov_from_corr (not the stored U) has the official buffers, up to what
    U's signs/basis leave free."""
    sch = cov_fixture["schedules"][f"amass_{variant}"]
    cfg = sch["config"]
    S, L, U = get_cov_from_corr(cov_fixture["correlation"][corr]["correlation"], sigma_n_scale="spectral")
    diffusion = NonisotropicGaussianDiffusion(
        S, L, U, _Stub(21), diffusion_timesteps=cfg["diffusion_timesteps"], beta_schedule=cfg["beta_schedule"],
        diffusion_covariance_type=cfg["diffusion_covariance_type"], gamma_scheduler=cfg["gamma_scheduler"],
        loss_reduction_type=cfg["loss_reduction_type"], diffusion_objective=cfg["diffusion_objective"])
    ours = _sign_invariant(diffusion.state_dict())
    ref = _sign_invariant(sch["buffers"])
    assert set(ref) <= set(ours)
    for key, value in ref.items():
        _close(ours[key], value)


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
    # float64 cos of the official formula: the vectorised libm (CPU/ISA-dependent) may differ in the last ulp,
    # which 1 - ᾱ_t/ᾱ_{t-1} amplifies a little; 1e-12 is still ~1e4 ulp below anything float32 can see
    torch.testing.assert_close(cosine_beta_schedule(10), sch["cosine_beta_schedule_float64"], rtol=1e-12, atol=0)
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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_canonical_u_on_cuda_equals_cpu():
    A = torch.from_numpy(get_skeleton("amass").adjacency()).float()
    S, L, U = get_cov_from_corr(A)
    Sc, Lc, Uc = get_cov_from_corr(A.cuda())
    assert Uc.device.type == Lc.device.type == Sc.device.type == "cuda" and Uc.dtype == torch.float32
    torch.testing.assert_close(Uc.cpu(), U, rtol=0, atol=1e-6)  # same canonical signs on every device
    torch.testing.assert_close(Lc.cpu(), L, rtol=1e-6, atol=1e-7)


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


# ------------------------------------------------------------------------------------ canonical eigenvectors
from skeleton_diffusion.diffusion.covariance import (SIGN_TIE_TOL, canonical_eigh,  # noqa: E402
                                                     canonicalize_eigenvector_signs)


def _assert_sign_rule(U):
    """Each column's largest-|value| entry (ties within SIGN_TIE_TOL -> lowest row) is positive."""
    mag = U.abs()
    for j in range(U.shape[1]):
        tied = (mag[:, j] >= mag[:, j].max() - SIGN_TIE_TOL).nonzero()[0, 0]
        assert U[tied, j] > 0, f"column {j}: pivot row {tied.item()} is {U[tied, j].item():.3g}"


def _random_orthogonal(n, seed):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _sym(m):
    return (m + m.T) / 2


def test_sign_rule_ties_go_to_the_lowest_row():
    # column 0: |-0.6| and 0.6+1e-6 tie -> row 0 decides; column 1: 0.6 beats |-0.598| (gap 2e-3 > tol)
    U = torch.tensor([[-0.6, 0.6, 0.1], [0.6 + 1e-6, -0.6 + 2e-3, 0.2], [0.1, 0.1, -0.9]])
    out = canonicalize_eigenvector_signs(U)
    torch.testing.assert_close(out, U * torch.tensor([-1.0, 1.0, -1.0]), rtol=0, atol=0)
    assert torch.equal(canonicalize_eigenvector_signs(torch.zeros(2, 1)), torch.zeros(2, 1))


@pytest.mark.parametrize("skeleton,kind", [("amass", "adjacency"), ("amass", "reachability"),
                                           ("amass-mano", "adjacency")])
def test_skeleton_covariances_follow_the_sign_rule(cov_fixture, skeleton, kind):
    if kind == "reachability":
        C = cov_fixture["correlation"]["amass_reachability"]["correlation"]
    else:
        C = torch.from_numpy(get_skeleton(skeleton).adjacency()).float()
    S, L, U = get_cov_from_corr(C)
    _assert_sign_rule(U)
    torch.testing.assert_close(U @ torch.diag(L) @ U.T, S, rtol=0, atol=1e-6)
    torch.testing.assert_close(U.T @ U, torch.eye(C.shape[0]), rtol=0, atol=1e-6)


def test_canonical_u_is_the_same_for_any_input_basis_and_thread_count():
    """Σ built from differently signed/rotated eigenbases (duplicated eigenvalues included) gives one U."""
    lam = torch.tensor([0.1, 0.5, 0.5, 0.5, 1.0, 2.0, 2.0, 3.0], dtype=torch.float64)
    Q = _random_orthogonal(8, 0)
    R = torch.eye(8, dtype=torch.float64)
    R[1:4, 1:4] = _random_orthogonal(3, 1)  # another basis of the 0.5 eigenspace
    R[5:7, 5:7] = _random_orthogonal(2, 2)  # and of the 2.0 eigenspace
    Q2 = Q @ R * torch.tensor([1, -1, 1, -1, -1, 1, -1, 1], dtype=torch.float64)
    A1, A2 = _sym(Q @ torch.diag(lam) @ Q.T), _sym(Q2 @ torch.diag(lam) @ Q2.T)
    L1, U1 = canonical_eigh(A1)
    L2, U2 = canonical_eigh(A2)
    torch.testing.assert_close(L1, lam, rtol=0, atol=1e-12)
    torch.testing.assert_close(U1, U2, rtol=0, atol=1e-9)
    _assert_sign_rule(U1)
    torch.testing.assert_close(U1 @ torch.diag(L1) @ U1.T, A1, rtol=0, atol=1e-12)
    # float32 input, different thread counts: same U to float32 rounding (not bit-identity)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, Ua = canonical_eigh(A1.float())
        torch.set_num_threads(2)
        _, Ub = canonical_eigh(A1.float())
    finally:
        torch.set_num_threads(threads)
    assert Ua.dtype == torch.float32
    torch.testing.assert_close(Ua, Ub, rtol=0, atol=1e-6)
    torch.testing.assert_close(Ua, U1.float(), rtol=0, atol=1e-5)


def test_permuting_the_joints_permutes_u_when_no_entry_ties():
    g = torch.Generator().manual_seed(3)
    lam = torch.linspace(0.2, 1.0, 9, dtype=torch.float64)
    A = _sym(_random_orthogonal(9, 4) @ torch.diag(lam) @ _random_orthogonal(9, 4).T)
    perm = torch.randperm(9, generator=g)
    L, U = canonical_eigh(A)
    Lp, Up = canonical_eigh(A[perm][:, perm])
    torch.testing.assert_close(Lp, L, rtol=0, atol=1e-12)
    torch.testing.assert_close(Up, U[perm], rtol=0, atol=1e-9)


def test_permuted_skeleton_with_repeated_eigenvalues_keeps_everything_that_is_unique():
    """AMASS-MANO (identical finger chains: 24 repeated eigenvalues): under a joint permutation the eigenspace
    projectors and Σ_N permute; the basis inside a repeated eigenspace is canonical but not permutation-equivariant."""
    A = torch.from_numpy(get_skeleton("amass-mano").adjacency()).double()
    n = A.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(5))
    S, L, U = get_cov_from_corr(A)
    Sp, Lp, Up = get_cov_from_corr(A[perm][:, perm])
    torch.testing.assert_close(Sp, S[perm][:, perm], rtol=0, atol=1e-12)
    torch.testing.assert_close(Lp, L, rtol=0, atol=1e-12)
    _assert_sign_rule(Up)
    start = 0
    for stop in [*((L[1:] - L[:-1]) > 1e-9).nonzero().flatten().add(1).tolist(), n]:
        torch.testing.assert_close(Up[:, start:stop] @ Up[:, start:stop].T,
                                   (U[:, start:stop] @ U[:, start:stop].T)[perm][:, perm], rtol=0, atol=1e-9)
        start = stop
    assert start == n and int(((L[1:] - L[:-1]) <= 1e-9).sum()) >= 10


def test_what_sampling_takes_from_sigma_ignores_the_choice_of_u():
    """Another valid U (flipped signs, rotated repeated eigenspaces) leaves every Σ-only quantity unchanged:
    posterior means, noise covariances U Λ̄_t Uᵀ and the Mahalanobis norm of the loss."""
    A = torch.from_numpy(get_skeleton("amass-mano").adjacency()).float()
    S, L, U = get_cov_from_corr(A)
    n = A.shape[0]
    R = torch.eye(n)
    L64 = L.double()
    start = 0
    for stop in [*((L64[1:] - L64[:-1]) > 1e-6).nonzero().flatten().add(1).tolist(), n]:
        if stop - start > 1:
            R[start:stop, start:stop] = _random_orthogonal(stop - start, start).float()
        start = stop
    U2 = U @ R * torch.where(torch.arange(n) % 3 == 0, -1.0, 1.0)
    assert (U2 - U).abs().max() > 0.1
    d1 = NonisotropicGaussianDiffusion(S, L, U, _Stub(n), latent_size=4)
    d2 = NonisotropicGaussianDiffusion(S, L, U2, _Stub(n), latent_size=4)
    g = torch.Generator().manual_seed(0)
    x0, xt, r = (torch.randn(3, n, 4, generator=g) for _ in range(3))
    t = torch.tensor([0, 4, 9])
    torch.testing.assert_close(d1.q_posterior_mean(x0, xt, t), d2.q_posterior_mean(x0, xt, t), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d1.whiten(r, t).square().sum(1), d2.whiten(r, t).square().sum(1), rtol=1e-5, atol=1e-5)
    cov1 = d1.Umm_sqrt_Lambda_bar_t @ d1.Umm_sqrt_Lambda_bar_t.mT
    torch.testing.assert_close(cov1, d2.Umm_sqrt_Lambda_bar_t @ d2.Umm_sqrt_Lambda_bar_t.mT, rtol=1e-5, atol=1e-6)
