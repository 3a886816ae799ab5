"""Load a trained SkeletonDiffusion model and predict futures for your own observations.

    from skeleton_diffusion.methods.registry import load_model      # any method's run; SkeletonDiffusion here
    predictor = load_model("output/hmp/amass/diffusion/<run>")            # run folder or checkpoint file
    futures = predictor.predict(obs, num_samples=50, seed=0)                # obs: [T_obs, J, 3] metres
    # futures: [B, S, T_pred, J, 3] metres, same joint order as obs; the hip trajectory is held at the last
    # observed hip position (the model predicts hip-relative poses).

Observations are in the dataset's joint order with the root (hip) joint included, exactly like the processed
data (see README "Joint orders"). Checkpoints are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig

from skeleton_diffusion.checkpoints.format import checkpoint_config, resolve_checkpoint
from skeleton_diffusion.methods.skeleton_diffusion.pipeline import SkeletonDiffusion
from skeleton_diffusion.skeletons.skeleton import Skeleton
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import CheckpointError
from skeleton_diffusion.utils.io import safe_torch_load




def checkpoint_skeleton(meta: dict, skeleton_name: str, path: Path | str = "<checkpoint>") -> Skeleton:
    """The skeleton a checkpoint was trained on: its config's ``skeleton_name`` when that resolves, else the
    definition stored in ``meta['skeleton_def']`` (so a checkpoint of a file-defined skeleton loads anywhere).
    Refuses a config skeleton whose joint order differs from ``meta['joint_names']`` (H17)."""
    from skeleton_diffusion.skeletons.formats.files import describe_mismatch, skeleton_from_dict
    from skeleton_diffusion.skeletons.lookup import register_skeleton

    skeleton_name = str(skeleton_name)
    try:
        skeleton = get_skeleton(skeleton_name)
    except ValueError:
        if not isinstance(meta.get("skeleton_def"), dict):
            raise
        skeleton = register_skeleton(skeleton_from_dict(meta["skeleton_def"], source=str(path)), skeleton_name)
    names = meta.get("joint_names")
    if names is not None and tuple(names) != tuple(skeleton.joint_names):
        raise CheckpointError(describe_mismatch(f"checkpoint '{path}'", list(names),
                                                f"its config's skeleton_name={skeleton_name}", skeleton))
    return skeleton


def build_from_checkpoint(path: str | Path, device: str | torch.device = "auto", *,
                          use_ema: bool = False) -> tuple[SkeletonDiffusion, DictConfig, Skeleton]:
    """Rebuild :class:`SkeletonDiffusion` from a diffusion checkpoint (self-contained: it holds the frozen
    autoencoder and the full config). ``use_ema`` loads the EMA weights instead of the online ones (the
    official evaluation uses the online ``model`` weights)."""
    from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder, build_diffusion
    from skeleton_diffusion.checkpoints.format import load_state_strict, model_state

    path = resolve_checkpoint(path)
    dev = resolve_device(device)
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"'{path}' is not a checkpoint dictionary")
    meta = ckpt.get("meta") or {}
    if meta.get("stage") not in (None, "diffusion"):
        raise CheckpointError(f"'{path}' is a {meta.get('stage')!r} checkpoint; prediction and evaluation need a "
                              "diffusion checkpoint (train one with train_diffusion.py)")
    cfg = checkpoint_config(ckpt, path)
    if "autoencoder" not in cfg:
        raise CheckpointError(f"the config of '{path}' has no 'autoencoder' section; is it a diffusion run?")
    ae_cfg = cfg.autoencoder
    skeleton = checkpoint_skeleton(meta, ae_cfg.dataset.get("skeleton_name") or ae_cfg.dataset.dataset_name, path)
    ae = build_autoencoder(ae_cfg.model, skeleton)
    ae_state = ckpt.get("autoencoder")
    if ae_state is None:  # older layout: load from the recorded autoencoder checkpoint
        ae_path = cfg.get("autoencoder_checkpoint")
        if not ae_path or not Path(ae_path).is_file():
            raise CheckpointError(f"'{path}' holds no autoencoder weights and its autoencoder checkpoint "
                                  f"'{ae_path}' is missing")
        ae_state = safe_torch_load(ae_path)["model"]
    load_state_strict(ae, ae_state, path, "autoencoder weights")
    diffusion = build_diffusion(cfg.model, cfg.get("cov_matrix"), skeleton, latent_size=int(ae_cfg.model.latent_size))
    state = model_state(ckpt, path, use_ema)
    load_state_strict(diffusion, state, path, "diffusion weights")
    model = SkeletonDiffusion(ae, diffusion, pose_box_size=float(ae_cfg.task.pose_box_size),
                              obs_length=int(ae_cfg.model.obs_length), pred_length=int(ae_cfg.model.pred_length))
    model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, cfg, skeleton


@dataclass
class Predictor:
    """A loaded model plus everything needed to go from metres to futures in metres."""

    model: SkeletonDiffusion
    config: DictConfig
    skeleton: Skeleton
    device: torch.device
    checkpoint: Path

    @property
    def obs_length(self) -> int:
        return self.model.obs_length

    @property
    def pred_length(self) -> int:
        return self.model.pred_length

    @property
    def fps(self) -> float:
        return float(self.config.autoencoder.dataset.fps)

    @torch.no_grad()
    def predict(self, obs: Any, num_samples: int = 50, seed: Optional[int] = 0, *,
                pred_length: Optional[int] = None, allow_longer: bool = False,
                return_numpy: bool = True, joint_names: Optional[Any] = None,
                sampling_precision: str = "fp32") -> Any:
        """Sample futures for ``obs`` ``(T_obs, J, 3)`` or ``(B, T_obs, J, 3)`` metres (root included).

        Returns ``(B, S, T_pred, J, 3)`` metres in the same joint order: predicted hip-relative poses placed at
        the last observed root position (the root itself stays there). ``seed`` makes sampling reproducible
        (a private generator; the global RNG is untouched); ``None`` uses the global RNG. ``joint_names``: the
        observation's joint order, if known; a different order than the model's skeleton is refused.
        ``sampling_precision='bf16'`` runs the denoiser's products in bfloat16 (faster on CPUs with AVX512-BF16 /
        AMX and on GPUs; samples differ from the float32 ones at the 1e-3 level).
        """
        from skeleton_diffusion.methods.skeleton_diffusion.pipeline import network_dtype

        from skeleton_diffusion.representations.hmp import to_input_space
        from skeleton_diffusion.tasks.hmp.input_checks import validate_observation

        if joint_names is not None:
            from skeleton_diffusion.tasks.hmp.input_checks import check_joint_names

            check_joint_names(joint_names, self.skeleton, "the observation")
        x = validate_observation(obs, self.skeleton, self.obs_length, allow_longer=allow_longer)  # [B,T,J,3]
        x = torch.as_tensor(x, dtype=torch.float32)
        x_in = to_input_space(x, self.model.pose_box_size).to(self.device)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed))
        pred = self.model.predict(x_in, num_samples, pred_length=pred_length, generator=gen,
                                  network_dtype=network_dtype(sampling_precision))  # [B,S,T,N,3]
        pred = (pred * self.model.pose_box_size).cpu()
        root = x[:, -1, 0].view(x.shape[0], 1, 1, 1, 3)  # last observed hip position
        full = torch.cat([torch.zeros_like(pred[..., :1, :]), pred], dim=-2) + root
        return full.numpy() if return_numpy else full


def load_run(checkpoint_or_run_dir: str | Path, device: str | torch.device = "auto", *,
             use_ema: bool = False, cpu_keep_freed_memory: bool = True) -> Predictor:
    """Registry hook: a SkeletonDiffusion diffusion checkpoint (file or run folder) -> :class:`Predictor`. Load any
    method's run with :func:`skeleton_diffusion.methods.registry.load_model`. On CPU, ``cpu_keep_freed_memory``
    applies :func:`~skeleton_diffusion.utils.cpu_allocator.keep_freed_cpu_memory`."""
    path = resolve_checkpoint(checkpoint_or_run_dir)
    dev = resolve_device(device)
    if dev.type == "cpu":  # as training and eval.py: freed tensor memory is reused instead of page-faulted back
        from skeleton_diffusion.utils.cpu_allocator import keep_freed_cpu_memory

        keep_freed_cpu_memory(cpu_keep_freed_memory)
    model, cfg, skeleton = build_from_checkpoint(path, dev, use_ema=use_ema)
    return Predictor(model=model, config=cfg, skeleton=skeleton, device=dev, checkpoint=path)


def hmp_predictor(cfg: DictConfig, device: torch.device) -> tuple[Any, Any, float, Path, str]:
    """Registry hook of ``eval.py`` for a SkeletonDiffusion checkpoint: ``(predict_fn, skeleton, pose_box_size,
    checkpoint, "SkeletonDiffusion")``; the predictor draws its noise per window (``noise_seeding``)."""
    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import network_dtype
    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.tasks.base import WindowPredictor
    from skeleton_diffusion.tasks.hmp.protocol import check_processed_joint_names, noise_seeding, window_generators
    from skeleton_diffusion.utils.errors import ConfigError

    if not cfg.get("checkpoint_path"):
        raise ConfigError("checkpoint_path=<diffusion checkpoint or run folder> is required "
                          "(or method_specs=zero_velocity for the baseline)")

    ckpt = resolve_checkpoint(cfg.checkpoint_path)
    model, train_cfg, skeleton = build_from_checkpoint(ckpt, device, use_ema=bool(cfg.get("use_ema_weights", False)))
    data_skel = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
    if data_skel.joint_names != skeleton.joint_names:
        from skeleton_diffusion.skeletons.formats.files import describe_mismatch

        raise ConfigError(describe_mismatch(f"the checkpoint '{ckpt}'", skeleton, f"dataset={cfg.dataset.dataset_name}",
                                            data_skel)
                          + "; evaluate it on a dataset with the same joints (3dpw works zero-shot with AMASS "
                          "models), or across skeletons with evaluation/cross_skeleton.py and a joint map")
    check_processed_joint_names(cfg, skeleton)
    obs_len = int(cfg.task.history_sec * cfg.dataset.fps)
    if obs_len != model.obs_length:
        raise ConfigError(f"dataset {cfg.dataset.dataset_name} gives {obs_len} observed frames "
                          f"({cfg.task.history_sec} s at {cfg.dataset.fps} fps) but the model was trained with "
                          f"{model.obs_length}")

    seeding, dtype = noise_seeding(cfg), network_dtype(cfg.get("sampling_precision", "fp32"))

    def predict(obs: torch.Tensor, num_samples: int, *, future: torch.Tensor, extra: Any = None,
                seed: int | None = None) -> torch.Tensor:
        gen = window_generators(seeding, seed, extra, num_samples, obs.shape[0])
        return model.predict(obs, num_samples, pred_length=future.shape[1], generator=gen, network_dtype=dtype)

    # future: only its horizon is read (long-term uses a longer one); extra/seed: per-window noise
    return WindowPredictor(predict, requires_future=True, requires_extra=True, requires_seed=True,
                           per_window_noise=seeding == "per_window"), skeleton, model.pose_box_size, ckpt, "SkeletonDiffusion"


NOISE_SEEDING = ("per_window", "global")
