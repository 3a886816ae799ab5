"""Official ExponentialLRSchedulerWarmup semantics (spec §7.3, §3.5, §6.3)."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import create_lr_scheduler_with_warmup
from torch.optim.lr_scheduler import ExponentialLR

from skeleton_diffusion.training.lr_schedule import ExponentialLRSchedulerWarmup, lr_trace
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError


def _hand_list(num_epochs, lr, warm, every, min_lr, gamma):
    """Hand-derived trace: constant for the hold, x gamma at each epoch that decays, floor one epoch late."""
    # decays happen at epochs e >= warm with e % every == 0, except the first such epoch (last hold event)
    decay_epochs = [e for e in range(warm, num_epochs + 1) if e % every == 0][1:]
    out, cur, frozen = [], lr, False
    for e in range(1, num_epochs + 1):
        if not frozen and e >= warm and cur <= min_lr:
            cur, frozen = min_lr, True
        elif not frozen and e in decay_epochs:
            cur = cur * gamma
        out.append(cur)
    return out


def test_ae_defaults_trace() -> None:
    trace = lr_trace(260, lr=5e-3, warmup_duration=10, update_every=1, min_lr=1e-4, gamma_decay=0.98)
    assert trace == _hand_list(260, 5e-3, 10, 1, 1e-4, 0.98)
    assert trace[:10] == [5e-3] * 10  # epochs 1..10 constant
    assert trace[10] == 5e-3 * 0.98  # epoch 11: first decay = lr * gamma (Ignite pre-advance)
    for e in (11, 50, 150, 203):
        assert trace[e - 1] == pytest.approx(5e-3 * 0.98 ** (e - 10), rel=1e-12)
    assert trace[199] == pytest.approx(1.08e-4, rel=0.01)  # "at epoch 200 it is ~1.08e-4"
    assert trace[203] < 1e-4  # epoch 204 sits just below the floor ...
    assert trace[204:] == [1e-4] * (260 - 204)  # ... clamped from epoch 205 and frozen


def test_diffusion_defaults_trace() -> None:
    trace = lr_trace(500, lr=1e-3, warmup_duration=200, update_every=2, min_lr=1e-4, gamma_decay=0.98)
    assert trace == _hand_list(500, 1e-3, 200, 2, 1e-4, 0.98)
    assert trace[:201] == [1e-3] * 201  # constant until epoch 201
    assert trace[201] == 1e-3 * 0.98 and trace[202] == trace[201]  # first decay at 202, then every 2 epochs
    assert trace[203] == 1e-3 * 0.98 * 0.98
    first_floor = next(e for e, v in enumerate(trace, 1) if v == 1e-4)
    assert first_floor == 429  # spec table: floor 1e-4 at epoch 429
    assert trace[428:] == [1e-4] * (500 - 428)


@pytest.mark.parametrize(
    "name,warm,every,gamma,const_until,floor_from",
    [("amass", 75, 2, 0.98, 77, None), ("freeman", 25, 5, 0.85, 29, 101), ("h36m", 25, 2, 0.85, 27, 57)],
)
def test_readme_recipes(name, warm, every, gamma, const_until, floor_from) -> None:
    trace = lr_trace(160, lr=1e-3, warmup_duration=warm, update_every=every, min_lr=1e-4, gamma_decay=gamma)
    assert trace[const_until - 1] == 1e-3 and trace[const_until] < 1e-3, name
    if floor_from is None:
        assert trace[149] == pytest.approx(4.7e-4, rel=0.02) and min(trace) > 1e-4
    else:
        assert trace[floor_from - 2] != 1e-4 and trace[floor_from - 1] == 1e-4


def _official_reference(num_epochs, lr, warm, every, min_lr, gamma, *, stop_after=None, resume_state=None):
    """The official construction on Ignite (written here from the spec's description)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=lr)
    inner = create_lr_scheduler_with_warmup(ExponentialLR(opt, gamma=gamma), warmup_start_value=lr,
                                            warmup_end_value=lr, warmup_duration=warm)
    engine = Engine(lambda e, b: None)
    reached = False
    out = []
    for e in range(1, num_epochs + 1):
        engine.state.epoch = e
        if e < warm:
            inner(engine)
        elif not reached:
            for g in opt.param_groups:
                if g["lr"] <= min_lr:
                    g["lr"] = min_lr
                    reached = True
            if e % every == 0 and not reached:
                inner(engine)
        out.append(opt.param_groups[0]["lr"])
        if stop_after == e:
            return out, inner.state_dict(), opt.state_dict()
    return out, None, None


@pytest.mark.parametrize("warm,every,gamma,min_lr", [(10, 1, 0.98, 1e-4), (200, 2, 0.98, 1e-4), (25, 5, 0.85, 1e-4),
                                                     (3, 3, 0.5, 0.0)])
def test_bit_identical_to_ignite_construction(warm, every, gamma, min_lr) -> None:
    ref, _, _ = _official_reference(450, 5e-3, warm, every, min_lr, gamma)
    assert lr_trace(450, 5e-3, warm, every, min_lr, gamma) == ref  # exact float equality


@pytest.mark.parametrize("stop", [5, 12, 30])
def test_loads_official_ignite_state(stop) -> None:
    warm, every, gamma = 10, 2, 0.9
    ref, sched_state, opt_state = _official_reference(60, 1e-2, warm, every, 1e-4, gamma, stop_after=stop)
    full, _, _ = _official_reference(60, 1e-2, warm, every, 1e-4, gamma)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-2)
    opt.load_state_dict(opt_state)
    ours = ExponentialLRSchedulerWarmup(opt, 1e-2, warm, every, 1e-4, gamma)
    ours.load_state_dict(sched_state)
    cont = []
    for e in range(stop + 1, 61):
        ours.step(e)
        cont.append(opt.param_groups[0]["lr"])
    assert cont == full[stop:]


