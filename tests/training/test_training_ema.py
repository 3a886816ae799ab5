"""EMA with the official ema-pytorch semantics (spec §6.3)."""

from __future__ import annotations

import io

import pytest
import torch
from ema_pytorch import EMA
from ignite.engine import Engine

from skeleton_diffusion.training.ema import ModelEMA, attach_ema, ema_decay, ema_update_kind
from skeleton_diffusion.utils.errors import CheckpointError


def _model() -> torch.nn.Module:
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    return m


def _set(model: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for t in list(model.parameters()) + [model[1].running_mean]:
            t.fill_(value)


def test_update_kinds_follow_the_official_counter() -> None:
    kinds = [ema_update_kind(n) for n in range(1, 132)]
    assert kinds[0] == "init"
    assert [n for n in range(1, 132) if kinds[n - 1] == "copy"] == [11, 21, 31, 41, 51, 61, 71, 81, 91, 101]
    assert [n for n in range(1, 132) if kinds[n - 1] == "lerp"] == [111, 121, 131]
    assert kinds.count("skip") == 131 - 1 - 10 - 3


def test_decay_values() -> None:
    assert ema_decay(101) == 0.0 and ema_decay(50) == 0.0
    assert ema_decay(111) == pytest.approx(1 - 11 ** (-2 / 3))  # e = 111 - 101 = 10
    # the 0.995 cap: 1 - (1 + e)^(-2/3) = 0.995 at e = 200^1.5 - 1 ~ 2827.4
    assert ema_decay(101 + 2827) < 0.995
    assert ema_decay(101 + 2828) == 0.995
    assert ema_decay(10**7) == 0.995
    assert ema_decay(105, min_value=0.9) == 0.9 and ema_decay(105) == pytest.approx(1 - 5 ** (-2 / 3))


def test_weights_follow_hand_simulation() -> None:
    model = _model()
    ema = ModelEMA(model)  # official defaults: beta .995, after 100, every 10, power 2/3
    expected = None
    for n in range(1, 141):
        online = float(n)
        _set(model, online)
        ema.update()
        kind = ema_update_kind(n)
        if kind in ("init", "copy"):
            expected = online
        elif kind == "lerp":
            d = ema_decay(n)
            expected = d * expected + (1 - d) * online
        got = ema.ema_model[0].weight
        assert torch.allclose(got, torch.full_like(got, expected), rtol=0, atol=1e-4), (n, kind)
        assert torch.allclose(ema.ema_model[1].running_mean, torch.full((2,), expected), atol=1e-4)  # buffers too
    assert int(ema.step) == 140
    # the ema differs from a plain copy after lerps
    assert float(ema.ema_model[0].weight[0, 0]) < 140


def test_state_dict_layouts_round_trip() -> None:
    model = _model()
    ema = ModelEMA(model, update_after_step=0, update_every=1)
    for v in (1.0, 2.0, 5.0):
        _set(model, v)
        ema.update()
    sd = ema.state_dict()
    assert not any(k.startswith("online_model.") for k in sd)
    assert {"initted", "step"} <= set(sd)
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    other = ModelEMA(_model(), update_after_step=0, update_every=1)
    other.load_state_dict(loaded)
    assert int(other.step) == 3 and torch.equal(other.ema_model[0].weight, ema.ema_model[0].weight)
    # the official layout (ema-pytorch default include_online_model=True) loads too
    official = EMA(model, beta=0.995, update_after_step=100, update_every=10).state_dict()
    assert any(k.startswith("online_model.") for k in official)
    ModelEMA(_model()).load_state_dict(official)
    with pytest.raises(CheckpointError, match="EMA state"):
        ModelEMA(torch.nn.Sequential(torch.nn.Linear(3, 3))).load_state_dict(sd)


def test_attach_ema_updates_every_iteration() -> None:
    model = _model()
    ema = ModelEMA(model)
    engine = Engine(lambda e, b: None)
    attach_ema(engine, ema)
    engine.run([0] * 7, max_epochs=2)
    assert int(ema.step) == 14


def test_ema_from_config_reads_the_model_block_with_official_defaults() -> None:
    from omegaconf import OmegaConf

    from skeleton_diffusion.training.ema import ModelEMA, ema_from_config

    net = torch.nn.Linear(2, 2)
    ema = ema_from_config(net, OmegaConf.create({"if_use_ema": True, "ema_decay": 0.9, "step_start_ema": 5,
                                                 "ema_update_every": 2, "ema_power": 0.5, "ema_min_value": 0.1}))
    assert isinstance(ema, ModelEMA)
    assert (ema.beta, ema.update_after_step, ema.update_every, ema.power, ema.min_value) == (0.9, 5, 2, 0.5, 0.1)
    default = ema_from_config(net, OmegaConf.create({}))
    assert (default.beta, default.update_after_step, default.update_every, default.power, default.min_value) == (
        0.995, 100, 10, 2.0 / 3.0, 0.0)
    assert ema_from_config(net, OmegaConf.create({"if_use_ema": False})) is None
