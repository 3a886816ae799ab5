"""Motion-space trainer base shared by MDM and CrossDiff: the condition config, the batch layout, checkpoint
objects, loading a motion-space checkpoint and the launch wrapper. The MDM trainer itself is
:mod:`skeleton_diffusion.methods.mdm.trainer`; CrossDiff's is :mod:`skeleton_diffusion.methods.crossdiff.trainer`.

``python train_diffusion.py model=mdm dataset=<ds> [condition=past|action|text] [debug=mdm]`` dispatches here
from :func:`skeleton_diffusion.methods.skeleton_diffusion.train_diffusion.main` (``model.method == 'mdm'``). The loop is the
shared one: :func:`~.launch.setup_run` run folders and resume, :class:`~.checkpoint.CheckpointSaver`,
:class:`~.ema.ModelEMA`, TensorBoard (:func:`~.loggers.setup_tensorboard`), the progress bar and every other
handler of :func:`~.engine_utils.attach_standard_handlers`, ``ignite.distributed`` via :func:`~.launch.launch`
and :func:`~.launch.average_gradients`. Only the model builder and the step function are MDM-specific.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.training.launch import launch, setup_run

_log = logging.getLogger(__name__)

DEFAULT_CONDITION = {"mode": "past", "representation": "hmp", "cond_mask_prob": 0.1, "guidance_param": 1.0}


@dataclass
class MDMSpec:
    """Everything needed to rebuild an MDM model (stored in the checkpoint ``meta``)."""

    mode: str                  # past | action | text | none
    representation: str        # hmp | trajectory
    num_nodes: int
    num_frames: int            # generated frames T
    obs_length: int            # observed frames (past mode)
    pose_box_size: float
    fps: float
    num_actions: int = 0
    text_dim: int = 0


def condition_cfg(cfg: DictConfig) -> DictConfig:
    """``cfg.condition`` (``configs/condition/*.yaml``), defaulting to ``condition=past``."""
    cond = cfg.get("condition")
    if cond is None:
        cond = OmegaConf.create(DEFAULT_CONDITION)
        with open_dict(cfg):
            cfg.condition = cond
    if str(cond.get("mode")) not in ("past", "action", "text", "none"):
        raise ConfigError(f"condition.mode must be past|action|text|none, got {cond.get('mode')!r}")
    return cond


def build_text_encoder(cond: DictConfig, vocab_texts: Optional[list[str]] = None) -> nn.Module:
    """The pluggable text encoder of ``condition.text_encoder`` (:mod:`skeleton_diffusion.nn.text_encoders`).

    ``name: auto`` takes CLIP when ``clip_path`` is a local folder, else the scratch encoder. The resolved name
    and the scratch vocabulary are written back into ``cond`` so that the saved run config rebuilds it."""
    from pathlib import Path

    from skeleton_diffusion.nn.text_encoders import build_text_encoder as _build

    node = cond.get("text_encoder")
    if node is None:
        raise ConfigError("condition=text needs a condition.text_encoder node (see configs/condition/text.yaml)")
    spec = OmegaConf.to_container(node, resolve=True)
    if spec.get("name", "auto") == "auto":
        clip = spec.get("clip_path")
        spec["name"] = "clip" if clip and Path(str(clip)).is_dir() else "scratch"
    if spec["name"] == "clip" and not spec.get("path"):
        spec["path"] = spec.get("clip_path")
    enc = _build(OmegaConf.create(spec), vocab_texts)
    with open_dict(cond):
        cond.text_encoder.name = spec["name"]
        if spec["name"] == "clip":
            cond.text_encoder.path = spec["path"]
        if hasattr(enc, "vocab"):
            cond.text_encoder.vocab = list(enc.vocab)
    return enc


def load_motion_checkpoint(path: Any, device: Any, use_ema: bool, method: str, build: Any, what: str,
                           with_text: Optional[bool] = None) -> tuple[nn.Module, MDMSpec, DictConfig, Any, Optional[nn.Module], Any, Any]:
    """Load a motion-space checkpoint (MDM or CrossDiff: ``meta.method == method``) frozen, in eval mode.

    ``build(cfg, spec, skeleton)`` makes the network; ``with_text`` also builds the text encoder (its weights from
    the checkpoint when stored; None: when the checkpoint's spec is text-conditioned). Returns ``(model, spec, train config, skeleton, text encoder or None, device,
    resolved checkpoint path)``."""
    from skeleton_diffusion.checkpoints.format import checkpoint_config, resolve_checkpoint
    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.utils.device import resolve_device
    from skeleton_diffusion.utils.errors import CheckpointError
    from skeleton_diffusion.utils.io import safe_torch_load
    from skeleton_diffusion.checkpoints.format import load_state_strict, model_state

    path = resolve_checkpoint(path)
    dev = resolve_device(device)
    ckpt = safe_torch_load(path)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if not (isinstance(meta, dict) and meta.get("method") == method):
        raise CheckpointError(f"'{path}' is not {what} checkpoint (meta.method != '{method}')")
    cfg = checkpoint_config(ckpt, path)
    spec = MDMSpec(**meta["mdm_spec"])
    skeleton = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
    model = build(cfg, spec, skeleton)
    load_state_strict(model, model_state(ckpt, path, use_ema), path, f"{what.split()[-1]} weights")
    text_encoder = None
    if with_text or (with_text is None and spec.mode == "text"):
        text_encoder = build_text_encoder(cfg.condition)
        if "text_encoder" in ckpt:
            load_state_strict(text_encoder, ckpt["text_encoder"], path, "text encoder weights")
    for mod in (model, text_encoder):
        if mod is not None:
            mod.to(dev).eval()
            mod.requires_grad_(False)
    return model, spec, cfg, skeleton, text_encoder, dev, path


def _dataset_cfg(cfg: DictConfig) -> DictConfig:
    if cfg.get("dataset") is None:
        raise ConfigError("model=mdm trains in motion space and needs dataset=<name> (e.g. dataset=synthetic)")
    return cfg.dataset


def spec_and_data(cfg: DictConfig, split: str = "train") -> tuple[MDMSpec, Any, Any]:
    """-> ``(spec, skeleton, dataset)`` for the configured condition and dataset split."""
    cond = condition_cfg(cfg)
    ds_cfg = _dataset_cfg(cfg)
    skeleton = get_skeleton(ds_cfg.get("skeleton_name") or ds_cfg.dataset_name)
    fps = float(ds_cfg.fps)
    pbs = float(cfg.task.pose_box_size)
    mode = str(cond.mode)
    if mode == "past":
        from skeleton_diffusion.data.registry import build_dataset

        obs, pred = int(round(cfg.task.history_sec * fps)), int(round(cfg.task.prediction_horizon_sec * fps))
        ds = build_dataset(ds_cfg, split, obs_length=obs, pred_length=pred, pose_box_size=pbs, skeleton=skeleton,
                           dataset_main_path=cfg.dataset_main_path)
        return MDMSpec(mode, "hmp", skeleton.num_nodes, pred, obs, pbs, fps), skeleton, ds
    from skeleton_diffusion.data.windows.generation import build_generation_dataset

    ds = build_generation_dataset(ds_cfg, split, dataset_main_path=cfg.dataset_main_path,
                                  num_frames=int(cond.get("num_frames", 120)))
    spec = MDMSpec(mode, "trajectory", int(ds.num_joints), int(ds.num_frames), 0, pbs, float(ds.fps),
                   num_actions=len(ds.action_names))
    return spec, skeleton, ds


def prepare_batch(batch: Any, spec: MDMSpec, device: torch.device, text_encoder: Optional[nn.Module] = None
                  ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """A loader batch -> ``(x0 [B, J, T*3], x_cond, frame_mask [B, T] or None)`` in model space."""
    from skeleton_diffusion.diffusion.motion_space import motion_to_x, to_trajectory_space

    if spec.mode == "past":  # HMP batch: (obs, fut, ...) already in input space
        obs = batch[0].to(device, non_blocking=True)
        fut = batch[1].to(device, non_blocking=True)
        return motion_to_x(fut), obs, None
    x0 = motion_to_x(to_trajectory_space(batch["motion"].to(device), spec.pose_box_size))
    mask = batch["mask"].to(device)
    if spec.mode == "action":
        return x0, batch["action"].to(device), mask
    if spec.mode == "text":
        return x0, text_encoder(list(batch["text"])), mask
    return x0, None, mask


def checkpoint_objects(model: nn.Module, optimizer: Any, trainer: Any, sampler: Any, *,
                       text_encoder: Optional[nn.Module] = None, ema: Any = None,
                       lr_scheduler: Any = None) -> dict[str, Any]:
    """What a motion-space run (MDM, CrossDiff) checkpoints and restores on resume: model, optimiser, engine, RNG
    states and sampler position, plus the trained text encoder, EMA and LR scheduler when present."""
    from skeleton_diffusion.training.rng import RNGState

    objects: dict[str, Any] = {"model": model, "optimizer": optimizer, "trainer": trainer,
                               "random_states": RNGState(), "sampler": sampler}
    for name, obj in (("text_encoder", text_encoder), ("ema", ema), ("lr_scheduler", lr_scheduler)):
        if obj is not None:
            objects[name] = obj
    return objects


def _motion_worker(local_rank: int, cfg: DictConfig, train_fn: Any,
                   overrides: Optional[list[str]] = None) -> dict[str, Any]:
    with open_dict(cfg):
        if str(cfg.get("dataset_folder_log_path", "auto")) in ("auto", "None", "null") and cfg.get("dataset"):
            cfg.dataset_folder_log_path = str(cfg.dataset.dataset_name)
    condition_cfg(cfg)
    return train_fn(setup_run(cfg, overrides))


def launch_motion_trainer(train_fn: Any, cfg: DictConfig, overrides: Optional[list[str]], label: str) -> dict[str, Any]:
    """Run a motion-space method's ``train_fn(RunSetup)`` (MDM, CrossDiff) through the shared :func:`launch`
    (single process, ``nproc_per_node`` spawn or torchrun): run folder named after the dataset, condition config
    resolved; prints where the run is."""
    result = launch(_motion_worker, cfg, train_fn, overrides)
    if result and result.get("run_dir"):
        print(f"\n{label} run: {result['run_dir']}\nfinal checkpoint: {result['checkpoint']}")
    return result


