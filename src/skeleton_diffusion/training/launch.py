"""What both trainers do before and around the training loop: resume resolution, config merging, run folder,
single-/multi-process launch, and the training data loader with an exactly resumable sampler.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import register_resolvers
from ..utils.cpu_allocator import keep_freed_cpu_memory
from ..utils.device import resolve_device
from ..utils.errors import ConfigError
from .run_dir import RunDir, ResumeSpec, VOLATILE_CONFIG_KEYS, broadcast_path, prepare_run_dir, resolve_resume

_log = logging.getLogger(__name__)

#: Overrides never taken from the command line into a resumed run's saved config.
_RESUME_IGNORED = set(VOLATILE_CONFIG_KEYS)


def cli_overrides() -> list[str]:
    """The ``key=value`` overrides given on the Hydra command line ([] outside a Hydra app)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001
        pass
    return []


def merge_resumed_config(saved: DictConfig, current: DictConfig, overrides: list[str]) -> DictConfig:
    """The saved run config, with the current run's volatile keys (device, progress, ...) and the command
    line's ``key=value`` overrides applied on top (e.g. ``model.num_epochs=400`` to train longer).

    Group selections (``dataset=amass``) cannot change a resumed run: a different choice raises."""
    from .run_dir import apply_overrides

    merged = OmegaConf.create(OmegaConf.to_container(saved, resolve=False))
    with open_dict(merged):
        for key in _RESUME_IGNORED - {"hydra", "output_log_path"}:
            if key in current:
                merged[key] = current[key]
    with open_dict(merged):
        return apply_overrides(merged, [ov for ov in overrides if ov.lstrip("+~").split("=")[0].split(".")[0]
                                        not in _RESUME_IGNORED])


@dataclass
class RunSetup:
    cfg: DictConfig
    run: RunDir
    resume: ResumeSpec | None


def setup_run(cfg: DictConfig, overrides: list[str] | None = None) -> RunSetup:
    """Resolve resume (``resume=`` or the official four keys), merge the saved config, broadcast the run
    folder from rank 0 and create it (refusing to overwrite a different run).

    ``overrides``: the command-line overrides to re-apply on a resumed run's saved config (default: those
    of the running Hydra app)."""
    spec = resolve_resume(cfg.get("resume"), if_resume_training=bool(cfg.get("if_resume_training", False)),
                          output_log_path=cfg.get("output_log_path"), load_path=cfg.get("load_path"))
    if spec is not None and spec.config is not None:
        cfg = merge_resumed_config(spec.config, cfg, cli_overrides() if overrides is None else list(overrides))
    out = spec.run_dir if spec is not None else Path(str(cfg.output_log_path))
    out = broadcast_path(out)
    with open_dict(cfg):
        cfg.output_log_path = str(out)
    run = prepare_run_dir(out, cfg, resume=spec is not None)
    return RunSetup(cfg, run, spec)


def select_device(cfg: DictConfig) -> torch.device:
    """``device=auto`` -> CUDA if present; under DDP each process takes its local GPU. On CPU, applies
    ``cpu_keep_freed_memory`` (:func:`~skeleton_diffusion.utils.cpu_allocator.keep_freed_cpu_memory`)."""
    import ignite.distributed as idist

    dev = resolve_device(cfg.get("device", "auto"))
    if dev.type == "cpu":
        keep_freed_cpu_memory(bool(cfg.get("cpu_keep_freed_memory", True)))
    if dev.type == "cuda" and idist.get_world_size() > 1:
        return idist.device()
    return dev


def launch(fn: Callable[..., Any], cfg: DictConfig, *args: Any) -> Any:
    """Run ``fn(local_rank, cfg)`` once, or under ``ignite.distributed``:

    * ``nproc_per_node=N`` (N > 1): spawn N processes (gloo on CPU, nccl on CUDA unless ``dist_backend``);
    * launched by ``torchrun`` (``WORLD_SIZE`` set): join that process group.
    """
    import ignite.distributed as idist

    nproc = int(cfg.get("nproc_per_node", 1) or 1)
    torchrun = "WORLD_SIZE" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if nproc <= 1 and not torchrun:
        return fn(0, cfg, *args)
    register_resolvers()
    if not torchrun:
        # resolve ${now:...} etc. once in the parent: spawned processes must agree on the run folder
        cfg = cfg.copy()
        OmegaConf.resolve(cfg)
    backend = cfg.get("dist_backend") or (
        "nccl" if torch.cuda.is_available() and str(cfg.get("device", "auto")) != "cpu" else "gloo")
    kwargs: dict[str, Any] = {"backend": backend}
    if not torchrun:
        kwargs["nproc_per_node"] = nproc
    with idist.Parallel(**kwargs) as parallel:
        return parallel.run(fn, cfg, *args)


def build_train_loader(dataset: Any, *, batch_size: int, seed: int, num_workers: int = 0,
                       drop_last: bool = True, pin_memory: bool = False):
    """Shuffled training loader whose position is checkpointable (``ResumableRandomSampler``).

    ``batch_size`` is the *global* batch: under DDP each of the W processes loads ``batch_size // W``.
    Returns ``(loader, sampler)``; attach the sampler to the trainer and checkpoint it."""
    import ignite.distributed as idist

    from ..data import build_dataloader
    from .sampler import ResumableRandomSampler

    world = idist.get_world_size()
    if batch_size % world:
        raise ConfigError(f"batch_size={batch_size} must be divisible by the number of processes ({world})")
    per_rank = batch_size // world
    if len(dataset) < per_rank and drop_last:
        raise ConfigError(f"the training set has {len(dataset)} windows, fewer than one batch of {per_rank}; "
                          "lower model.batch_size or use a larger dataset")
    sampler = ResumableRandomSampler(len(dataset), seed=seed, batch_size=per_rank)
    # A private generator: creating a DataLoader iterator draws a base seed from it instead of from the global
    # torch RNG, so a resumed run (which opens a new iterator) keeps the global RNG stream of the original run.
    loader = build_dataloader(dataset, batch_size=per_rank, shuffle=False, sampler=sampler, drop_last=drop_last,
                              num_workers=num_workers, pin_memory=pin_memory, seed=seed + 1)
    return loader, sampler


