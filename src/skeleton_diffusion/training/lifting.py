"""Trainer of the 2D->3D lifting methods (``train_lifting.py``): supervised, DiffPose, DiffHPE (official and ours).

The model and its loss come from the method: ``model.lifter._target_`` builds an ``nn.Module`` offering
``training_loss(pose_2d, mask, pose_3d) -> (loss, logs)`` and ``predict(pose_2d, mask, num_samples)``; one with
``prepare_training()`` gets it called once before training (official DiffPose: load the pre-trained GCNpose prior).

Reuses the Ignite pieces of the motion-prediction trainers unchanged: :func:`~.launch.setup_run` (run folder,
resume), :func:`~.launch.launch` (single / multi-process), :func:`~.launch.build_train_loader` (resumable
sampler), :func:`~.launch.lr_scheduler_from_config`, :func:`~.engine_utils.attach_standard_handlers` (reseeding,
NaN guard, EMA, checkpoints, TensorBoard, progress) and :func:`~.launch.resume_run_and_summarise`.

Per step: (optionally) corrupt the 2D window (``model.train_occlusion``: ``none`` or DiffHPE's ``mixed``
occlusions, :mod:`skeleton_diffusion.data.augment.corruption`), ``loss = model.training_loss(2D, mask, 3D)``, Adam,
gradient clipping, EMA update.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from skeleton_diffusion.data.augment.corruption import corrupt_2d
from skeleton_diffusion.data.windows.lifting import LiftingData, LiftingWindows, load_lifting
from skeleton_diffusion.metrics.lifting import symmetric_bone_pairs
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.config.compat import upgrade_targets
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.checkpoints.format import make_meta
from skeleton_diffusion.training.checkpointing import CheckpointSaver, retention_from_config
from skeleton_diffusion.training.launch import RunSetup, average_gradients, build_train_loader, launch, lr_scheduler_from_config, resume_run_and_summarise, seeded_device, setup_run

_log = logging.getLogger(__name__)

__all__ = ["lifting_file", "load_lifting_dataset", "build_lifting_model", "train", "main"]


def lifting_file(dataset_cfg: DictConfig, dataset_main_path: str | Path) -> Path:
    """Path of the dataset's lifting file (``dataset.lifting_file``, relative to ``dataset_main_path``)."""
    if not dataset_cfg.get("lifting_file"):
        raise ConfigError(f"dataset={dataset_cfg.get('dataset_name')} is not a lifting dataset (no 'lifting_file'); "
                          "use dataset=synthetic_lifting or dataset=h36m_lifting")
    p = Path(str(dataset_cfg.lifting_file))
    return p if p.is_absolute() else Path(str(dataset_main_path)) / p


def load_lifting_dataset(dataset_cfg: DictConfig, dataset_main_path: str | Path) -> LiftingData:
    data = load_lifting(lifting_file(dataset_cfg, dataset_main_path), str(dataset_cfg.get("create_command", "")))
    want = str(dataset_cfg.get("skeleton_name", data.skeleton))
    if data.skeleton != want:
        raise ConfigError(f"lifting file has skeleton {data.skeleton!r}, dataset config expects {want!r}")
    return data


def build_lifting_model(model_cfg: DictConfig, data: LiftingData) -> torch.nn.Module:
    """Instantiate ``model.lifter`` (``build_lifter``) with the skeleton and the data's per-joint 2D noise."""
    skel = get_skeleton(data.skeleton)
    if skel.joint_names != data.joint_names:
        raise ConfigError(f"lifting file joints {data.joint_names} differ from skeleton {skel.name}")
    return instantiate(model_cfg.lifter, node_edges=[list(e) for e in skel.node_limbs], num_joints=skel.num_joints,
                       limbs=[list(e) for e in skel.limbs],
                       sym_pairs=[list(p) for p in symmetric_bone_pairs(skel.joint_names, skel.limbs)],
                       joint_noise_std=data.joint_noise_std.tolist(), _convert_="all")


