"""AE prediction-horizon curriculum and random horizon (official ``get_random_ph``, spec §3.5).

Per training iteration (1-based global ``iteration``, 1-based ``epoch``):

* curriculum factor ``c`` = value of an Ignite ``CosineAnnealingScheduler`` (start 1, end 0, cycle
  ``C = curriculum_it * iter_per_epoch`` events, ``start_value_mult=0``) called once per iteration at
  ``ITERATION_STARTED``: at its i-th call (0-based) ``c = 1 + (0 - 1)/2 * (1 - cos(pi * i / C))`` for i < C,
  and 0 forever after. No curriculum (``curriculum_it`` 0/None): ``c = 0``.
* ``ph_min`` = ``ph_min_target`` if ``epoch >= ph_min_from_epoch`` else entry ``iteration`` of the integer
  ``torch.linspace(1, ph_min_target, ph_min_from_epoch * iter_per_epoch)``; closed form
  ``1 + ((ph_min_target - 1) * i) // (L - 1)`` (bit-identical, no 116k-element array per step, spec §9.4).
* ``ph = max(rint((1 - c) * ph_train), ph_min)``; if random and ``ph > ph_min``: ``ph ~ randint(ph_min, ph)``
  (numpy global RNG, upper bound exclusive: the full horizon is never drawn, as in the official code).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

__all__ = ["curriculum_factor", "min_horizon", "horizon_upper_bound", "draw_horizon", "HorizonCurriculum"]


def curriculum_factor(call_index: int, cycle_size: int | None) -> float:
    """Cosine curriculum factor at the ``call_index``-th (0-based) scheduler call; 0 when disabled."""
    if not cycle_size or cycle_size <= 0:
        return 0.0
    if call_index >= cycle_size:
        return 0.0  # start_value_mult = 0 freezes start = end = 0 after the first cycle
    start, end = 1.0, 0.0
    progress = call_index / cycle_size
    return start + ((end - start) / 2) * (1 - math.cos(math.pi * progress))


def min_horizon(iteration: int, epoch: int, iter_per_epoch: int, ph_min_target: int = 10,
                ph_min_from_epoch: int = 200) -> int:
    """Minimum horizon ``ph_min`` at the 1-based global ``iteration`` during 1-based ``epoch``."""
    if epoch >= ph_min_from_epoch:
        return int(ph_min_target)
    length = ph_min_from_epoch * iter_per_epoch
    if length <= 1:
        return 1
    i = min(int(iteration), length - 1)  # the official index never exceeds L-1 with fixed epoch lengths
    return 1 + ((ph_min_target - 1) * i) // (length - 1)


def horizon_upper_bound(c: float, ph_train: int, ph_min: int) -> int:
    """``max(rint((1 - c) * ph_train), ph_min)`` (numpy ``rint``: halves round to even)."""
    return max(int(np.rint((1.0 - c) * ph_train)), int(ph_min))


def draw_horizon(ph: int, ph_min: int, random_horizon: bool, rng: Any = np.random) -> int:
    """Draw ``U{ph_min, ..., ph-1}`` with ``rng.randint`` when random and ``ph > ph_min``; else ``ph``."""
    if random_horizon and ph > ph_min:
        return int(rng.randint(ph_min, ph))
    return int(ph)


class HorizonCurriculum:
    """Stateful curriculum: call :meth:`advance` once per iteration (``ITERATION_STARTED``), then :meth:`sample`.

    Args:
        iter_per_epoch: iterations per epoch (``num_iter_perepoch``).
        curriculum_it: curriculum length in epochs (0/None: no curriculum, c = 0).
        prediction_horizon_train: full training horizon (120).
        ph_min_target: ``prediction_horizon_train_min`` (10).
        ph_min_from_epoch: ``prediction_horizon_train_min_from_epoch`` (200).
        random_prediction_horizon: draw ``ph`` uniformly below the curriculum bound.
    """

    def __init__(self, iter_per_epoch: int, curriculum_it: int | None = 10, prediction_horizon_train: int = 120,
                 ph_min_target: int = 10, ph_min_from_epoch: int = 200,
                 random_prediction_horizon: bool = True) -> None:
        if iter_per_epoch < 1:
            raise ConfigError(f"iter_per_epoch must be >= 1, got {iter_per_epoch}")
        if ph_min_target < 1 or ph_min_target > prediction_horizon_train:
            raise ConfigError(f"prediction_horizon_train_min={ph_min_target} must be in [1, "
                              f"prediction_horizon_train={prediction_horizon_train}]")
        self.iter_per_epoch = int(iter_per_epoch)
        self.cycle_size = int(curriculum_it * iter_per_epoch) if curriculum_it else 0
        self.ph_train = int(prediction_horizon_train)
        self.ph_min_target = int(ph_min_target)
        self.ph_min_from_epoch = int(ph_min_from_epoch)
        self.random = bool(random_prediction_horizon)
        self.calls = 0
        self.factor = 0.0  # the official initial value before the first call

    def advance(self, _: Any = None) -> float:
        """One scheduler event (official: ``ITERATION_STARTED``); returns the new factor."""
        if self.cycle_size:
            self.factor = curriculum_factor(self.calls, self.cycle_size)
            self.calls += 1
        return self.factor

    def sample(self, iteration: int, epoch: int, rng: Any = np.random) -> int:
        """Horizon for the current step (``engine.state.iteration`` / ``.epoch``, both 1-based)."""
        ph_min = min_horizon(iteration, epoch, self.iter_per_epoch, self.ph_min_target, self.ph_min_from_epoch)
        ph = horizon_upper_bound(self.factor, self.ph_train, ph_min)
        return draw_horizon(ph, ph_min, self.random, rng)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_STARTED, self.advance)

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "factor": self.factor, "cycle_size": self.cycle_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load our state or the official Ignite ``CosineAnnealingScheduler`` state (``curriculum_scheduler``)."""
        if "calls" in state:
            if int(state.get("cycle_size", self.cycle_size)) != self.cycle_size:
                raise CheckpointError(f"curriculum state has cycle_size={state['cycle_size']} but this run has "
                                      f"{self.cycle_size} (curriculum_it * iter_per_epoch); use the saved config")
            self.calls = int(state["calls"])
            self.factor = float(state["factor"])
        elif "event_index" in state and "cycle" in state:
            total = int(state.get("total_cycle_size", state["cycle_size"]))
            self.calls = int(state["event_index"]) + (self.cycle_size if int(state["cycle"]) > 0 else 0)
            self.cycle_size = self.cycle_size or total
            self.factor = curriculum_factor(self.calls - 1, self.cycle_size) if self.calls else 0.0
        else:
            raise CheckpointError(f"curriculum state not recognised; got keys {sorted(state)}")
