"""Building our MDM (the joint-position / HMP variant trained by ``train_diffusion.py model=mdm``) from a config:
the motion transformer and its motion-space Gaussian diffusion. The official-layout network is
:class:`skeleton_diffusion.methods.mdm.network.OfficialMDM`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from torch import nn

from skeleton_diffusion.training.motion import MDMSpec, condition_cfg


def build_mdm_network(model_cfg: DictConfig, spec: MDMSpec, cond_mask_prob: float) -> nn.Module:
    from skeleton_diffusion.nn.motion_transformer import MDM

    a = model_cfg.arch
    return MDM(spec.num_nodes, spec.num_frames, 3, latent_dim=int(a.latent_dim), ff_size=int(a.ff_size),
               num_layers=int(a.num_layers), num_heads=int(a.num_heads), dropout=float(a.dropout),
               activation=str(a.get("activation", "gelu")), cond_mode=spec.mode, obs_length=spec.obs_length,
               num_actions=spec.num_actions, text_dim=spec.text_dim or 512, cond_mask_prob=cond_mask_prob)


def build_mdm(cfg: DictConfig, spec: MDMSpec, skeleton: Any) -> nn.Module:
    """Network + motion-space Gaussian diffusion of a (composed) MDM config."""
    from skeleton_diffusion.diffusion.motion_space import build_motion_diffusion

    cond = condition_cfg(cfg)
    net = build_mdm_network(cfg.model, spec, float(cond.get("cond_mask_prob", 0.1)))
    return build_motion_diffusion(cfg.model, net, skeleton, representation=spec.representation,
                                  cov_cfg=cfg.get("cov_matrix"))
