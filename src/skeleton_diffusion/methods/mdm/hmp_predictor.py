"""``eval.py`` support for MDM checkpoints (``condition=past``): the same protocol, windows and seeds as
SkeletonDiffusion and the zero-velocity baseline.

Optional eval keys (default: the checkpoint's training config): ``+sampling_steps=<n>`` (respaced steps; null =
full chain), ``+sampling_eta=<0|1>`` (0 = DDIM), ``+guidance_param=<s>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.tasks.base import WindowPredictor
from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["build_mdm_predictor"]


def build_mdm_predictor(cfg: DictConfig, ckpt: Path, device: torch.device
                        ) -> tuple[Callable, Any, float, Path, str]:
    """-> ``(predict_fn, skeleton, pose_box_size, checkpoint, method_name)`` like ``protocol.build_predictor``."""
    from skeleton_diffusion.methods.mdm.predictor import MDMSampler, build_mdm_from_checkpoint

    diffusion, spec, train_cfg, skeleton, _ = build_mdm_from_checkpoint(
        ckpt, device, use_ema=bool(cfg.get("use_ema_weights", False)))
    if spec.mode != "past":
        raise ConfigError(f"'{ckpt}' is a {spec.mode}-conditioned MDM; the HMP protocol needs condition=past "
                          "(evaluate generation models with eval.py task=generation)")
    data_skel = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
    if data_skel.name != skeleton.name:
        raise ConfigError(f"the MDM checkpoint was trained on skeleton '{skeleton.name}' but dataset="
                          f"{cfg.dataset.dataset_name} uses '{data_skel.name}'")
    obs_len = int(cfg.task.history_sec * cfg.dataset.fps)
    if obs_len != spec.obs_length:
        raise ConfigError(f"dataset {cfg.dataset.dataset_name} gives {obs_len} observed frames but the MDM model "
                          f"was trained with {spec.obs_length}")
    m = train_cfg.model
    steps = cfg.get("sampling_steps", m.get("sampling_steps"))
    eta = float(cfg.get("sampling_eta", m.get("sampling_eta", 1.0)))
    guidance = float(cfg.get("guidance_param", (train_cfg.get("condition") or {}).get("guidance_param", 1.0)))
    sampler = MDMSampler(diffusion, spec, steps=steps, eta=eta, guidance_param=guidance)

    def predict(obs: torch.Tensor, num_samples: int, *, future: torch.Tensor) -> torch.Tensor:
        return sampler.predict_past(obs, num_samples, pred_length=future.shape[1])

    noise = str(m.get("noise", "isotropic"))
    method = f"MDM-{noise}"
    return WindowPredictor(predict, requires_future=True), skeleton, spec.pose_box_size, ckpt, method


def hmp_predictor(cfg: DictConfig, device: torch.device) -> tuple[Callable, Any, float, Path, str]:
    """Registry hook of ``eval.py`` for an MDM checkpoint (``condition=past``)."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint

    if not cfg.get("checkpoint_path"):
        raise ConfigError("checkpoint_path=<MDM run folder or checkpoint> is required")
    return build_mdm_predictor(cfg, resolve_checkpoint(cfg.checkpoint_path), device)
