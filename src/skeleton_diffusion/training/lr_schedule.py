"""The official ``ExponentialLRSchedulerWarmup`` (spec §7.3), re-implemented without Ignite's ConcatScheduler.

Semantics, with e the 1-based epoch at ``EPOCH_STARTED``:

* ``e < W``: advance the inner schedule;
* ``e >= W``: if the floor is not reached and some param group's lr <= ``min_lr``: set every such group to
  ``min_lr`` and freeze for good; otherwise advance when ``e % update_every == 0``.

The inner schedule (Ignite ``create_lr_scheduler_with_warmup`` around ``torch ExponentialLR``, start = end =
base lr) is: its first ``W`` advances set lr = base lr (a constant "warmup" hold); every later advance sets
``lr <- lr * gamma`` (Ignite pre-advances the torch scheduler, so the first decayed value is ``base * gamma``).
The multiplication is applied to the optimizer's current lr, exactly as torch's chainable ExponentialLR does,
so the float values are bit-identical to the official ones.

Deviation (documented): with ``min_lr=None`` the official code never decays after the hold (its decay branch
sits inside the ``min_lr is not None`` test); here ``None`` means "no floor" and decay continues. The
``floor_reached`` flag is checkpointed (official: not, but harmless because it is re-detected).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

__all__ = ["ExponentialLRSchedulerWarmup", "lr_trace"]


class ExponentialLRSchedulerWarmup:
    """Epoch-level lr schedule: constant hold of ``warmup_duration`` events, then ``x gamma`` steps, floor.

    Args:
        optimizer: the optimizer whose param groups are driven.
        lr: base lr (the hold value; the official passes the optimizer lr).
        warmup_duration: W, number of inner events at constant lr.
        update_every: decay only at epochs divisible by this after the hold.
        min_lr: floor; once some group reaches it, lr is clamped to it and frozen. ``None``: no floor.
        gamma_decay: multiplicative decay per inner event after the hold.

    Attach with :meth:`attach` (``EPOCH_STARTED``) or call :meth:`step` with the 1-based epoch.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr: float,
        warmup_duration: int = 200,
        update_every: int = 1,
        min_lr: float | None = 0.0,
        gamma_decay: float = 0.98,
    ) -> None:
        if warmup_duration < 1:
            raise ConfigError(f"lr scheduler warmup_duration must be >= 1, got {warmup_duration}")
        if update_every < 1:
            raise ConfigError(f"lr scheduler update_every must be >= 1, got {update_every}")
        if min_lr is not None and min_lr > lr:
            raise ConfigError(f"lr scheduler min_lr={min_lr} must be <= lr={lr}")
        if not 0.0 < gamma_decay <= 1.0:
            raise ConfigError(f"lr scheduler gamma_decay must be in (0, 1], got {gamma_decay}")
        self.optimizer = optimizer
        self.lr = float(lr)
        self.warmup_duration = int(warmup_duration)
        self.update_every = int(update_every)
        self.min_lr = None if min_lr is None else float(min_lr)
        self.gamma = float(gamma_decay)
        self.num_advances = 0  # events consumed by the inner (hold + exponential) schedule
        self.floor_reached = False
        self.last_epoch = 0  # last epoch handled; a repeated call for the same epoch is a no-op (mid-epoch resume)

    # ----------------------------------------------------------------- core
    def _advance(self) -> None:
        for group in self.optimizer.param_groups:
            if self.num_advances < self.warmup_duration:
                group["lr"] = self.lr
            else:
                group["lr"] = group["lr"] * self.gamma
        self.num_advances += 1

    def step(self, epoch: int | Any) -> None:
        """Apply the schedule for the 1-based ``epoch`` (an ``int`` or an Ignite engine)."""
        if not isinstance(epoch, int):
            epoch = int(epoch.state.epoch)
        if epoch <= self.last_epoch:
            return
        self.last_epoch = epoch
        if epoch < self.warmup_duration:
            self._advance()
            return
        if self.floor_reached:
            return
        if self.min_lr is not None:
            for group in self.optimizer.param_groups:
                if group["lr"] <= self.min_lr:
                    group["lr"] = self.min_lr
                    self.floor_reached = True
            if self.floor_reached:
                return
        if epoch % self.update_every == 0:
            self._advance()

    __call__ = step

    def attach(self, engine: Any) -> None:
        """Register :meth:`step` on ``Events.EPOCH_STARTED`` of an Ignite engine."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self.step)

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    # ----------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "type": "ExponentialLRSchedulerWarmup",
            "num_advances": self.num_advances,
            "floor_reached": self.floor_reached,
            "last_epoch": self.last_epoch,
            "lr": self.lr,
            "warmup_duration": self.warmup_duration,
            "update_every": self.update_every,
            "min_lr": self.min_lr,
            "gamma": self.gamma,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load our own state, or the official Ignite ``ConcatScheduler`` state (``lr_scheduler`` key)."""
        if "num_advances" in state:
            for key in ("warmup_duration", "update_every", "gamma"):
                if key in state and state[key] != getattr(self, key):
                    raise CheckpointError(
                        f"lr_scheduler state has {key}={state[key]} but the scheduler was built with "
                        f"{key}={getattr(self, key)}; resume with the run's saved config."
                    )
            self.num_advances = int(state["num_advances"])
            self.floor_reached = bool(state["floor_reached"])
            self.last_epoch = int(state.get("last_epoch", 0))
            return
        if "_scheduler_index" in state and "schedulers" in state:
            self.num_advances = _official_num_advances(state)
            self.floor_reached = False  # re-detected from the optimizer lr, as in the official code
            self.last_epoch = 0
            return
        raise CheckpointError(
            "lr_scheduler state not recognised: expected keys 'num_advances' (this package) or "
            f"'_scheduler_index'/'schedulers' (official Ignite ConcatScheduler); got {sorted(state)}"
        )


def _official_num_advances(state: Mapping[str, Any]) -> int:
    """Events consumed by the official ConcatScheduler(PiecewiseLinear hold, LRScheduler(ExponentialLR))."""
    hold = int(state["durations"][0])
    if int(state["_scheduler_index"]) == 0:
        piecewise = state["schedulers"][0]["schedulers"][0][1]
        return int(piecewise["event_index"])
    torch_state = state["schedulers"][1]["lr_scheduler"]
    return hold + int(torch_state["last_epoch"]) - 1


def lr_trace(
    num_epochs: int,
    lr: float,
    warmup_duration: int,
    update_every: int,
    min_lr: float | None,
    gamma_decay: float,
) -> list[float]:
    """lr in effect during epochs 1..num_epochs (after the ``EPOCH_STARTED`` step), for docs and tests."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    sched = ExponentialLRSchedulerWarmup(opt, lr, warmup_duration, update_every, min_lr, gamma_decay)
    out = []
    for epoch in range(1, num_epochs + 1):
        sched.step(epoch)
        out.append(opt.param_groups[0]["lr"])
    return out
