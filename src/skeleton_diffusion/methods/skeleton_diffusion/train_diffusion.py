"""Stage 2 trainer: latent (non)isotropic Gaussian diffusion on a frozen autoencoder (spec models_training §6).

Per step (batch B): ``z_past = tanh(Enc(obs))`` (condition) and ``z = Enc(fut)`` (target) under ``no_grad``;
the best-of-k relaxed diffusion loss (:func:`~skeleton_diffusion.methods.skeleton_diffusion.best_of_k.best_of_k_loss`: all k·B
candidates scored without autograd in bounded chunks, only the winners recomputed with gradients); Adam with
gradient clipping; EMA update. Validation samples with the EMA weights.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder, build_diffusion
from skeleton_diffusion.methods.skeleton_diffusion.pipeline import SkeletonDiffusion
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.utils.io import safe_torch_load
from skeleton_diffusion.checkpoints.format import load_state_strict, make_meta
from skeleton_diffusion.training.checkpointing import CheckpointSaver, retention_from_config
from skeleton_diffusion.training.visual_logging import log_prediction_visuals
from skeleton_diffusion.training.launch import RunSetup, autoencoder_run_config, average_gradients, build_train_loader, launch, lr_scheduler_from_config, resume_run_and_summarise, seeded_device, setup_run

_log = logging.getLogger(__name__)


def draw_for_global_batch(diffusion: nn.Module, z_future: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Timesteps ``[B]`` and noise ``[B*k, N, D]`` for this process's part of the global batch.

    Every process draws the *global* batch's ``t`` and noise in the official order (``randint`` then ``randn``)
    and keeps its rows; process ``r`` of ``W`` holds global samples ``r, r+W, ...`` (the sampler's sharding).
    With one process this is exactly the official draw, and W processes reproduce the single-process run."""
    import ignite.distributed as idist

    world, rank = idist.get_world_size(), idist.get_rank()
    b = z_future.shape[0]
    t = diffusion.sample_timesteps(b * world, z_future.device)
    noise = torch.randn((b * world * k, *z_future.shape[1:]), device=z_future.device, dtype=z_future.dtype)
    if world == 1:
        return t, noise
    noise = noise.view(b * world, k, *z_future.shape[1:])[rank::world].reshape(b * k, *z_future.shape[1:])
    return t[rank::world].contiguous(), noise.contiguous()


def load_frozen_autoencoder(ae_cfg: DictConfig, ckpt_path: Any, device: torch.device) -> nn.Module:
    """Build the autoencoder of ``ae_cfg`` and load ``checkpoint['model']`` (ours or official); frozen, eval."""
    skeleton = get_skeleton(ae_cfg.dataset.get("skeleton_name") or ae_cfg.dataset.dataset_name)
    ae = build_autoencoder(ae_cfg.model, skeleton)
    ckpt = safe_torch_load(ckpt_path)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if isinstance(meta, dict) and meta.get("stage") not in (None, "autoencoder"):
        raise CheckpointError(f"model.pretrained_autoencoder_path '{ckpt_path}' is a {meta.get('stage')!r} "
                              "checkpoint; pass an autoencoder checkpoint (or its run folder)")
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if state is None:
        raise CheckpointError(f"'{ckpt_path}' has no 'model' entry (keys: {sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt)})")
    load_state_strict(ae, state, ckpt_path, "autoencoder weights")
    ae.to(device).eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    return ae


def resolve_autoencoder(cfg: DictConfig) -> DictConfig:
    """Attach the autoencoder's run config (``cfg.autoencoder``) and its checkpoint path, and name the output
    folder after its dataset when ``dataset_folder_log_path=auto``. Idempotent (a resumed config has it)."""
    if "autoencoder" in cfg and cfg.autoencoder is not None and cfg.get("autoencoder_checkpoint"):
        return cfg
    path = cfg.model.get("pretrained_autoencoder_path")
    if not path:
        raise ConfigError("model.pretrained_autoencoder_path is required: the autoencoder run folder or checkpoint "
                          "(train one with `python train_autoencoder.py dataset=<name>`)")
    ae_cfg, ckpt = autoencoder_run_config(path)
    with open_dict(cfg):
        cfg.autoencoder = ae_cfg
        cfg.autoencoder_checkpoint = str(ckpt)
        if str(cfg.get("dataset_folder_log_path", "auto")) in ("auto", "None", "null"):
            cfg.dataset_folder_log_path = str(ae_cfg.dataset.dataset_name)
    return cfg