def test_state_dict_round_trip_and_engine_attach() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = ExponentialLRSchedulerWarmup(opt, 1.0, warmup_duration=2, update_every=1, min_lr=0.3, gamma_decay=0.5)
    engine = Engine(lambda e, b: None)
    sched.attach(engine)
    seen = []
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(opt.param_groups[0]["lr"]))
    engine.run([0], max_epochs=6)
    assert seen == [1.0, 1.0, 0.5, 0.25, 0.3, 0.3]
    state = sched.state_dict()
    assert state["floor_reached"] and state["num_advances"] == 4
    other = ExponentialLRSchedulerWarmup(opt, 1.0, warmup_duration=2, update_every=1, min_lr=0.3, gamma_decay=0.5)
    other.load_state_dict(state)
    other.step(7)
    assert opt.param_groups[0]["lr"] == 0.3
    sched.step(6)  # same epoch again (mid-epoch resume): no-op
    assert sched.num_advances == 4
    bad = ExponentialLRSchedulerWarmup(opt, 1.0, warmup_duration=3)
    with pytest.raises(CheckpointError, match="warmup_duration"):
        bad.load_state_dict(state)
    with pytest.raises(CheckpointError, match="not recognised"):
        bad.load_state_dict({"foo": 1})


def test_min_lr_none_keeps_decaying_and_validation() -> None:
    trace = lr_trace(8, 1.0, warmup_duration=2, update_every=1, min_lr=None, gamma_decay=0.5)
    assert trace == [1.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    with pytest.raises(ConfigError, match="min_lr"):
        ExponentialLRSchedulerWarmup(opt, 1e-3, min_lr=1e-2)
    with pytest.raises(ConfigError, match="warmup_duration"):
        ExponentialLRSchedulerWarmup(opt, 1e-3, warmup_duration=0)
    assert math.isclose(lr_trace(1, 2e-3, 5, 1, 0.0, 0.9)[0], 2e-3)
