"""Stage 1 trainer: the recurrent static-graph autoencoder on PyTorch-Ignite (spec models_training §3.5, §7).

Per step: draw a horizon ``ph`` (curriculum + random horizon), truncate the future to ``ph`` frames, encode it,
decode ``ph`` frames from the last two observed frames, L1 pose loss, AdamW (amsgrad) with gradient clipping.
Epochs are ``num_iter_perepoch`` iterations long (official), the LR follows ``ExponentialLRSchedulerWarmup``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.checkpoints.format import make_meta
from skeleton_diffusion.training.checkpointing import CheckpointSaver, retention_from_config
from skeleton_diffusion.training.visual_logging import log_prediction_visuals
from skeleton_diffusion.training.launch import RunSetup, average_gradients, build_train_loader, launch, lr_scheduler_from_config, resume_run_and_summarise, seeded_device, setup_run

_log = logging.getLogger(__name__)


class AutoencodeStep(nn.Module):
    """``forward(y, past, ph) -> ŷ``: the training computation as one module call (so DDP can wrap it)."""

    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, y: Tensor, past: Tensor, ph: int) -> Tensor:
        return self.autoencoder.autoencode(y, past, ph=ph, compute_past_embedding=False)[0]


def dataset_kwargs(cfg: DictConfig, skeleton: Any) -> dict[str, Any]:
    return dict(obs_length=int(cfg.model.obs_length), pred_length=int(cfg.model.pred_length),
                pose_box_size=float(cfg.task.pose_box_size), skeleton=skeleton,
                dataset_main_path=cfg.dataset_main_path)


@torch.no_grad()
def validate_autoencoder(model: nn.Module, loader: Any, device: torch.device, pose_box_size: float,
                         pred_length: int, max_batches: int | None = None) -> dict[str, float]:
    """Full-horizon reconstruction metrics in metres: Loss (input space), ADE, FDE, MPJPE_AVG (official table mean)."""
    from skeleton_diffusion.metrics.validation import mpjpe_per_frame, mpjpe_table

    model.eval()
    tot: dict[str, float] = {}
    curve_sum: Tensor | None = None
    n = 0
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        obs, fut = batch[0].to(device), batch[1].to(device)
        pred = model.autoencode(fut, obs, ph=pred_length, compute_past_embedding=False)[0]
        b = obs.shape[0]
        loss = model.loss(pred, fut, reduction="none")
        pm, fm = pred * pose_box_size, fut * pose_box_size
        disp = torch.linalg.norm((pm - fm).flatten(2), dim=-1)  # [B, T] whole-pose L2 (official ADE)
        curve = mpjpe_per_frame(pm, fm)  # [B, T] mean per-joint error
        tot["Loss"] = tot.get("Loss", 0.0) + float(loss.sum())
        tot["ADE"] = tot.get("ADE", 0.0) + float(disp.mean(-1).sum())
        tot["FDE"] = tot.get("FDE", 0.0) + float(disp[:, -1].sum())
        curve_sum = curve.sum(0) if curve_sum is None else curve_sum + curve.sum(0)
        n += b
    if n == 0:
        return {}
    out = {k: v / n for k, v in tot.items()}
    assert curve_sum is not None
    curve_mean = curve_sum / n
    out["MPJPE_AVG"] = float(mpjpe_table(curve_mean).mean())  # official: mean of the 0.5 s table entries
    return out


def train(setup: RunSetup) -> dict[str, Any]:
    """Train (or resume) the autoencoder described by ``setup.cfg``; returns a summary dict."""
    from ignite.engine import Engine, Events

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.data.registry import build_dataset
    from skeleton_diffusion.methods.skeleton_diffusion.curriculum import HorizonCurriculum
    from skeleton_diffusion.training.engine_utils import attach_standard_handlers
    from skeleton_diffusion.training.loggers import attach_running_average, setup_tensorboard
    from skeleton_diffusion.training.rng import RNGState

    cfg, run = setup.cfg, setup.run
    m = cfg.model
    device, seed = seeded_device(cfg)
    skeleton = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
    train_ds = build_dataset(cfg.dataset, "train", **dataset_kwargs(cfg, skeleton))
    loader, sampler = build_train_loader(train_ds, batch_size=int(m.batch_size), seed=seed,
                                         num_workers=int(m.num_workers), drop_last=True,
                                         pin_memory=device.type == "cuda")
    epoch_length = int(m.num_iter_perepoch) if m.get("num_iter_perepoch") else len(loader)

    model = build_autoencoder(m, skeleton).to(device)
    step_module: nn.Module = AutoencodeStep(model)
    if bool(cfg.get("compile", False)) and device.type == "cuda":
        step_module = torch.compile(step_module)  # type: ignore[assignment]
    optimizer = instantiate(m.optimizer)(model.parameters())
    lr_scheduler = lr_scheduler_from_config(optimizer, m)
    curriculum = HorizonCurriculum(epoch_length, curriculum_it=int(m.curriculum_it or 0),
                                   prediction_horizon_train=int(m.prediction_horizon_train),
                                   ph_min_target=int(m.prediction_horizon_train_min),
                                   ph_min_from_epoch=int(m.prediction_horizon_train_min_from_epoch),
                                   random_prediction_horizon=bool(m.random_prediction_horizon))
    clip = float(m.get("clip_grad_norm", 1.0))

    def train_step(engine: Engine, batch: Any) -> dict[str, Any]:
        step_module.train()
        obs = batch[0].to(device, non_blocking=True)
        fut = batch[1].to(device, non_blocking=True)
        ph = curriculum.sample(engine.state.iteration, engine.state.epoch)
        y = fut[:, :ph]
        pred = step_module(y, obs, ph)
        loss = model.loss(pred, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(model.parameters())
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return {"loss": loss.detach(), "pred_horizon": ph}

    trainer = Engine(train_step)
    rng = RNGState()
    objects = {"model": model, "optimizer": optimizer, "trainer": trainer, "random_states": rng,
               "curriculum": curriculum, "sampler": sampler}
    if lr_scheduler is not None:
        objects["lr_scheduler"] = lr_scheduler
    meta = make_meta("autoencoder", skeleton.name, dataset=str(cfg.dataset.dataset_name),
                     pose_box_size=float(cfg.task.pose_box_size), obs_length=int(m.obs_length),
                     pred_length=int(m.pred_length), config=OmegaConf.to_container(cfg, resolve=True))
    keep_last, keep_every = retention_from_config(cfg, 3)
    periodic = CheckpointSaver(run.checkpoints, objects, meta, n_saved=keep_last, keep_every=keep_every)
    latest = CheckpointSaver(run.checkpoints, objects, meta, n_saved=1, filename_prefix="latest")

    validate = best = None
    if bool(m.if_run_validation):
        valid_ds = build_dataset(cfg.dataset, "valid", **dataset_kwargs(cfg, skeleton))
        valid_loader = build_dataloader(valid_ds, batch_size=int(m.batch_size_eval), shuffle=False)
        train_eval_loader = None
        if "data_loader_train_eval" in cfg.dataset:
            te_ds = build_dataset(cfg.dataset, "train_eval", **dataset_kwargs(cfg, skeleton))
            train_eval_loader = build_dataloader(te_ds, batch_size=int(m.batch_size_eval), shuffle=False)

        def validate(engine: Engine) -> None:  # noqa: F811
            res = validate_autoencoder(model, valid_loader, device, float(cfg.task.pose_box_size),
                                       int(m.prediction_horizon_eval))
            engine.state.metrics.update({f"val_{k}": v for k, v in res.items()})
            if train_eval_loader is not None:
                res_t = validate_autoencoder(model, train_eval_loader, device, float(cfg.task.pose_box_size),
                                             int(m.prediction_horizon_eval), int(m.num_iteration_eval))
                engine.state.metrics.update({f"train_{k}": v for k, v in res_t.items()})
            if tb is not None:
                for k, v in engine.state.metrics.items():
                    if k.startswith(("val_", "train_")):
                        tb.writer.add_scalar(f"validation/{k}", v, engine.state.epoch)
                obs, fut = (x[:1].to(device) for x in next(iter(valid_loader))[:2])
                with torch.no_grad():
                    rec = model.autoencode(fut, obs, ph=fut.shape[1], compute_past_embedding=False)[0]
                pbs = float(cfg.task.pose_box_size)
                log_prediction_visuals(tb, "validation/reconstruction", obs[0] * pbs, rec * pbs, fut[0] * pbs,
                                       skeleton, engine.state.epoch, fps=float(cfg.dataset.fps))
            _log.info("epoch %d validation: %s", engine.state.epoch,
                      ", ".join(f"{k}={v:.4f}" for k, v in res.items()))

        best = CheckpointSaver(run.checkpoints, objects, meta, n_saved=int(m.get("keep_best_n", 20)),
                               score_fn=lambda e: -e.state.metrics["val_MPJPE_AVG"], score_name="val_mpjpe",
                               update_last=False)

    tb = setup_tensorboard(run.tb, trainer, optimizer, model=model, norms_every=100)
    attach_running_average(trainer)
    attach_standard_handlers(
        trainer, seed=seed, lr_scheduler=lr_scheduler, curriculum=curriculum, sampler=sampler, nan_guard=True,
        validate=validate, eval_every=int(m.eval_frequency) if validate else None, best_checkpoint=best,
        checkpoint=periodic, save_every=int(m.save_frequency), final_checkpoint=True, tb_logger=tb,
        progress=bool(cfg.get("progress", True)), progress_metrics=["Loss"], optimizer=optimizer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, latest)

    return resume_run_and_summarise(trainer, setup, objects, stage="autoencoder", skeleton=skeleton.name,
                                    device=device, loader=loader, max_epochs=int(m.num_epochs),
                                    epoch_length=epoch_length, trained=model, final_saver=periodic)


def _worker(local_rank: int, cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    return train(setup_run(cfg, overrides))


def main(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``train_autoencoder.py``.

    ``overrides``: command-line overrides re-applied to a resumed run's saved config (default: Hydra's)."""
    result = launch(_worker, cfg, overrides)
    if result and result.get("run_dir"):
        print(f"\nautoencoder run: {result['run_dir']}\nfinal checkpoint: {result['checkpoint']}")
    return result
