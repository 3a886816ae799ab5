"""What both trainers do before and around the training loop: resume resolution, config merging, run folder,
single-/multi-process launch, and the training data loader with an exactly resumable sampler.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from skeleton_diffusion.config import register_resolvers
from skeleton_diffusion.utils.cpu_allocator import keep_freed_cpu_memory
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.training.run_dir import RunDir, ResumeSpec, VOLATILE_CONFIG_KEYS, broadcast_path, prepare_run_dir, resolve_resume

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
    from skeleton_diffusion.training.run_dir import apply_overrides

    merged = OmegaConf.create(OmegaConf.to_container(saved, resolve=False))
    with open_dict(merged):
        for key in _RESUME_IGNORED - {"hydra", "output_log_path"}:
            if key in current:
                merged[key] = current[key]
    with open_dict(merged):
        return apply_overrides(merged, [ov for ov in overrides if ov.lstrip("+~").split("=")[0].split(".")[0]
                                        not in _RESUME_IGNORED and not _reselects_saved_group(saved, ov)])


def _reselects_saved_group(saved: DictConfig, override: str) -> bool:
    """``dataset=synthetic`` on a run that was trained on ``synthetic``: the same group choice again (e.g. a
    repeated ``make demo`` with ``resume=auto``), not a swap; recognised by the group's ``dataset_name``/``name``."""
    key, sep, value = override.partition("=")
    if not sep or "." in key or key.startswith(("+", "~")):
        return False
    node = saved.get(key) if isinstance(saved, DictConfig) else None
    if not isinstance(node, DictConfig):
        return False
    names = {str(node.get(k)).lower() for k in (f"{key}_name", "name") if node.get(k) is not None}
    return value.strip().lower() in names


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


# ------------------------------------------------------------------------------------ clean stop on a signal
#: Exit status after a stop request (shell convention 128 + signal number).
STOP_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_INTERRUPT_FILE_ENV = "SKELETON_DIFFUSION_INTERRUPT_FILE"


class TrainingInterrupted(BaseException):
    """Raised by the signal handler while no training step can be finished yet (start-up): nothing to save.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that ``except Exception`` in start-up code cannot hide it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = int(signum)


class StopRequest:
    """Process-wide SIGINT/SIGTERM handling for training (one instance: :data:`STOP`).

    While ``deferred`` (the engine is running, see :func:`attach_stop_handler`) a signal only records the request;
    the trainer then finishes the current step, writes ``last.pt`` and returns. Before that (start-up) a signal
    raises :class:`TrainingInterrupted` at once. A second signal more than 2 s after the first aborts at once
    (``KeyboardInterrupt``). In a process that spawned workers the signal is forwarded to them."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferred = False
        self.forward = False
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        now = time.monotonic()
        if self.signum is not None and now - self._first > 2.0:
            self.uninstall()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without saving")
        if self.signum is None:
            self.signum, self._first = int(signum), now
        if self.forward:
            import multiprocessing

            for child in multiprocessing.active_children():
                try:
                    os.kill(child.pid, signum)  # type: ignore[arg-type]
                except OSError:
                    pass
        elif not self.deferred:
            raise TrainingInterrupted(signum)

    def install(self, forward: bool = False) -> None:
        """Handle SIGINT/SIGTERM in this process (main thread only; signals set to be ignored stay ignored)."""
        self.signum, self.deferred, self.forward = None, False, forward
        if _is_main_thread() and not self._previous:
            for sig in STOP_EXIT_CODES:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None



def seeded_device(cfg: DictConfig) -> tuple[torch.device, int]:
    """Start of every trainer's ``train``: :func:`select_device`, cuDNN/algorithm determinism from
    ``cfg.deterministic``, and every RNG seeded with ``cfg.model.seed``. Returns ``(device, seed)``."""
    from skeleton_diffusion.training.rng import seed_everything, set_determinism

    device = select_device(cfg)
    set_determinism(bool(cfg.get("deterministic", False)))
    seed = int(cfg.model.seed)
    seed_everything(seed)
    return device, seed

def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


#: The process's stop request (signals are per process).
STOP = StopRequest()


