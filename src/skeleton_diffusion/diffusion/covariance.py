"""Node covariance Σ_N of the nonisotropic diffusion, built from a skeleton correlation matrix (spec §4.1–4.2).

All functions are pure and keep the input's device and dtype (the official code builds its identity on the
CPU in the default dtype; that is fixed here). Matrices are ``[N, N]``, eigenvalue vectors ``[N]``.

Canonical eigenvectors (:func:`canonical_eigh`). ``torch.linalg.eigh`` returns each eigenvector with an
arbitrary sign (LAPACK, BLAS build and thread count decide), and the nonisotropic diffusion draws its noise as
``U sqrt(Λ) ε``, so the column signs decide *which* sample a seed gives. Here U is made canonical:

* the decomposition runs on the CPU in float64 (the [N, N] matrix is tiny), then is cast back;
* **sign rule**: in every column, the entry of largest ``|value|`` is positive; entries within
  :data:`SIGN_TIE_TOL` of the largest count as tied (left/right twins give exact ties that float noise
  splits) and the tie goes to the lowest row index;
* **repeated eigenvalues** (closer than :data:`REPEATED_EIGENVALUE_EPS` · eps(input dtype) · max|λ|): the
  eigenspace, i.e. its projector, is unique but any rotation of its basis is an equally valid U. The basis is
  fixed as the eigenvectors of ``diag(0, 1, …, N-1)`` compressed to the eigenspace (this depends on the
  projector only), then the sign rule applies.

What is canonical: Σ_N, Λ_N, the projector onto each eigenspace, every column of U for distinct eigenvalues,
and U as a whole for repeated eigenvalues unless the compressed ``diag(0..N-1)`` is itself degenerate there.
What is not: a permutation of the joints permutes U's rows, but the sign rule can only follow it when the
column's largest entry is not tied (a column ``(a, -a)`` maps to its own negative under the swap, so no rule
can be equivariant there); and nearly repeated eigenvalues (gap above the tolerance but small) have
eigenvectors that are unique yet ill-conditioned (error ≈ eps of the input dtype · max|λ| / gap). Anything
that depends on Σ_N only (its eigenvalues, ``U f(Λ) Uᵀ``, Mahalanobis norms, the noise *distribution*) does not
depend on these choices. The official code keeps LAPACK's float32 signs, which follow no rule: its checkpoints
store U as a buffer, so loading one uses its U unchanged.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = [
    "NULL_EIGENVALUE_TOL",
    "is_positive_definite",
    "make_positive_definite",
    "normalize_cov",
    "get_cov_from_corr",
    "canonical_eigh",
    "canonicalize_eigenvector_signs",
    "SIGN_TIE_TOL",
    "REPEATED_EIGENVALUE_EPS",
]

#: Eigenvalues with magnitude below this count as zero (official threshold, ~float32 resolution at 1.0).
NULL_EIGENVALUE_TOL = 0.7e-7

#: Entries of a unit eigenvector within this of the column's largest |value| tie for the sign rule.
SIGN_TIE_TOL = 1e-3

#: Eigenvalues closer than this many machine epsilons *of the input dtype* times max|λ| form one repeated
#: eigenvalue (one eigenspace): 1.2e-4 relative for float32 inputs, 2.2e-13 for float64. Rounding a matrix with
#: a repeated eigenvalue to float32 splits it by ~eps32; a genuine gap above the tolerance is kept.
REPEATED_EIGENVALUE_EPS = 1000.0

SigmaScale = Literal["spectral", "frob"]
CovarianceType = Literal["skeleton-diffusion", "anisotropic", "isotropic"]


def _check_square_symmetric(matrix: Tensor, name: str) -> None:
    if not torch.is_tensor(matrix) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        shape = tuple(matrix.shape) if torch.is_tensor(matrix) else type(matrix).__name__
        raise InputError(f"{name} must be a square [N, N] tensor, got {shape}")
    if not torch.isfinite(matrix).all():
        raise InputError(f"{name} contains NaN or inf values")
    if not torch.allclose(matrix, matrix.mT):
        raise InputError(f"{name} must be symmetric (max |C - C^T| = {(matrix - matrix.mT).abs().max().item():.3g})")


def is_positive_definite(matrix: Tensor) -> bool:
    """True when the symmetric ``matrix [N, N]`` has only strictly positive eigenvalues (uses ``eigvalsh``)."""
    _check_square_symmetric(matrix, "matrix")
    return bool((torch.linalg.eigvalsh(matrix) > 0).all())


def make_positive_definite(matrix: Tensor, epsilon: float = 1e-6, if_submin: bool = False) -> Tensor:
    """Return ``matrix`` if it is positive definite, else ``matrix + (max|λ| + ε) I`` (spec §4.1).

    ``if_submin=True`` adds ``(-λ_min + ε) I`` instead (an unused official option). The shift uses the
    spectral radius, so for a 0/1 adjacency A the result is ``A + (ρ(A) + ε) I``.
    """
    _check_square_symmetric(matrix, "correlation matrix")
    eigenvalues = torch.linalg.eigvalsh(matrix)
    if bool((eigenvalues > 0).all()):
        return matrix
    # the shift uses the general eigen-solver like the official code: eigvalsh differs in the last bits, which
    # moves the eigenvectors of nearly-degenerate pairs (reachability) by ~1e-4
    eigenvalues = torch.linalg.eigvals(matrix).real.to(matrix.dtype)
    shift = (-eigenvalues.min() if if_submin else eigenvalues.abs().max()) + epsilon
    eye = torch.eye(matrix.shape[0], device=matrix.device, dtype=matrix.dtype)
    result = matrix + eye * shift
    if bool((torch.linalg.eigvalsh(result).abs() < NULL_EIGENVALUE_TOL).any()):
        raise InputError("make_positive_definite: the shifted matrix is still singular; increase epsilon")
    return result


def normalize_cov(
    Sigma_N: Tensor,
    Lambda_N: Tensor,
    U: Tensor,
    if_sigma_n_scale: bool = True,
    sigma_n_scale: SigmaScale = "spectral",
) -> tuple[Tensor, Tensor]:
    """Rescale ``Σ_N [N, N]`` and its eigenvalues ``Λ_N [N]`` (eigenvectors ``U [N, N]`` are unchanged).

    ``spectral`` divides by λ_max (so λ_max = 1); ``frob`` divides by the mean eigenvalue trace/N (the official
    name; for ``A + cI`` this yields a unit diagonal). Checks Σ_N = U diag(Λ_N) Uᵀ and positive definiteness.
    """
    n = Sigma_N.shape[0]
    if Lambda_N.shape != (n,) or U.shape != (n, n):
        raise InputError(f"normalize_cov: expected Lambda_N [{n}] and U [{n}, {n}], got "
                         f"{tuple(Lambda_N.shape)} and {tuple(U.shape)}")
    if if_sigma_n_scale:
        if sigma_n_scale == "spectral":
            scale = Lambda_N.max()
        elif sigma_n_scale == "frob":
            scale = Lambda_N.sum() / n
        else:
            raise ConfigError(f"sigma_n_scale must be 'spectral' or 'frob', got {sigma_n_scale!r}")
        Lambda_N = Lambda_N / scale
        Sigma_N = Sigma_N / scale
        recon = U @ torch.diag(Lambda_N) @ U.mT
        if not torch.isclose(Sigma_N, recon, atol=1e-6).all():
            raise InputError("normalize_cov: Sigma_N != U diag(Lambda_N) U^T after scaling (atol 1e-6)")
    if not bool((Lambda_N > NULL_EIGENVALUE_TOL).all()):
        raise InputError(f"normalize_cov: Lambda_N must be positive, got min {Lambda_N.min().item():.3g}")
    return Sigma_N, Lambda_N


def canonicalize_eigenvector_signs(U: Tensor, tie_tol: float = SIGN_TIE_TOL) -> Tensor:
    """Flip columns of ``U [N, K]`` so that each column's entry of largest ``|value|`` is positive.

    Entries within ``tie_tol`` of the largest magnitude tie; the lowest row index among them decides. A column
    that is entirely zero is returned unchanged.
    """
    if U.dim() != 2:
        raise InputError(f"canonicalize_eigenvector_signs: expected U [N, K], got {tuple(U.shape)}")
    mag = U.abs()
    rows = torch.arange(U.shape[0], device=U.device)[:, None].expand_as(U)
    tied = mag >= mag.amax(dim=0, keepdim=True) - tie_tol
    first = torch.where(tied, rows, U.shape[0]).amin(dim=0)  # [K] lowest tied row
    pivot = U.gather(0, first.clamp_max(U.shape[0] - 1)[None]).squeeze(0)
    signs = torch.where(pivot < 0, -1.0, 1.0).to(U.dtype)
    return U * signs


def _eigenspace_groups(eigenvalues: Tensor, rtol: float) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ascending ``eigenvalues`` whose neighbours are closer than rtol·max|λ|."""
    tol = rtol * float(eigenvalues.abs().max().clamp_min(torch.finfo(eigenvalues.dtype).tiny))
    groups, start = [], 0
    for i in range(1, eigenvalues.numel() + 1):
        if i == eigenvalues.numel() or float(eigenvalues[i] - eigenvalues[i - 1]) > tol:
            groups.append((start, i))
            start = i
    return groups


