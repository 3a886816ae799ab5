"""Atomic checkpoints: contents, weights_only safety, retention, best-by-score, discovery, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from skeleton_diffusion.checkpoints.format import (
    build_checkpoint,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    make_meta,
    save_checkpoint,
)
from skeleton_diffusion.training.checkpointing import CheckpointSaver, NonFiniteLossGuard
from skeleton_diffusion.training.rng import RNGState
from skeleton_diffusion.training.engine_utils import make_generator
from skeleton_diffusion.utils.errors import CheckpointError


class _Holder:
    def __init__(self, value) -> None:
        self.value = value

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def _engine(epoch: int = 1, iteration: int = 10) -> Engine:
    e = Engine(lambda eng, b: None)
    e.state.epoch, e.state.iteration, e.state.epoch_length, e.state.max_epochs = epoch, iteration, 10, 100
    return e


def test_round_trip_weights_only(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    trainer = _engine(3, 30)
    objs = {"model": model, "optimizer": opt, "trainer": trainer, "random_states": RNGState(make_generator(1))}
    path = save_checkpoint(tmp_path / "c.pt", objs, make_meta("diffusion", "h36m", note="x"))
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "optimizer", "trainer", "random_states", "meta"}
    assert raw["meta"] == {**raw["meta"], "stage": "diffusion", "skeleton": "h36m", "format_version": 1, "note": "x"}
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(model2.parameters())
    trainer2 = Engine(lambda eng, b: None)
    load_checkpoint(path, {"model": model2, "optimizer": opt2, "trainer": trainer2}, expected_stage="diffusion",
                    strict=False)
    assert torch.equal(model2.weight, model.weight)
    assert trainer2.state.iteration == 30 and trainer2.state.epoch == 3
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_errors_name_the_fault(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint\['bad'\]\['value'\] is a numpy.ndarray"):
        build_checkpoint({"bad": _Holder(np.zeros(3))})
    with pytest.raises(CheckpointError, match="float64"):
        build_checkpoint({"bad": _Holder(np.float64(1.0))})  # float subclass: refused by the safe loader
    with pytest.raises(CheckpointError, match="stage"):
        make_meta("vae", "amass")
    path = save_checkpoint(tmp_path / "a.pt", {"h": _Holder(1)}, make_meta("autoencoder", "amass"))
    with pytest.raises(CheckpointError, match="'autoencoder' checkpoint, expected 'diffusion'"):
        load_checkpoint(path, {"h": _Holder(0)}, expected_stage="diffusion")
    with pytest.raises(CheckpointError, match="skeleton 'amass'"):
        load_checkpoint(path, {"h": _Holder(0)}, expected_skeleton="h36m")
    with pytest.raises(CheckpointError, match=r"lacks \['model'\]"):
        load_checkpoint(path, {"h": _Holder(0), "model": torch.nn.Linear(1, 1)})
    bad_model = save_checkpoint(tmp_path / "m.pt", {"model": torch.nn.Linear(2, 2)})
    with pytest.raises(CheckpointError, match="could not restore 'model'"):
        load_checkpoint(bad_model, {"model": torch.nn.Linear(3, 3)})
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt", {"h": _Holder(0)})


def test_periodic_retention_last_link_and_rescan(tmp_path: Path) -> None:
    holder = _Holder(0)
    saver = CheckpointSaver(tmp_path, {"h": holder}, make_meta("autoencoder", "amass"), n_saved=2)
    for epoch in range(1, 5):
        holder.value = epoch
        saver(_engine(epoch, epoch * 10))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_3.pt", "checkpoint_4.pt", "last.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["h"]["value"] == 4
    assert torch.load(tmp_path / "last.pt", weights_only=True)["meta"]["iteration"] == 40
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    # a new saver in the same folder (resumed run) counts the existing files
    again = CheckpointSaver(tmp_path, {"h": holder}, None, n_saved=2)
    holder.value = 5
    again(_engine(5, 50))
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt")) == ["checkpoint_4.pt", "checkpoint_5.pt"]
    # restarting from an earlier checkpoint: the newly written file is kept, the oldest written goes
    holder.value = 3
    again(_engine(3, 30))
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt")) == ["checkpoint_3.pt", "checkpoint_5.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["h"]["value"] == 3
    keep_all = CheckpointSaver(tmp_path / "all", {"h": holder}, n_saved=None)
    for epoch in (50, 100, 150):
        keep_all(_engine(epoch))
    assert [s for s, _ in list_checkpoints(tmp_path / "all")] == [50, 100, 150]


def test_best_by_score(tmp_path: Path) -> None:
    holder = _Holder(0)
    scores = iter([-0.5, -0.3, -0.4, -0.9, -0.1])  # negated ADE: higher is better
    best = CheckpointSaver(tmp_path, {"h": holder}, n_saved=2, score_fn=lambda e: next(scores), score_name="val_ade")
    for epoch in range(1, 6):
        best(_engine(epoch))
    names = sorted(p.name for p in tmp_path.glob("checkpoint_*.pt"))
    assert names == ["checkpoint_2_val_ade=0.3000.pt", "checkpoint_5_val_ade=0.1000.pt"]  # the ADE, not -ADE
    with pytest.raises(ValueError):
        CheckpointSaver(tmp_path, {"h": holder}, score_name="x")


def test_find_latest_checkpoint_rules(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert find_latest_checkpoint(run) is None
    for name in ("checkpoint_50.pt", "checkpoint_100.pt", "checkpoint_100_val_mpjpe=-0.0123.pt", "checkpoint_7.pt"):
        save_checkpoint(run / "checkpoints" / name, {"h": _Holder(name)})
    assert find_latest_checkpoint(run).name == "checkpoint_100.pt"  # official: highest epoch
    save_checkpoint(run / "checkpoints" / "latest_120.pt", {"h": _Holder("l")})
    assert find_latest_checkpoint(run).name == "latest_120.pt"  # any prefix counts
    assert find_latest_checkpoint(run, prefix="checkpoint").name == "checkpoint_100.pt"
    save_checkpoint(run / "checkpoints" / "last.pt", {"h": _Holder("last")})
    assert find_latest_checkpoint(run).name == "last.pt"
    with pytest.raises(CheckpointError, match="does not exist"):
        find_latest_checkpoint(tmp_path / "nope")


def test_nan_guard_modes(tmp_path: Path) -> None:
    engine = _engine()
    engine.state.output = {"loss": torch.tensor(float("inf"))}
    guard = NonFiniteLossGuard(mode="terminate")
    guard(engine)
    assert engine.state.diverged and engine.should_terminate
    saver = CheckpointSaver(tmp_path, {"h": _Holder(1)})
    assert saver(engine) is None and not list(tmp_path.glob("*.pt"))
    ok = _engine()
    for out in (0.5, (torch.tensor(0.2), 3), {"loss": 1.0}):
        ok.state.output = out
        NonFiniteLossGuard()(ok)
    assert not getattr(ok.state, "diverged", False)
