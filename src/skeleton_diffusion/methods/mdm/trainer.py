"""MDM trainer: motion-space diffusion (no autoencoder stage) on the shared Ignite pieces.

``python train_diffusion.py model=mdm dataset=<ds> [condition=past|action|text] [debug=mdm]`` reaches :func:`main`
through the method registry. The loop is the shared one (:mod:`skeleton_diffusion.training.motion`,
:func:`~skeleton_diffusion.training.launch.setup_run` run folders and resume, checkpoints, EMA, TensorBoard,
``ignite.distributed``); only the model builder, the step function and the validation are MDM's.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from skeleton_diffusion.training.launch import RunSetup, average_gradients, build_train_loader, lr_scheduler_from_config, resume_run_and_summarise, seeded_device
from skeleton_diffusion.methods.mdm.build import build_mdm, build_mdm_network  # noqa: F401  (re-exported)
from skeleton_diffusion.training.motion import (
    MDMSpec,
    build_text_encoder,
    checkpoint_objects,
    condition_cfg,
    launch_motion_trainer,
    prepare_batch,
    spec_and_data,
)

_log = logging.getLogger(__name__)


def train(setup: RunSetup) -> dict[str, Any]:
    """Train (or resume) MDM as configured in ``setup.cfg``; returns the run summary."""
    from ignite.engine import Engine

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.data.windows.generation import collate_generation
    from skeleton_diffusion.diffusion.motion_space import foot_indices, mdm_loss
    from skeleton_diffusion.checkpoints.format import make_meta
    from skeleton_diffusion.training.checkpointing import CheckpointSaver, retention_from_config
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
    from skeleton_diffusion.training.checkpointing import CheckpointSaver

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


def main(cfg: DictConfig, overrides: Optional[list[str]] = None) -> dict[str, Any]:
    """Entry point for ``train_diffusion.py model=mdm``."""
    return launch_motion_trainer(train, cfg, overrides, "MDM")
