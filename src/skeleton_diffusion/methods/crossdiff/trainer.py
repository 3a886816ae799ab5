"""CrossDiff trainer: 2D/3D cross-diffusion text-to-motion on the MDM stack and the shared Ignite pieces.

    python train_diffusion.py experiment=crossdiff_pre dataset=synthetic [debug=crossdiff]
    python train_diffusion.py experiment=crossdiff_finetune dataset=synthetic model.init_from=<pre run> \
        [model.motion2d.path=<folder of 2D-only clips>] [debug=crossdiff]

``model.method == 'crossdiff'`` is dispatched here from :func:`.diffusion_trainer.main`. Data, text encoder and
model space come from the MDM trainer (:mod:`.mdm_trainer`: ``condition=text``, trajectory representation:
positions minus the first frame's root, ÷ ``pose_box_size``); the 2D motion is the same window projected to a
camera view (:mod:`..data.projection2d`), also ÷ ``pose_box_size``. The loop is the shared one (setup_run,
resume, CheckpointSaver, ModelEMA, TensorBoard, NaN guard, ``ignite.distributed``), as for MDM.

Loss (official ``pretrain`` mode; one ``t`` for both domains): ``w_3d·|m̂(x³ᴰ_t)-x³ᴰ|² + w_2d·|ĵ(x²ᴰ_t)-x²ᴰ|² +
w_m2j·|ĵ(x³ᴰ_t)-x²ᴰ|² + w_j2m·|m̂(x²ᴰ_t)-x³ᴰ|²`` over valid frames. 2D-only clips (``has3d`` False) enter only the
2D→2D term; a batch without any 3D sample never evaluates the 3D output head.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.training.launch import RunSetup, average_gradients, build_train_loader, lr_scheduler_from_config, resume_run_and_summarise
from skeleton_diffusion.training.launch import seeded_device
from skeleton_diffusion.training.motion import (
    build_text_encoder,
    checkpoint_objects,
    condition_cfg,
    launch_motion_trainer,
    spec_and_data,
)

__all__ = ["CrossDiffusion", "build_crossdiff", "crossdiff_loss", "prepare_crossdiff_batch",
           "train", "main"]


def is_crossdiff_checkpoint(ckpt: Any) -> bool:
    """True for a checkpoint dict of ours written by a CrossDiff run (``meta.method == 'crossdiff'``)."""
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    return isinstance(meta, dict) and meta.get("method") == "crossdiff"


class CrossDiffusion(nn.Module):
    """The CrossDiff network with one Gaussian diffusion per domain (same schedule): ``diff3d`` over
    ``[B, J, T*3]``, ``diff2d`` over ``[B, J, T*2]`` (views of ``net``; the weights are saved once)."""

    def __init__(self, net: nn.Module, diff3d: nn.Module, diff2d: nn.Module) -> None:
        super().__init__()
        self.net, self.diff3d, self.diff2d = net, diff3d, diff2d


def build_crossdiff(cfg: DictConfig, spec: Any, skeleton: Any) -> CrossDiffusion:
    """CrossDiff network + its two motion-space diffusions from a composed ``model=crossdiff`` config."""
    from skeleton_diffusion.diffusion.motion_space import build_motion_diffusion
    from skeleton_diffusion.methods.crossdiff.joints_network import CrossDiff, DomainView

    a = cfg.model.arch
    cond = condition_cfg(cfg)
    net = CrossDiff(spec.num_nodes, spec.num_frames, latent_dim=int(a.latent_dim), ff_size=int(a.ff_size),
                    num_layers=int(a.num_layers), num_shared_layers=int(a.num_shared_layers),
                    num_heads=int(a.num_heads), dropout=float(a.dropout), activation=str(a.get("activation", "gelu")),
                    text_dim=int(spec.text_dim or 512), cond_mask_prob=float(cond.get("cond_mask_prob", 0.1)))
    diffs = [build_motion_diffusion(cfg.model, DomainView(net, d, d), skeleton, representation="trajectory",
                                    cov_cfg=cfg.get("cov_matrix")) for d in ("3d", "2d")]
    return CrossDiffusion(net, *diffs)


def _masked_mean(per_sample: Tensor, weight: Tensor) -> Tensor:
    return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)


def crossdiff_loss(model: CrossDiffusion, x3d: Tensor, x2d: Tensor, text: Tensor, *, has3d: Tensor,
                   frame_mask: Optional[Tensor] = None, w_3d: float = 1.0, w_2d: float = 1.0, w_m2j: float = 1.0,
                   w_j2m: float = 1.0, t: Optional[Tensor] = None,
                   generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """CrossDiff loss (module doc) -> scalars ``motion``, ``joint``, ``motion2joint``, ``joint2motion``, ``loss``.

    ``x3d [B, J, T*3]``, ``x2d [B, J, T*2]`` model space; ``text [B, D]``; ``has3d [B]`` bool (False: 2D-only
    sample, its ``x3d`` is ignored); ``frame_mask [B, T]`` valid frames."""
    from skeleton_diffusion.diffusion.motion_space import masked_mse, x_to_motion
    from skeleton_diffusion.diffusion.samplers import white_noise

    b = x2d.shape[0]
    if t is None:
        t = model.diff2d.sample_timesteps(b, x2d.device, generator)
    w3 = has3d.to(x2d.dtype)
    any3d = bool(has3d.any())
    zero = x2d.new_zeros(())
    j_t = model.diff2d.q_sample(x2d, t, white_noise(tuple(x2d.shape), x2d, generator))
    outs = ("2d", "3d") if any3d and w_j2m > 0 else ("2d",)
    pj = model.net(j_t, t, text, domain_in="2d", domains_out=outs, frame_mask=frame_mask)
    gt2, gt3 = x_to_motion(x2d, 2), x_to_motion(x3d, 3)
    terms = {"joint": masked_mse(x_to_motion(pj["2d"], 2), gt2, frame_mask).mean(),
             "motion": zero, "motion2joint": zero, "joint2motion": zero}
    if any3d:
        terms["joint2motion"] = (_masked_mean(masked_mse(x_to_motion(pj["3d"], 3), gt3, frame_mask), w3)
                                 if "3d" in pj else zero)
        m_t = model.diff3d.q_sample(x3d, t, white_noise(tuple(x3d.shape), x3d, generator))
        outs = ("3d", "2d") if w_m2j > 0 else ("3d",)
        pm = model.net(m_t, t, text, domain_in="3d", domains_out=outs, frame_mask=frame_mask)
        terms["motion"] = _masked_mean(masked_mse(x_to_motion(pm["3d"], 3), gt3, frame_mask), w3)
        if "2d" in pm:
            terms["motion2joint"] = _masked_mean(masked_mse(x_to_motion(pm["2d"], 2), gt2, frame_mask), w3)
    terms["loss"] = (w_3d * terms["motion"] + w_2d * terms["joint"] + w_m2j * terms["motion2joint"]
                     + w_j2m * terms["joint2motion"])
    return terms


def prepare_crossdiff_batch(batch: dict, pose_box_size: float, device: torch.device
                            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A :func:`~..data.motion2d.collate_motion2d` batch -> ``(x3d, x2d, has3d, frame_mask)`` in model space."""
    from skeleton_diffusion.diffusion.motion_space import motion_to_x, to_trajectory_space

    x3d = motion_to_x(to_trajectory_space(batch["motion"].to(device), pose_box_size))
    j = batch["joints2d"].to(device)
    x2d = motion_to_x((j - j[:, :1, :1]) / float(pose_box_size))
    return x3d, x2d, batch["has3d"].to(device), batch["mask"].to(device)