def train(setup: RunSetup) -> dict[str, Any]:
    """Train (or resume) the lifting model of ``setup.cfg``; returns the run summary."""
    from ignite.engine import Engine

    from skeleton_diffusion.training.ema import ema_from_config
    from skeleton_diffusion.training.engine_utils import attach_standard_handlers
    from skeleton_diffusion.training.loggers import attach_running_average, setup_tensorboard
    from skeleton_diffusion.training.rng import RNGState

    cfg, run = setup.cfg, setup.run
    m = cfg.model
    device, seed = seeded_device(cfg)
    data = load_lifting_dataset(cfg.dataset, cfg.dataset_main_path)
    model = build_lifting_model(m, data)
    if hasattr(model, "prepare_training"):   # official models: load a pre-trained prior / the error statistics
        model.prepare_training()
    model = model.to(device)
    frames = int(m.lifter.frames)
    train_ds = LiftingWindows(data, "train", window=frames, stride=int(m.get("train_stride", 1)))
    loader, sampler = build_train_loader(train_ds, batch_size=int(m.batch_size), seed=seed,
                                         num_workers=int(m.get("num_workers", 0)), drop_last=True)
    epoch_length = int(m.num_iter_perepoch) if m.get("num_iter_perepoch") else len(loader)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(m.lr),
                                 weight_decay=float(m.get("weight_decay", 0.0)), eps=float(m.get("adam_eps", 1e-8)))
    lr_scheduler = lr_scheduler_from_config(optimizer, m)
    ema = ema_from_config(model, m)
    occlusion = str(m.get("train_occlusion", "none"))
    max_norm = float(m.get("max_grad_norm", 1.0))
    joint_names = data.joint_names

    def train_step(engine: Engine, batch: Any) -> dict[str, Any]:
        model.train()
        p2, p3 = batch[0].to(device), batch[1].to(device)
        p2, mask = corrupt_2d(p2, occlusion, joint_names)
        loss, logs = model.training_loss(p2, mask, p3)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(model.parameters())
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        return {"loss": loss.detach(), **logs}

    trainer = Engine(train_step)
    objects: dict[str, Any] = {"model": model, "optimizer": optimizer, "trainer": trainer,
                               "random_states": RNGState(), "sampler": sampler}
    if ema is not None:
        objects["ema"] = ema
    if lr_scheduler is not None:
        objects["lr_scheduler"] = lr_scheduler
    meta = make_meta("lifting", data.skeleton, dataset=str(cfg.dataset.dataset_name), method=str(m.get("method") or m.lifter.method),
                     frames=frames, config=OmegaConf.to_container(cfg, resolve=True))
    keep_last, keep_every = retention_from_config(cfg, 1)  # checkpoints.{keep_last,keep_every} (README "Checkpoints")
    periodic = CheckpointSaver(run.checkpoints, objects, meta, n_saved=keep_last, keep_every=keep_every)
    tb = setup_tensorboard(run.tb, trainer, optimizer, model=model, norms_every=100)
    attach_running_average(trainer)
    attach_standard_handlers(trainer, seed=seed, lr_scheduler=lr_scheduler, sampler=sampler, nan_guard=True,
                             ema=ema, checkpoint=periodic, save_every=int(m.get("save_every", 1)),
                             final_checkpoint=True, tb_logger=tb, progress=bool(cfg.get("progress", True)),
                             progress_metrics=["Loss"])
    return resume_run_and_summarise(trainer, setup, objects, stage="lifting", skeleton=data.skeleton, device=device,
                                    loader=loader, max_epochs=int(m.num_epochs), epoch_length=epoch_length,
                                    trained=model, final_saver=periodic)


def _worker(local_rank: int, cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    return train(setup_run(cfg, overrides))


def main(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``train_lifting.py``."""
    result = launch(_worker, cfg, overrides)
    if result and result.get("run_dir"):
        print(f"\nlifting run: {result['run_dir']}\nfinal checkpoint: {result['checkpoint']}")
    return result


class LiftingRun:
    """A trained lifting model (ours) ready to lift: ``lift(keypoints_2d [B, F, J, 2], num_samples, mask=None)``
    -> ``[B, S, F, J, 3]`` root-relative metres (the :class:`~skeleton_diffusion.tasks.base.Lifter` contract)."""

    def __init__(self, model: torch.nn.Module, config: DictConfig, checkpoint: Path, device: torch.device):
        self.model, self.config, self.checkpoint, self.device = model, config, checkpoint, device

    @torch.no_grad()
    def lift(self, keypoints_2d: torch.Tensor, num_samples: int = 1, mask: torch.Tensor | None = None,
             **options: Any) -> torch.Tensor:
        x = torch.as_tensor(keypoints_2d, dtype=torch.float32, device=self.device)
        m = torch.ones(x.shape[:-1], dtype=torch.bool, device=self.device) if mask is None else mask.to(self.device)
        return self.model.predict(x, m, num_samples=num_samples, **options)


def load_lifting_run(path: str | Path, device: Any = "auto", *, use_ema: bool = False,
                     expect_method: str | None = None) -> LiftingRun:
    """One of our lifting run folders / checkpoints -> :class:`LiftingRun` (the network rebuilt from its config and
    the run's lifting file for the per-joint 2D noise)."""
    from skeleton_diffusion.checkpoints.format import load_state_strict, model_state, resolve_checkpoint
    from skeleton_diffusion.utils.device import resolve_device
    from skeleton_diffusion.utils.io import safe_torch_load

    ckpt_path = resolve_checkpoint(path, hint="train one with `python train_lifting.py method=<...>`")
    ckpt = safe_torch_load(ckpt_path)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("stage") != "lifting" or "config" not in meta:
        raise ConfigError(f"'{ckpt_path}' is not a lifting checkpoint of ours (no meta.stage == 'lifting')")
    cfg = upgrade_targets(OmegaConf.create(meta["config"]))
    data = load_lifting_dataset(cfg.dataset, cfg.dataset_main_path)
    model = build_lifting_model(cfg.model, data)
    load_state_strict(model, model_state(ckpt, ckpt_path, use_ema=use_ema), ckpt_path, "lifting weights")
    dev = resolve_device(device)
    return LiftingRun(model.to(dev).eval(), cfg, ckpt_path, dev)
