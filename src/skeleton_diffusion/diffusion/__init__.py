"""Nonisotropic Gaussian diffusion (SkeletonDiffusion stage 2) and its isotropic special case.

Plug-and-play::

    from skeleton_diffusion.diffusion import get_cov_from_corr, NonisotropicGaussianDiffusion
    Sigma_N, Lambda_N, U = get_cov_from_corr(adjacency)       # [N, N], [N], [N, N]
    diffusion = NonisotropicGaussianDiffusion(Sigma_N=Sigma_N, Lambda_N=Lambda_N, U=U, model=denoiser)
    loss, weight, x0_hat = diffusion(x)                       # x: [B, N, D] in [-1, 1]
    samples = diffusion.sample(batch_size=4)                  # [4, N, D]
"""

from skeleton_diffusion.diffusion.covariance import get_cov_from_corr, is_positive_definite, make_positive_definite, normalize_cov
from skeleton_diffusion.diffusion.isotropic import IsotropicGaussianDiffusion
from skeleton_diffusion.diffusion.losses import DiffusionLoss
from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.samplers import SampleOutput, ancestral_sample, ddim_sample
from skeleton_diffusion.diffusion.schedules import compute_eigen_variances, cosine_beta_schedule, get_beta_schedule, gamma_schedule
from skeleton_diffusion.diffusion.trainer1d import Trainer1DAdapter, load_trainer1d

__all__ = [
    "get_cov_from_corr", "is_positive_definite", "make_positive_definite", "normalize_cov",
    "NonisotropicGaussianDiffusion", "IsotropicGaussianDiffusion", "DiffusionLoss", "SampleOutput",
    "ancestral_sample", "ddim_sample", "compute_eigen_variances", "cosine_beta_schedule", "get_beta_schedule",
    "gamma_schedule", "Trainer1DAdapter", "load_trainer1d",
]
