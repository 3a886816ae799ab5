"""Small composable wiring helpers for Ignite trainers (spec §7.1).

* :func:`make_generator` / :func:`worker_init_fn`: seeded DataLoader generator and worker seeding
  (official ``get_torch_generator`` / ``seed_worker``).
* :class:`EpochReseeder`: ``seed + epoch`` at every ``EPOCH_STARTED`` (skipped when resuming mid-epoch,
  where the checkpoint's RNG states are already in place).
* :func:`attach_validation`: run a validation callable every k epochs with seed 0 (official), restoring
  the training RNG afterwards.
* :func:`attach_standard_handlers`: registers the above plus lr schedule, curriculum, sampler counting,
  NaN guard, EMA, checkpoints, TensorBoard and progress bar in the official order.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import numpy as np
import torch

from skeleton_diffusion.training.checkpointing import CheckpointSaver, NonFiniteLossGuard
from skeleton_diffusion.training.rng import capture_rng_state, restore_rng_state, seed_everything

__all__ = [
    "make_generator",
    "worker_init_fn",
    "EpochReseeder",
    "attach_validation",
    "attach_standard_handlers",
]


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (pass as ``DataLoader(generator=...)``)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy / random / torch in a DataLoader worker from its torch seed (official ``seed_worker``)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


class EpochReseeder:
    """At ``EPOCH_STARTED``: ``seed_everything(seed + epoch, generator)`` (official per-epoch reseeding).

    When the engine resumes inside an epoch (``iteration % epoch_length != 0``) nothing is reseeded: the
    RNG states loaded from the checkpoint continue where the interrupted run stood.
    """

    def __init__(self, seed: int, generator: torch.Generator | None = None) -> None:
        self.seed = int(seed)
        self.generator = generator

    def __call__(self, engine: Any) -> None:
        length = engine.state.epoch_length
        if length and engine.state.iteration % length != 0:
            return
        seed_everything(self.seed + int(engine.state.epoch), self.generator)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self)


def attach_validation(
    trainer: Any,
    validate: Callable[[Any], Any],
    every: int,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    after: Sequence[Callable[[Any], Any]] = (),
) -> None:
    """Every ``every`` epochs: seed everything with ``seed`` (official 0), call ``validate(trainer)``, run
    restore the training RNG states, then run the ``after`` callables (e.g. a best-score
    :class:`CheckpointSaver`)."""
    from ignite.engine import Events

    def _run(engine: Any) -> None:
        state = capture_rng_state(generator)
        try:
            seed_everything(seed, generator)
            validate(engine)
        finally:
            restore_rng_state(state, generator)
        for fn in after:  # after the restore, so a checkpoint holds the training RNG states
            fn(engine)

    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=int(every)), _run)


def attach_standard_handlers(
    trainer: Any,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    lr_scheduler: Any | None = None,
    curriculum: Any | None = None,
    sampler: Any | None = None,
    nan_guard: NonFiniteLossGuard | bool = True,
    ema: Any | None = None,
    validate: Callable[[Any], Any] | None = None,
    eval_every: int | None = None,
    best_checkpoint: CheckpointSaver | None = None,
    checkpoint: CheckpointSaver | None = None,
    save_every: int = 1,
    final_checkpoint: bool = False,
    tb_logger: Any | None = None,
    progress: bool | None = None,
    progress_metrics: Sequence[str] | str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Attach the usual handlers in the official order; returns what was attached (by name).

    Order: ``EPOCH_STARTED`` reseed -> lr step; ``ITERATION_STARTED`` curriculum; ``GET_BATCH_COMPLETED``
    sampler count; ``ITERATION_COMPLETED`` NaN guard -> EMA update; ``EPOCH_COMPLETED(every=eval_every)``
    validation -> best checkpoint; ``EPOCH_COMPLETED(every=save_every)`` periodic checkpoint;
    ``COMPLETED`` final checkpoint. ``tb_logger`` is closed at ``COMPLETED`` or ``TERMINATE`` (create it with
    :func:`~skeleton_diffusion.training.loggers.setup_tensorboard`).

    ``progress``: None -> no progress report; True -> tqdm bar on a terminal, one line per epoch otherwise;
    False -> one line per epoch (:func:`~skeleton_diffusion.training.loggers.attach_progress`; the line shows
    the lr of ``optimizer``, default the lr scheduler's optimizer).
    """
    from ignite.engine import Events

    attached: dict[str, Any] = {}
    if seed is not None:
        attached["reseeder"] = EpochReseeder(seed, generator)
        attached["reseeder"].attach(trainer)
    if lr_scheduler is not None:
        lr_scheduler.attach(trainer)
        attached["lr_scheduler"] = lr_scheduler
    if curriculum is not None:
        curriculum.attach(trainer)
        attached["curriculum"] = curriculum
    if sampler is not None and hasattr(sampler, "attach"):
        sampler.attach(trainer)
        attached["sampler"] = sampler
    if nan_guard:
        guard = nan_guard if isinstance(nan_guard, NonFiniteLossGuard) else NonFiniteLossGuard(
            checkpoint_dir=checkpoint.dirname if checkpoint is not None else None)
        guard.attach(trainer)
        attached["nan_guard"] = guard
    if ema is not None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: ema.update())
        attached["ema"] = ema
    if validate is not None:
        if not eval_every:
            raise ValueError("validate given without eval_every")
        attach_validation(trainer, validate, eval_every, generator=generator,
                          after=[best_checkpoint] if best_checkpoint is not None else [])
        attached["validation"] = validate
    elif best_checkpoint is not None:
        raise ValueError("best_checkpoint needs validate/eval_every (it scores validation metrics)")
    if checkpoint is not None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=int(save_every)), checkpoint)
        if final_checkpoint:
            trainer.add_event_handler(Events.COMPLETED, checkpoint)
        attached["checkpoint"] = checkpoint
    if progress is not None:
        from skeleton_diffusion.training.loggers import attach_progress

        attached["progress"] = attach_progress(trainer, bool(progress), metric_names=progress_metrics,
                                               optimizer=optimizer or getattr(lr_scheduler, "optimizer", None))
    if tb_logger is not None:
        trainer.add_event_handler(Events.COMPLETED | Events.TERMINATE, lambda _: tb_logger.close())
        attached["tb_logger"] = tb_logger
    return attached
