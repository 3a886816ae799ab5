"""MDM trainer: motion-space diffusion (no autoencoder stage) on the shared Ignite pieces.

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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from skeleton_diffusion.skeletons.skeleton import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.training.launch import RunSetup, average_gradients, build_train_loader, launch, lr_scheduler_from_config, resume_run_and_summarise, seeded_device, setup_run

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
    from skeleton_diffusion.methods.skeleton_diffusion.predictor import checkpoint_config, resolve_checkpoint
    from skeleton_diffusion.skeletons.skeleton import get_skeleton
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


def train(setup: RunSetup) -> dict[str, Any]:
    """Train (or resume) MDM as configured in ``setup.cfg``; returns the run summary."""
    from ignite.engine import Engine

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.data.windows.generation import collate_generation
    from skeleton_diffusion.diffusion.motion_space import foot_indices, mdm_loss
    from skeleton_diffusion.checkpoints.format import CheckpointSaver, make_meta, retention_from_config
    from skeleton_diffusion.training.ema import ema_from_config
    from skeleton_diffusion.training.engine_utils import attach_standard_handlers
    from skeleton_diffusion.training.loggers import attach_running_average, setup_tensorboard

    cfg, run = setup.cfg, setup.run
    m = cfg.model
    cond = condition_cfg(cfg)
    device, seed = seeded_device(cfg)
    spec, skeleton, train_ds = spec_and_data(cfg, "train")
    text_encoder = None
    if spec.mode == "text":
        captions = [c for caps in train_ds.texts for c in caps]
        text_encoder = build_text_encoder(cond, captions).to(device)
    if text_encoder is not None:
        spec.text_dim = int(text_encoder.dim)
    diffusion = build_mdm(cfg, spec, skeleton).to(device)
    trainable = nn.ModuleDict({"diffusion": diffusion})
    if text_encoder is not None and bool(getattr(text_encoder, "trainable", False)):
        trainable["text_encoder"] = text_encoder

    if spec.mode == "past":
        loader, sampler = build_train_loader(train_ds, batch_size=int(m.batch_size), seed=seed,
                                             num_workers=int(m.num_workers), drop_last=True,
                                             pin_memory=device.type == "cuda")
    else:
        loader, sampler = build_train_loader(train_ds, batch_size=int(m.batch_size), seed=seed,
                                             num_workers=int(m.num_workers), drop_last=True)
        loader = build_dataloader(train_ds, batch_size=loader.batch_size, shuffle=False, sampler=sampler,
                                  drop_last=True, num_workers=int(m.num_workers), seed=seed + 1,
                                  collate_fn=collate_generation)
    epoch_length = int(m.num_iter_perepoch) if m.get("num_iter_perepoch") else len(loader)
    optimizer = instantiate(m.optimizer)(trainable.parameters())
    ema = ema_from_config(diffusion, m)
    lr_scheduler = lr_scheduler_from_config(optimizer, m)
    max_norm = float(m.get("max_grad_norm", 0.0))
    feet = foot_indices(skeleton.node_names if spec.representation == "hmp" else skeleton.joint_names)
    loss_kw = dict(pose_box_size=spec.pose_box_size, lambda_pos=float(m.lambda_pos), lambda_vel=float(m.lambda_vel),
                   lambda_fc=float(m.lambda_fc), feet=feet, fc_threshold=float(m.fc_threshold))

    def train_step(engine: Engine, batch: Any) -> dict[str, Any]:
        trainable.train()
        x0, x_cond, fmask = prepare_batch(batch, spec, device, text_encoder)
        terms = mdm_loss(diffusion, x0, x_cond=x_cond, frame_mask=fmask, **loss_kw)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        average_gradients(trainable.parameters())
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable.parameters(), max_norm)
        optimizer.step()
        return {k: v.detach() for k, v in terms.items()}

    trainer = Engine(train_step)
    objects = checkpoint_objects(diffusion, optimizer, trainer, sampler,
                                 text_encoder=text_encoder if "text_encoder" in trainable else None,
                                 ema=ema, lr_scheduler=lr_scheduler)
    meta = make_meta("diffusion", skeleton.name, method="mdm", dataset=str(cfg.dataset.dataset_name),
                     pose_box_size=spec.pose_box_size, obs_length=spec.obs_length, pred_length=spec.num_frames,
                     mdm_spec=dict(spec.__dict__), config=OmegaConf.to_container(cfg, resolve=True))
    keep_last, keep_every = retention_from_config(cfg, 1)
    periodic = CheckpointSaver(run.checkpoints, objects, meta, n_saved=keep_last, keep_every=keep_every)

    validate = best = None
    tb = None
    if bool(m.if_run_validation) and spec.mode == "past":
        validate, best = _past_validation(cfg, spec, skeleton, diffusion, ema, device, run, objects, meta,
                                          lambda: tb)
    tb = setup_tensorboard(run.tb, trainer, optimizer, model=diffusion, norms_every=100)
    attach_running_average(trainer)
    attach_standard_handlers(
        trainer, seed=seed, lr_scheduler=lr_scheduler, sampler=sampler, nan_guard=True, ema=ema,
        validate=validate, eval_every=int(m.eval_frequency) if validate else None, best_checkpoint=best,
        checkpoint=periodic, save_every=1, final_checkpoint=True, tb_logger=tb,
        progress=bool(cfg.get("progress", True)), progress_metrics=["Loss"])
    return resume_run_and_summarise(trainer, setup, objects, stage="diffusion", skeleton=skeleton.name,
                                    device=device, loader=loader, max_epochs=int(m.num_epochs),
                                    epoch_length=epoch_length, trained=diffusion, final_saver=periodic)


def _past_validation(cfg: DictConfig, spec: MDMSpec, skeleton: Any, diffusion: nn.Module, ema: Any,
                     device: torch.device, run: Any, objects: dict, meta: dict, get_tb: Any) -> tuple[Any, Any]:
    """Validation (EMA weights; ADE/FDE/APD on the valid split) and the best-by-ADE checkpoint saver."""
    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.tasks.hmp.evaluator import evaluate
    from skeleton_diffusion.methods.mdm.predictor import MDMSampler
    from skeleton_diffusion.checkpoints.format import CheckpointSaver

    m = cfg.model
    _, _, valid_ds = spec_and_data(cfg, "valid")
    valid_loader = build_dataloader(valid_ds, batch_size=int(m.batch_size_eval), shuffle=False)

    def validate(engine: Any) -> None:
        model = ema.ema_model if ema is not None else diffusion
        model.eval()
        smp = MDMSampler(model, spec, steps=m.get("sampling_steps"), eta=float(m.get("sampling_eta", 1.0)),
                         guidance_param=float(condition_cfg(cfg).get("guidance_param", 1.0)))
        res = evaluate(lambda obs, n: smp.predict_past(obs, n), valid_loader, skeleton, spec.pose_box_size,
                       stats_mode="deterministic", num_samples=int(m.num_prob_samples), device=device,
                       progress=False)
        metrics = res.get("metrics", res)
        engine.state.metrics.update({f"val_{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        tb = get_tb()
        if tb is not None:
            for k, v in engine.state.metrics.items():
                if k.startswith("val_"):
                    tb.writer.add_scalar(f"validation/{k[4:]}", v, engine.state.epoch)

    best = CheckpointSaver(run.checkpoints, objects, meta, n_saved=int(m.get("keep_best_n", 3)),
                           score_fn=lambda e: -e.state.metrics["val_ADE"], score_name="val_ade", update_last=False)
    return validate, best


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


def main(cfg: DictConfig, overrides: Optional[list[str]] = None) -> dict[str, Any]:
    """Entry point for ``train_diffusion.py model=mdm``."""
    return launch_motion_trainer(train, cfg, overrides, "MDM")