def _training_data(cfg: DictConfig, spec: Any, train_ds: Any) -> Any:
    """Paired 3D+2D windows, plus the 2D-only clips of ``model.motion2d.path`` when set."""
    from torch.utils.data import ConcatDataset

    from skeleton_diffusion.data.windows.motion2d import Motion2DDataset, PairedProjectionDataset

    p = cfg.model.projection
    az = None if p.get("azimuths") is None else list(p.azimuths)
    paired = PairedProjectionDataset(train_ds, azimuths=az, distance=float(p.distance), height=float(p.height))
    n3d = cfg.model.get("max_paired_windows")
    if n3d not in (None, "null") and int(n3d) < len(paired):  # e.g. few 3D clips + many 2D-only clips
        from torch.utils.data import Subset

        paired = Subset(paired, range(int(n3d)))
    m2 = cfg.model.get("motion2d") or {}
    if not m2.get("path"):
        return paired, None
    only2d = Motion2DDataset(str(m2.path), num_frames=spec.num_frames, num_joints=spec.num_nodes,
                             max_clips=m2.get("max_clips"))
    return ConcatDataset([paired, only2d]), only2d


def _init_from(cfg: DictConfig) -> Optional[dict]:
    """``model.init_from`` (finetune stage): the first stage's checkpoint, whose text encoder node is copied."""
    src = cfg.model.get("init_from")
    if src in (None, "", "null", "None"):
        if str(cfg.model.get("stage", "pretrain")) == "finetune":
            raise ConfigError("experiment=crossdiff_finetune needs model.init_from=<crossdiff_pre run or checkpoint>")
        return None
    from skeleton_diffusion.checkpoints.format import checkpoint_config, resolve_checkpoint
    from skeleton_diffusion.utils.io import safe_torch_load

    path = resolve_checkpoint(src)
    ckpt = safe_torch_load(path)
    if not is_crossdiff_checkpoint(ckpt):
        raise CheckpointError(f"model.init_from='{path}' is not a CrossDiff checkpoint")
    saved = checkpoint_config(ckpt, path)
    with open_dict(cfg):
        cfg.condition.text_encoder = saved.condition.text_encoder
        cfg.model.init_from = str(path)
    return ckpt