def autoencoder_run_config(path: str | os.PathLike) -> tuple[DictConfig, Path]:
    """Config of the autoencoder run that produced checkpoint ``path`` (file or run folder) and the checkpoint.

    Looks for ``config.yaml`` two folders up (official layout ``<run>/checkpoints/x.pt``) or beside it."""
    from ..utils.errors import CheckpointError
    from .checkpoint import resolve_checkpoint, run_config_path

    ckpt = resolve_checkpoint(path, what="model.pretrained_autoencoder_path",
                              hint="train one first with `python train_autoencoder.py dataset=<name>` and pass "
                                   "its run folder or checkpoint file")
    cand = run_config_path(ckpt)
    if cand is None:
        raise CheckpointError(f"no config.yaml found for autoencoder checkpoint '{ckpt}' (looked in "
                              f"{ckpt.parent.parent} and {ckpt.parent})")
    cfg = OmegaConf.load(cand)
    stage = cfg.get("stage", "autoencoder")
    if stage != "autoencoder" or "dataset" not in cfg or "model" not in cfg:
        raise CheckpointError(
            f"model.pretrained_autoencoder_path '{path}' belongs to a {stage!r} run ({cand}), not an "
            "autoencoder run; pass the run folder or checkpoint written by train_autoencoder.py")
    return cfg, ckpt  # type: ignore[return-value]


def average_gradients(parameters: Any) -> None:
    """Data parallelism without a DDP wrapper: average every gradient over the processes (no-op when alone).

    Equivalent to DDP's gradient all-reduce (mean over ranks); used so that custom training computations
    (best-of-k selection, autoencoder horizons) need no ``forward`` restructuring."""
    import ignite.distributed as idist

    world = idist.get_world_size()
    if world <= 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = idist.all_reduce(flat) / world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def check_replicas_in_sync(module: torch.nn.Module, what: str = "model") -> None:
    """Under data parallelism every process must hold the same weights: compare a float64 fingerprint of the
    parameters across processes and raise if any differs (no-op for one process)."""
    import ignite.distributed as idist

    if idist.get_world_size() <= 1:
        return
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in module.parameters()])
        fp = torch.stack([flat.abs().sum(), flat.sum()])
    gathered = idist.all_gather(fp.to(idist.device())).view(-1, 2).cpu()
    if not torch.equal(gathered, gathered[:1].expand_as(gathered)):
        raise RuntimeError(f"{what} weights differ between processes after training: {gathered.tolist()}")
    _log.info("%s weights identical on all %d processes", what, idist.get_world_size())


def lr_scheduler_from_config(optimizer: torch.optim.Optimizer, model_cfg: DictConfig) -> Any:
    """``ExponentialLRSchedulerWarmup`` from ``model.lr`` and ``model.lr_scheduler_kwargs`` (None when
    ``model.use_lr_scheduler`` is false)."""
    from .lr_schedule import ExponentialLRSchedulerWarmup

    if not bool(model_cfg.get("use_lr_scheduler", True)):
        return None
    kw = model_cfg.lr_scheduler_kwargs
    kind = kw.get("lr_scheduler_type", "ExponentialLRSchedulerWarmup")
    if kind != "ExponentialLRSchedulerWarmup":
        raise ConfigError(f"lr_scheduler_kwargs.lr_scheduler_type={kind!r} is not supported; "
                          "only 'ExponentialLRSchedulerWarmup' exists")
    return ExponentialLRSchedulerWarmup(optimizer, lr=float(model_cfg.lr), warmup_duration=int(kw.warmup_duration),
                                        update_every=int(kw.update_every), min_lr=float(kw.min_lr),
                                        gamma_decay=float(kw.gamma_decay))


def resume_run_and_summarise(trainer: Any, setup: RunSetup, objects: dict, *, stage: str, skeleton: str,
                             device: torch.device, loader: Any, max_epochs: int, epoch_length: int,
                             trained: torch.nn.Module, final_saver: Any) -> dict[str, Any]:
    """Restore ``objects`` from the resume checkpoint (if any), run the trainer, check that all processes hold
    the same weights, and return the run summary (run folder, final checkpoint, epochs, iterations, loss)."""
    from .checkpoint import load_checkpoint

    if setup.resume is not None:
        load_checkpoint(setup.resume.checkpoint, objects, expected_stage=stage, expected_skeleton=skeleton,
                        map_location=device)
        _log.info("resumed from %s (epoch %d, iteration %d)", setup.resume.checkpoint, trainer.state.epoch,
                  trainer.state.iteration)
    trainer.run(loader, max_epochs=max_epochs, epoch_length=epoch_length)
    check_replicas_in_sync(trained)
    final = final_saver.last_saved
    return {"run_dir": str(setup.run.root), "checkpoint": str(final) if final else None,
            "epochs": trainer.state.epoch, "iterations": trainer.state.iteration,
            "loss": float(trainer.state.metrics.get("Loss", float("nan")))}
