"""Build models from configs (``hydra.utils.instantiate`` on the ``_target_`` nodes of ``configs/model/``).

Skeleton-dependent arguments (``num_nodes``, ``node_types``, latent width, covariance) are added here, so the
config files stay free of derived values.
"""

from __future__ import annotations

from typing import Any, Mapping

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from skeleton_diffusion.diffusion.covariance import build_correlation  # noqa: F401  (re-exported for configs)
from skeleton_diffusion.skeletons.skeleton import Skeleton
from skeleton_diffusion.utils.errors import ConfigError

NONISOTROPIC_TARGET = "skeleton_diffusion.diffusion.NonisotropicGaussianDiffusion"


def _cfg(node: Any) -> DictConfig:
    return node if isinstance(node, DictConfig) else OmegaConf.create(node)


def build_autoencoder(model_cfg: DictConfig, skeleton: Skeleton) -> nn.Module:
    """Instantiate ``model_cfg.network`` (an :class:`~skeleton_diffusion.methods.skeleton_diffusion.autoencoder.AutoEncoder`)."""
    model_cfg = _cfg(model_cfg)
    if "network" not in model_cfg:
        raise ConfigError("model config has no 'network' node (expected configs/model/autoencoder.yaml keys)")
    return instantiate(model_cfg.network, num_nodes=skeleton.num_nodes, node_types=list(skeleton.node_types))


def build_denoiser(model_cfg: DictConfig, skeleton: Skeleton, latent_size: int) -> nn.Module:
    """Instantiate ``model_cfg.network`` (the :class:`~skeleton_diffusion.methods.skeleton_diffusion.denoiser.Denoiser`)."""
    model_cfg = _cfg(model_cfg)
    cond_dim = latent_size if bool(model_cfg.get("diffusion_conditioning", True)) else 0
    return instantiate(model_cfg.network, dim=int(latent_size), num_nodes=skeleton.num_nodes,
                       node_types=list(skeleton.node_types), cond_dim=cond_dim)


def build_diffusion(model_cfg: DictConfig, cov_cfg: Mapping[str, Any] | None, skeleton: Skeleton,
                    latent_size: int) -> nn.Module:
    """Denoiser + (non)isotropic Gaussian diffusion from a diffusion model config.

    For the nonisotropic class, Σ_N, Λ_N, U come from ``get_cov_from_corr`` on the skeleton's correlation
    matrix (``cov_cfg``) with ``if_sigma_n_scale``, ``sigma_n_scale``, ``if_run_as_isotropic`` and
    ``diffusion_covariance_type`` from ``model_cfg``.
    """
    from skeleton_diffusion.diffusion.covariance import get_cov_from_corr

    model_cfg = _cfg(model_cfg)
    denoiser = build_denoiser(model_cfg, skeleton, latent_size)
    dcfg = model_cfg.diffusion
    target = str(dcfg.get("_target_", ""))
    kwargs: dict[str, Any] = dict(model=denoiser, latent_size=int(latent_size))
    if target == NONISOTROPIC_TARGET or target.endswith("NonisotropicGaussianDiffusion"):
        corr = build_correlation(cov_cfg, skeleton)
        sigma, lam, u = get_cov_from_corr(
            corr,
            if_sigma_n_scale=bool(model_cfg.get("if_sigma_n_scale", True)),
            sigma_n_scale=str(model_cfg.get("sigma_n_scale", "spectral")),
            if_run_as_isotropic=bool(model_cfg.get("if_run_as_isotropic", False)),
            diffusion_covariance_type=str(model_cfg.get("diffusion_covariance_type", "skeleton-diffusion")),
        )
        kwargs.update(Sigma_N=sigma, Lambda_N=lam, U=u,
                      diffusion_covariance_type=str(model_cfg.get("diffusion_covariance_type",
                                                                  "skeleton-diffusion")),
                      gamma_scheduler=str(model_cfg.get("gamma_scheduler", "cosine")))
    return instantiate(dcfg, **kwargs)