def canonical_eigh(matrix: Tensor, rtol: float | None = None,
                   tie_tol: float = SIGN_TIE_TOL) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition of a symmetric ``matrix [N, N]`` with a canonical U (see the module docstring).

    Returns ``(Λ [N] ascending, U [N, N] orthonormal columns)`` on ``matrix``'s device and dtype; computed on
    the CPU in float64 (lower triangle, like ``torch.linalg.eigh``). ``rtol`` (relative to max|λ|) groups
    repeated eigenvalues; default ``REPEATED_EIGENVALUE_EPS · eps(matrix.dtype)``.
    """
    _check_square_symmetric(matrix, "matrix")
    if rtol is None:
        rtol = REPEATED_EIGENVALUE_EPS * torch.finfo(matrix.dtype).eps
    m64 = matrix.detach().to(device="cpu", dtype=torch.float64)
    lam, U = torch.linalg.eigh(m64, UPLO="L")
    n = m64.shape[0]
    weights = torch.arange(n, dtype=torch.float64)
    for start, stop in _eigenspace_groups(lam, rtol):
        if stop - start > 1:  # rotate the eigenspace's basis to one fixed by its projector only
            V = U[:, start:stop]
            _, W = torch.linalg.eigh(V.mT @ (weights[:, None] * V))
            U[:, start:stop] = V @ W
            lam[start:stop] = lam[start:stop].mean()
    U = canonicalize_eigenvector_signs(U, tie_tol)
    return lam.to(device=matrix.device, dtype=matrix.dtype), U.to(device=matrix.device, dtype=matrix.dtype)


def get_cov_from_corr(
    correlation_matrix: Tensor,
    if_sigma_n_scale: bool = True,
    sigma_n_scale: SigmaScale = "spectral",
    if_run_as_isotropic: bool = False,
    diffusion_covariance_type: CovarianceType | str = "skeleton-diffusion",
) -> tuple[Tensor, Tensor, Tensor]:
    """Node covariance from a correlation matrix ``C [N, N]`` -> ``(Σ_N [N, N], Λ_N [N], U [N, N])``.

    Default path: ``make_positive_definite`` -> :func:`canonical_eigh` (ascending Λ_N, orthonormal U with the
    documented sign rule) -> ``normalize_cov``. With ``if_run_as_isotropic=True`` the result describes white
    noise, U = I:

    * ``skeleton-diffusion`` / ``anisotropic``: Λ_N = 1, Σ_N = I. (The official code returns Σ_N = 0 for
      ``skeleton-diffusion``, inconsistent with U Λ Uᵀ; Σ_N enters no computation, so I is returned.)
    * anything else (``isotropic``): Λ_N = 0, Σ_N = 0, U = I, as the official code; the diffusion classes
      then use the plain DDPM variances (the official class crashes on this combination, spec §4.9).
    """
    _check_square_symmetric(correlation_matrix, "correlation_matrix")
    n = correlation_matrix.shape[0]
    kw = dict(device=correlation_matrix.device, dtype=correlation_matrix.dtype)
    if if_run_as_isotropic:
        eye = torch.eye(n, **kw)
        if diffusion_covariance_type in ("skeleton-diffusion", "anisotropic"):
            return eye.clone(), torch.ones(n, **kw), eye
        return torch.zeros(n, n, **kw), torch.zeros(n, **kw), eye
    Sigma_N = make_positive_definite(correlation_matrix)
    Lambda_N, U = canonical_eigh(Sigma_N)
    Sigma_N, Lambda_N = normalize_cov(Sigma_N, Lambda_N, U, if_sigma_n_scale=if_sigma_n_scale,
                                      sigma_n_scale=sigma_n_scale)
    return Sigma_N, Lambda_N, U


def build_correlation(cov_cfg: Mapping[str, Any] | None, skeleton: Any) -> torch.Tensor:
    """Correlation matrix ``[N, N]`` for the diffusion covariance (``cov_matrix=adjacency|reachability``)."""
    cov_cfg = dict(cov_cfg or {"covariance_matrix_type": "adjacency"})
    kind = cov_cfg.get("covariance_matrix_type", "adjacency")
    if kind == "adjacency":
        mat = skeleton.adjacency()
    elif kind == "reachability":
        mat = skeleton.reachability(factor=float(cov_cfg.get("reachability_matrix_degree_factor", 0.5)),
                                    stop_at=cov_cfg.get("reachability_matrix_stop_at", "hips"))
    else:
        raise ConfigError(f"cov_matrix.covariance_matrix_type must be 'adjacency' or 'reachability', got {kind!r}")
    return torch.as_tensor(mat, dtype=torch.float32)
