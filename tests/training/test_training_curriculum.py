"""AE horizon curriculum and random horizon (spec §3.5, official get_random_ph)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import CosineAnnealingScheduler

from skeleton_diffusion.methods.skeleton_diffusion.curriculum import (
    HorizonCurriculum,
    curriculum_factor,
    draw_horizon,
    horizon_upper_bound,
    min_horizon,
)
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError


@pytest.mark.parametrize("ipe", [580, 485, 7, 1])
def test_min_horizon_closed_form_equals_torch_linspace(ipe) -> None:
    length = 200 * ipe
    ref = torch.linspace(1, 10, steps=length, dtype=int)
    idx = torch.arange(length)
    ours = torch.tensor([min_horizon(int(i), 1, ipe) for i in idx[:: max(1, length // 5000)]])
    assert torch.equal(ours, ref[:: max(1, length // 5000)])
    # the stage boundaries exactly
    jumps = torch.nonzero(ref[1:] != ref[:-1]).flatten() + 1
    for j in jumps.tolist():
        assert min_horizon(j, 1, ipe) == int(ref[j]) and min_horizon(j - 1, 1, ipe) == int(ref[j - 1])
    assert min_horizon(1, 1, ipe) == 1
    assert min_horizon(10**9, 200, ipe) == 10  # from epoch 200 on: the target


def test_factor_is_cosine_then_frozen_at_zero() -> None:
    c = 5800
    assert curriculum_factor(0, c) == 1.0
    assert curriculum_factor(2900, c) == pytest.approx(0.5)
    assert curriculum_factor(1000, c) == pytest.approx(0.5 * (1 + math.cos(math.pi * 1000 / 5800)))
    assert curriculum_factor(5799, c) > 0 and curriculum_factor(5800, c) == 0.0 and curriculum_factor(10**6, c) == 0
    assert curriculum_factor(3, 0) == 0.0 and curriculum_factor(3, None) == 0.0


def test_factor_matches_ignite_cosine_scheduler_exactly() -> None:
    class _Holder:
        param_groups = [{"curriculum_factor": 0.0}]

    holder = _Holder()
    sched = CosineAnnealingScheduler(holder, "curriculum_factor", start_value=1.0, end_value=0.0, cycle_size=50,
                                     start_value_mult=0.0)
    engine = Engine(lambda e, b: None)
    ours = HorizonCurriculum(iter_per_epoch=5, curriculum_it=10)
    for _ in range(130):
        sched(engine)
        assert ours.advance() == holder.param_groups[0]["curriculum_factor"]
    # the official checkpoint entry (Ignite scheduler state) continues identically
    restored = HorizonCurriculum(iter_per_epoch=5, curriculum_it=10)
    sched2 = CosineAnnealingScheduler(_Holder(), "curriculum_factor", start_value=1.0, end_value=0.0, cycle_size=50,
                                      start_value_mult=0.0)
    holder2 = sched2.optimizer
    for _ in range(23):
        sched2(engine)
    restored.load_state_dict(sched2.state_dict())
    assert restored.factor == holder2.param_groups[0]["curriculum_factor"]
    for _ in range(40):
        sched2(engine)
        assert restored.advance() == holder2.param_groups[0]["curriculum_factor"]


def test_spec_examples() -> None:
    ipe = 580
    cur = HorizonCurriculum(iter_per_epoch=ipe, curriculum_it=10, prediction_horizon_train=120, ph_min_target=10,
                            ph_min_from_epoch=200, random_prediction_horizon=True)
    cur.advance()
    assert cur.sample(iteration=1, epoch=1) == 1  # training starts with ph = 1
    # half-way through the cosine cycle: bound = rint(0.5 * 120) = 60
    assert horizon_upper_bound(curriculum_factor(2900, 5800), 120, 1) == 60
    assert horizon_upper_bound(1.0, 120, 3) == 3
    assert horizon_upper_bound(0.0, 120, 10) == 120
    assert horizon_upper_bound(0.375, 4, 1) == 2 and horizon_upper_bound(0.125, 4, 1) == 4  # rint: half to even
    # after the cycle: c = 0, ph ~ U{ph_min .. 119}: the full horizon 120 is never drawn
    rng = np.random.RandomState(0)
    draws = [draw_horizon(120, 10, True, rng) for _ in range(20000)]
    assert min(draws) == 10 and max(draws) == 119
    assert draw_horizon(120, 10, False) == 120 and draw_horizon(10, 10, True) == 10


def test_no_curriculum_means_full_bound_and_state_round_trip() -> None:
    cur = HorizonCurriculum(iter_per_epoch=4, curriculum_it=0, random_prediction_horizon=False)
    cur.advance()
    assert cur.factor == 0.0 and cur.sample(1, 1) == 120
    cur = HorizonCurriculum(iter_per_epoch=4, curriculum_it=2)
    engine = Engine(lambda e, b: cur.sample(e.state.iteration, e.state.epoch, np.random.RandomState(e.state.iteration)))
    cur.attach(engine)
    phs = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: phs.append(e.state.output))
    engine.run([0] * 4, max_epochs=3)
    assert cur.calls == 12 and phs[0] == 1 and all(1 <= p < 120 for p in phs[1:])
    other = HorizonCurriculum(iter_per_epoch=4, curriculum_it=2)
    other.load_state_dict(cur.state_dict())
    assert other.advance() == cur.advance()
    with pytest.raises(CheckpointError, match="cycle_size"):
        HorizonCurriculum(iter_per_epoch=5, curriculum_it=2).load_state_dict(cur.state_dict())
    with pytest.raises(ConfigError):
        HorizonCurriculum(iter_per_epoch=0)