def train(setup: RunSetup) -> dict[str, Any]:
    """Train (or resume) CrossDiff as configured in ``setup.cfg``; returns the run summary."""
    from hydra.utils import instantiate
    from ignite.engine import Engine

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.data.windows.motion2d import collate_motion2d
    from skeleton_diffusion.checkpoints.format import load_state_strict, make_meta
    from skeleton_diffusion.training.checkpointing import CheckpointSaver, retention_from_config
    from skeleton_diffusion.training.ema import ema_from_config
    from skeleton_diffusion.training.engine_utils import attach_standard_handlers
    from skeleton_diffusion.training.loggers import attach_running_average, setup_tensorboard

    cfg, run = setup.cfg, setup.run
    m = cfg.model
    cond = condition_cfg(cfg)
    if str(cond.mode) != "text":
        raise ConfigError(f"model=crossdiff is text-to-motion: use condition=text (got {cond.mode!r})")
    device, seed = seeded_device(cfg)
    init = _init_from(cfg)  # finetune: the first stage's text encoder node (vocabulary), also when resuming
    if setup.resume is not None:
        init = None  # resumed runs restore their own weights
    spec, skeleton, train_ds = spec_and_data(cfg, "train")
    data, only2d = _training_data(cfg, spec, train_ds)
    captions = [c for caps in train_ds.texts for c in caps] + ([c for caps in only2d.texts for c in caps]
                                                               if only2d is not None else [])
    text_encoder = build_text_encoder(cond, captions).to(device)
    spec.text_dim = int(text_encoder.dim)
    model = build_crossdiff(cfg, spec, skeleton).to(device)
    if init is not None:
        load_state_strict(model, init["model"], str(m.init_from), "CrossDiff weights")
        if "text_encoder" in init:
            load_state_strict(text_encoder, init["text_encoder"], str(m.init_from), "text encoder weights")
    trainable = nn.ModuleDict({"model": model})
    if bool(getattr(text_encoder, "trainable", False)):
        trainable["text_encoder"] = text_encoder
    loader, sampler = build_train_loader(data, batch_size=int(m.batch_size), seed=seed,
                                         num_workers=int(m.num_workers), drop_last=True)
    loader = build_dataloader(data, batch_size=loader.batch_size, shuffle=False, sampler=sampler, drop_last=True,
                              num_workers=int(m.num_workers), seed=seed + 1, collate_fn=collate_motion2d)
    epoch_length = int(m.num_iter_perepoch) if m.get("num_iter_perepoch") else len(loader)
    optimizer = instantiate(m.optimizer)(trainable.parameters())
    ema = ema_from_config(model, m)
    lr_scheduler = lr_scheduler_from_config(optimizer, m)
    max_norm = float(m.get("max_grad_norm", 0.0))
    weights = {k: float(m[k]) for k in ("w_3d", "w_2d", "w_m2j", "w_j2m")}
    import ignite.distributed as idist

    world = idist.get_world_size()
    names = {"motion": "L3d", "joint": "L2d", "motion2joint": "Lm2j", "joint2motion": "Lj2m"}

    def train_step(engine: Engine, batch: Any) -> dict[str, Any]:
        trainable.train()
        x3d, x2d, has3d, fmask = prepare_crossdiff_batch(batch, spec.pose_box_size, device)
        terms = crossdiff_loss(model, x3d, x2d, text_encoder(list(batch["text"])), has3d=has3d, frame_mask=fmask,
                               **weights)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if world > 1:  # a rank whose batch is all 2D-only has no 3D-head gradients: reduce zeros (as DDP does)
            for p in trainable.parameters():
                if p.grad is None and p.requires_grad:
                    p.grad = torch.zeros_like(p)
        average_gradients(trainable.parameters())
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable.parameters(), max_norm)
        optimizer.step()
        out = {"loss": terms["loss"].detach()}
        out.update({names[k]: terms[k].detach() for k in names})
        return out

    trainer = Engine(train_step)
    objects = checkpoint_objects(model, optimizer, trainer, sampler,
                                 text_encoder=text_encoder if "text_encoder" in trainable else None,
                                 ema=ema, lr_scheduler=lr_scheduler)
    meta = make_meta("diffusion", skeleton.name, method="crossdiff", dataset=str(cfg.dataset.dataset_name),
                     pose_box_size=spec.pose_box_size, obs_length=0, pred_length=spec.num_frames,
                     mdm_spec=dict(spec.__dict__), crossdiff_stage=str(m.get("stage", "pretrain")),
                     config=OmegaConf.to_container(cfg, resolve=True))
    keep_last, keep_every = retention_from_config(cfg, 1)
    periodic = CheckpointSaver(run.checkpoints, objects, meta, n_saved=keep_last, keep_every=keep_every)
    tb = setup_tensorboard(run.tb, trainer, optimizer, model=model, norms_every=100)
    attach_running_average(trainer)
    attach_standard_handlers(
        trainer, seed=seed, lr_scheduler=lr_scheduler, sampler=sampler, nan_guard=True, ema=ema,
        checkpoint=periodic, save_every=1, final_checkpoint=True, tb_logger=tb,
        progress=bool(cfg.get("progress", True)), progress_metrics=["Loss"])
    return resume_run_and_summarise(trainer, setup, objects, stage="diffusion", skeleton=skeleton.name,
                                    device=device, loader=loader, max_epochs=int(m.num_epochs),
                                    epoch_length=epoch_length, trained=model, final_saver=periodic)


def main(cfg: DictConfig, overrides: Optional[list[str]] = None) -> dict[str, Any]:
    """Entry point for ``train_diffusion.py model=crossdiff`` / ``experiment=crossdiff_pre|crossdiff_finetune``."""
    return launch_motion_trainer(train, cfg, overrides, "CrossDiff")