def build_model(cfg: DictConfig, device: torch.device) -> tuple[SkeletonDiffusion, Any]:
    """Frozen autoencoder + diffusion of a (resolved) diffusion config -> (:class:`SkeletonDiffusion`, skeleton)."""
    ae_cfg = cfg.autoencoder
    skeleton = get_skeleton(ae_cfg.dataset.get("skeleton_name") or ae_cfg.dataset.dataset_name)
    ae = load_frozen_autoencoder(ae_cfg, cfg.autoencoder_checkpoint, device)
    diffusion = build_diffusion(cfg.model, cfg.get("cov_matrix"), skeleton,
                                latent_size=int(ae_cfg.model.latent_size)).to(device)
    model = SkeletonDiffusion(ae, diffusion, pose_box_size=float(ae_cfg.task.pose_box_size),
                              obs_length=int(ae_cfg.model.obs_length), pred_length=int(ae_cfg.model.pred_length))
    return model, skeleton


def train(setup: RunSetup) -> dict[str, Any]:
    """Train (or resume) the latent diffusion of ``setup.cfg``; returns a summary dict."""
    from ignite.engine import Engine

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.data.registry import build_dataset
    from skeleton_diffusion.tasks.hmp.evaluator import evaluate
    from skeleton_diffusion.methods.skeleton_diffusion.best_of_k import best_of_k_loss
    from skeleton_diffusion.training.ema import ema_from_config
    from skeleton_diffusion.training.engine_utils import attach_standard_handlers
    from skeleton_diffusion.training.loggers import attach_running_average, setup_tensorboard
    from skeleton_diffusion.training.rng import RNGState

    cfg, run = setup.cfg, setup.run
    m, ae_cfg = cfg.model, cfg.autoencoder
    if not bool(m.get("diffusion_conditioning", True)):
        raise ConfigError("model.diffusion_conditioning=False is not supported: SkeletonDiffusion is conditioned "
                          "on the observation (the official trainer asserts this too)")
    device, seed = seeded_device(cfg)
    model, skeleton = build_model(cfg, device)
    ae, diffusion = model.autoencoder, model.diffusion
    pose_box_size = float(ae_cfg.task.pose_box_size)
    ds_kw = dict(obs_length=int(ae_cfg.model.obs_length), pred_length=int(ae_cfg.model.pred_length),
                 pose_box_size=pose_box_size, skeleton=skeleton, dataset_main_path=cfg.dataset_main_path)
    train_ds = build_dataset(ae_cfg.dataset, "train", **ds_kw)
    loader, sampler = build_train_loader(train_ds, batch_size=int(m.batch_size), seed=seed,
                                         num_workers=int(m.num_workers), drop_last=True,
                                         pin_memory=device.type == "cuda")
    epoch_length = int(m.num_iter_perepoch) if m.get("num_iter_perepoch") else len(loader)

    optimizer = instantiate(m.optimizer)(diffusion.parameters())
    ema = ema_from_config(diffusion, m)
    lr_scheduler = lr_scheduler_from_config(optimizer, m)
    k = int(m.train_pick_best_sample_among_k)
    space = str(m.similarity_space)
    chunk = m.get("selection_chunk_size", "auto")
    max_norm = float(m.get("max_grad_norm", 1.0))
    ph_eval = int(ae_cfg.model.get("prediction_horizon_eval", ae_cfg.model.pred_length))

    def train_step(engine: Engine, batch: Any) -> dict[str, Any]:
        diffusion.train()
        obs = batch[0].to(device, non_blocking=True)
        fut = batch[1].to(device, non_blocking=True)
        with torch.no_grad():
            z_past, z_future = ae.get_train_embeddings(fut, obs)
        t, noise = draw_for_global_batch(diffusion, z_future, k)
        out = best_of_k_loss(diffusion, ae, z_future, z_past, obs, fut, k, space, pose_box_size=pose_box_size,
                             prediction_horizon=ph_eval, chunk_size=chunk, t=t, noise=noise)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        average_gradients(diffusion.parameters())
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(diffusion.parameters(), max_norm)
        optimizer.step()
        return {"loss": out.loss.detach(), "selected_similarity": out.similarity.gather(
            1, out.selected_idx.view(-1, 1)).mean().detach()}

    trainer = Engine(train_step)
    objects: dict[str, Any] = {"model": diffusion, "optimizer": optimizer, "trainer": trainer,
                               "random_states": RNGState(), "sampler": sampler}
    if ema is not None:
        objects["ema"] = ema
    if lr_scheduler is not None:
        objects["lr_scheduler"] = lr_scheduler
    meta = make_meta("diffusion", skeleton.name, dataset=str(ae_cfg.dataset.dataset_name),
                     pose_box_size=pose_box_size, obs_length=int(ae_cfg.model.obs_length),
                     pred_length=int(ae_cfg.model.pred_length), config=OmegaConf.to_container(cfg, resolve=True))
    # the frozen autoencoder travels with every diffusion checkpoint, so a checkpoint file is self-contained
    ckpt_objects = dict(objects, autoencoder=ae)
    keep_last, keep_every = retention_from_config(cfg, 1)
    periodic = CheckpointSaver(run.checkpoints, ckpt_objects, meta, n_saved=keep_last, keep_every=keep_every)

    validate = best = None
    tb = None
    if bool(m.if_run_validation):
        valid_ds = build_dataset(ae_cfg.dataset, "valid", **ds_kw)
        valid_loader = build_dataloader(valid_ds, batch_size=int(m.batch_size_eval), shuffle=False)
        num_samples = int(m.num_prob_samples)

        def validate(engine: Engine) -> None:  # noqa: F811
            sampler_model = ema.ema_model if ema is not None else diffusion
            sampler_model.eval()
            res = evaluate(lambda obs, n: model.predict(obs, n, diffusion=sampler_model), valid_loader, skeleton,
                           pose_box_size, stats_mode="deterministic", num_samples=num_samples, device=device,
                           progress=False)
            metrics = res.get("metrics", res)
            engine.state.metrics.update({f"val_{k_}": float(v) for k_, v in metrics.items()
                                         if isinstance(v, (int, float))})
            if tb is not None:
                for k_, v in engine.state.metrics.items():
                    if k_.startswith("val_"):
                        tb.writer.add_scalar(f"validation/{k_[4:]}", v, engine.state.epoch)
                obs, fut = (x[:1].to(device) for x in next(iter(valid_loader))[:2])
                pred = model.predict(obs, min(num_samples, 5), diffusion=sampler_model)[0]
                log_prediction_visuals(tb, "validation/samples", obs[0] * pose_box_size, pred * pose_box_size,
                                       fut[0] * pose_box_size, skeleton, engine.state.epoch,
                                       fps=float(ae_cfg.dataset.fps))
            _log.info("epoch %d validation: %s", engine.state.epoch,
                      ", ".join(f"{k_}={v:.4f}" for k_, v in engine.state.metrics.items() if k_.startswith("val_")))

        best = CheckpointSaver(run.checkpoints, ckpt_objects, meta, n_saved=int(m.get("keep_best_n", 10)),
                               score_fn=lambda e: -e.state.metrics["val_ADE"], score_name="val_ade",
                               update_last=False)

    tb = setup_tensorboard(run.tb, trainer, optimizer, model=diffusion, norms_every=100)
    attach_running_average(trainer)
    attach_standard_handlers(
        trainer, seed=seed, lr_scheduler=lr_scheduler, sampler=sampler, nan_guard=True, ema=ema,
        validate=validate, eval_every=int(m.eval_frequency) if validate else None, best_checkpoint=best,
        checkpoint=periodic, save_every=1, final_checkpoint=True, tb_logger=tb,
        progress=bool(cfg.get("progress", True)), progress_metrics=["Loss"], optimizer=optimizer)

    return resume_run_and_summarise(trainer, setup, objects, stage="diffusion", skeleton=skeleton.name,
                                    device=device, loader=loader, max_epochs=int(m.num_epochs),
                                    epoch_length=epoch_length, trained=diffusion, final_saver=periodic)


def _worker(local_rank: int, cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    resuming = cfg.get("resume") not in (None, "", "null", "None") or bool(cfg.get("if_resume_training", False))
    if resuming:  # the saved run config already names its autoencoder
        setup = setup_run(cfg, overrides)
        setup.cfg = resolve_autoencoder(setup.cfg)
    else:
        setup = setup_run(resolve_autoencoder(cfg), overrides)
    return train(setup)


def main(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Stage 2 of SkeletonDiffusion (``train_diffusion.py`` with a SkeletonDiffusion model config; other methods
    reach their own trainers through :func:`skeleton_diffusion.methods.registry.train`).

    ``overrides``: command-line overrides re-applied to a resumed run's saved config (default: Hydra's)."""
    result = launch(_worker, cfg, overrides)
    if result and result.get("run_dir"):
        print(f"\ndiffusion run: {result['run_dir']}\nfinal checkpoint: {result['checkpoint']}")
    return result