def resume_command(run_dir: str | os.PathLike, stage: str) -> str:
    """``python train_<x>.py resume=<run dir>``: the script that is running (else ``train_<stage>.py``)."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if not (script.startswith("train") and script.endswith(".py")):
        script = f"train_{stage}.py"
    return f"python {script} resume={run_dir}"


def interrupt_message(signum: int, summary: dict[str, Any] | None) -> str:
    """The single line printed after a clean stop (names ``last.pt`` and the exact resume command)."""
    name = signal.Signals(signum).name
    if not summary or not summary.get("checkpoint"):
        return (f"Stopped by {name} before a training step finished; nothing was saved"
                + (f" (run folder {summary['run_dir']})." if summary and summary.get("run_dir") else "."))
    return (f"Stopped by {name} at epoch {summary['epochs']}, iteration {summary['iterations']}: saved "
            f"{summary['checkpoint']}; resume with: {summary['resume_command']}")


def attach_stop_handler(trainer: Any) -> None:
    """Make the engine honour :data:`STOP`: after every iteration and epoch (after the checkpoint handlers), if a
    stop was requested in any process, terminate without ``COMPLETED``. Sets ``trainer.state.stopped_by``."""
    import ignite.distributed as idist
    from ignite.engine import Events

    def _check(engine: Any) -> None:
        signum = float(STOP.signum or 0)
        if idist.get_world_size() > 1:  # every process must stop after the same iteration (and name the signal)
            signum = float(idist.all_reduce(torch.tensor([signum], device=idist.device()), op="MAX").item())
        if signum > 0:
            engine.state.stopped_by = int(signum)
            engine.terminate(skip_completed=True)

    def _arm(engine: Any) -> None:
        engine.state.stopped_by = None
        engine.state.start_iteration = int(engine.state.iteration)
        STOP.deferred = True

    trainer.add_event_handler(Events.STARTED, _arm)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, _check)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, _check)


def _report_interrupt(summary: dict[str, Any] | None, signum: int) -> None:
    import ignite.distributed as idist

    if idist.get_rank() == 0:  # (call inside the process group, or in a single process)
        sys.stdout.flush()
        sys.stderr.write(interrupt_message(signum, summary) + "\n")
        sys.stderr.flush()
        marker = os.environ.get(_INTERRUPT_FILE_ENV)
        if marker:
            Path(marker).write_text(str(signum))


def _spawned_worker(local_rank: int, cfg: DictConfig, fn: Callable[..., Any], *args: Any) -> Any:
    """Entry point of every process of a parallel run (spawned or torchrun): stop cleanly on a signal (forwarded
    by the spawning parent), rank 0 reports it."""
    owner = not STOP._previous  # torchrun: installed by launch() already
    if owner:
        STOP.install()
    try:
        result = fn(local_rank, cfg, *args)
    except TrainingInterrupted as exc:
        result = {"interrupted": exc.signum, "checkpoint": None}
    finally:
        if owner:
            STOP.uninstall()
    if isinstance(result, dict) and result.get("interrupted"):
        _report_interrupt(result, int(result["interrupted"]))
    return result


def launch(fn: Callable[..., Any], cfg: DictConfig, *args: Any) -> Any:
    """Run ``fn(local_rank, cfg)`` once, or under ``ignite.distributed``:

    * ``nproc_per_node=N`` (N > 1): spawn N processes (gloo on CPU, nccl on CUDA unless ``dist_backend``);
    * launched by ``torchrun`` (``WORLD_SIZE`` set): join that process group.

    SIGINT / SIGTERM stop training cleanly (:class:`StopRequest`): ``last.pt`` is written if a step finished,
    one line names it and the resume command, and the process exits with status 130 / 143 (``SystemExit``).
    """
    nproc = int(cfg.get("nproc_per_node", 1) or 1)
    torchrun = "WORLD_SIZE" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if nproc <= 1 or torchrun:
        STOP.install()
        try:
            result = fn(0, cfg, *args) if nproc <= 1 and not torchrun else _launch_parallel(fn, cfg, args, torchrun)
        except TrainingInterrupted as exc:
            result = {"interrupted": exc.signum, "checkpoint": None}
        finally:
            STOP.uninstall()
        if isinstance(result, dict) and result.get("interrupted"):
            signum = int(result["interrupted"])
            if not torchrun:  # (torchrun: reported by rank 0 inside the process group)
                _report_interrupt(result, signum)
            raise SystemExit(STOP_EXIT_CODES.get(signal.Signals(signum), 128 + signum))
        return result
    # spawning parent: forward signals to the workers, wait for them, exit with the workers' stop status
    fd, marker = tempfile.mkstemp(prefix="sd-interrupt-", suffix=".txt")
    os.close(fd)
    os.environ[_INTERRUPT_FILE_ENV] = marker
    STOP.install(forward=True)
    try:
        try:
            result = _launch_parallel(fn, cfg, args, torchrun)
        except Exception:
            if not STOP.requested:
                raise
            result = None  # a worker killed by the forwarded signal during its start-up
        text = Path(marker).read_text().strip()
        signum = int(text) if text else STOP.signum
        if signum is not None:
            if not text:
                sys.stderr.write(interrupt_message(signum, None) + "\n")
            raise SystemExit(STOP_EXIT_CODES.get(signal.Signals(signum), 128 + signum))
        return result
    finally:
        STOP.uninstall()
        os.environ.pop(_INTERRUPT_FILE_ENV, None)
        with _suppress_oserror():
            os.unlink(marker)


def _suppress_oserror() -> Any:
    import contextlib

    return contextlib.suppress(OSError)


def _launch_parallel(fn: Callable[..., Any], cfg: DictConfig, args: tuple, torchrun: bool) -> Any:
    import ignite.distributed as idist

    nproc = int(cfg.get("nproc_per_node", 1) or 1)
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
        return parallel.run(_spawned_worker, cfg, fn, *args)


def build_train_loader(dataset: Any, *, batch_size: int, seed: int, num_workers: int = 0,
                       drop_last: bool = True, pin_memory: bool = False):
    """Shuffled training loader whose position is checkpointable (``ResumableRandomSampler``).

    ``batch_size`` is the *global* batch: under DDP each of the W processes loads ``batch_size // W``.
    Returns ``(loader, sampler)``; attach the sampler to the trainer and checkpoint it."""
    import ignite.distributed as idist

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.training.sampler import ResumableRandomSampler

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
    from skeleton_diffusion.utils.errors import CheckpointError
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint, run_config_path

    ckpt = resolve_checkpoint(path, what="model.pretrained_autoencoder_path",
                              hint="train one first with `python train_autoencoder.py dataset=<name>` and pass "
                                   "its run folder or checkpoint file")
    cand = run_config_path(ckpt)
    if cand is None:
        raise CheckpointError(f"no config.yaml found for autoencoder checkpoint '{ckpt}' (looked in "
                              f"{ckpt.parent.parent} and {ckpt.parent})")
    from skeleton_diffusion.config import load_config  # H15a: a corrupt/empty config.yaml is named, not a traceback

    cfg = load_config(cand, what="autoencoder run config")
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
    from skeleton_diffusion.training.lr_schedule import ExponentialLRSchedulerWarmup

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
    from skeleton_diffusion.checkpoints.format import load_checkpoint

    attach_stop_handler(trainer)
    if setup.resume is not None:
        load_checkpoint(setup.resume.checkpoint, objects, expected_stage=stage, expected_skeleton=skeleton,
                        map_location=device)
        _log.info("resumed from %s (epoch %d, iteration %d)", setup.resume.checkpoint, trainer.state.epoch,
                  trainer.state.iteration)
    finished = setup.resume is not None and int(trainer.state.iteration) >= max_epochs * epoch_length
    if finished:  # resuming a finished run (e.g. a second `make demo`): Ignite would restart it from epoch 0
        _log.warning("%s already finished %d epochs (model.num_epochs=%d): nothing to train; raise "
                     "model.num_epochs to continue", setup.run.root, trainer.state.epoch, max_epochs)
        print(f"{setup.run.root}: already trained for {trainer.state.epoch} epochs, nothing to do "
              f"(pass model.num_epochs=<more> to train longer)")
    else:
        trainer.run(loader, max_epochs=max_epochs, epoch_length=epoch_length)
    stopped_by = getattr(trainer.state, "stopped_by", None)
    final = setup.resume.checkpoint if finished else final_saver.last_saved
    if stopped_by is not None:  # SIGINT/SIGTERM: save where we stand (if a step finished), then report
        final = None
        if trainer.state.iteration > getattr(trainer.state, "start_iteration", trainer.state.iteration):
            final = final_saver.save_last(trainer, interrupted=signal.Signals(stopped_by).name)
    else:
        check_replicas_in_sync(trained)
    summary = {"run_dir": str(setup.run.root), "checkpoint": str(final) if final else None,
               "epochs": trainer.state.epoch, "iterations": trainer.state.iteration,
               "loss": float(trainer.state.metrics.get("Loss", float("nan")))}
    if stopped_by is not None:
        summary.update(interrupted=int(stopped_by), resume_command=resume_command(setup.run.root, stage))
    return summary
