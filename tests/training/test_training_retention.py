"""Checkpoint retention policy: keep_last + keep_every, configurable, and safe across a resume (issue 15.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ignite.engine import Engine
from omegaconf import OmegaConf

from _pipeline_helpers import ae_cfg, compose_cfg, make_synthetic
from skeleton_diffusion.methods.skeleton_diffusion import train_autoencoder as autoencoder_trainer
from skeleton_diffusion.checkpoints.format import make_meta
from skeleton_diffusion.training.checkpointing import CheckpointSaver, retention_from_config
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.utils.io import safe_torch_load


class _Holder:
    def __init__(self) -> None:
        self.value = 0

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def _engine(epoch: int) -> Engine:
    e = Engine(lambda eng, b: None)
    e.state.epoch, e.state.iteration, e.state.epoch_length, e.state.max_epochs = epoch, epoch * 10, 10, 100
    return e


def _steps(folder: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("checkpoint_*.pt"))


def test_keep_last_plus_every_kth(tmp_path: Path) -> None:
    holder = _Holder()
    saver = CheckpointSaver(tmp_path, {"h": holder}, make_meta("autoencoder", "amass"), n_saved=2, keep_every=3)
    for epoch in range(1, 8):
        holder.value = epoch
        saver(_engine(epoch))
    assert _steps(tmp_path) == [3, 6, 7]  # the newest two (6, 7) plus every 3rd (3, 6)
    assert safe_torch_load(tmp_path / "last.pt")["h"]["value"] == 7
    with pytest.raises(ValueError, match="keep_every"):
        CheckpointSaver(tmp_path, {"h": holder}, keep_every=0)
    with pytest.raises(ValueError, match="keep_every"):
        CheckpointSaver(tmp_path, {"h": holder}, keep_every=2, score_fn=lambda e: 0.0, score_name="x")


def test_resume_keeps_what_the_policy_keeps(tmp_path: Path) -> None:
    holder = _Holder()
    first = CheckpointSaver(tmp_path, {"h": holder}, n_saved=1, keep_every=2)
    for epoch in range(1, 5):
        first(_engine(epoch))
    assert _steps(tmp_path) == [2, 4]
    # a resumed run: a new saver over the same folder finds 2 and 4 and must not delete them
    resumed = CheckpointSaver(tmp_path, {"h": holder}, n_saved=1, keep_every=2)
    resumed(_engine(5))
    assert _steps(tmp_path) == [2, 4, 5]
    resumed(_engine(6))
    resumed(_engine(7))
    assert _steps(tmp_path) == [2, 4, 6, 7]
    # restarting from an earlier epoch rewrites that file; the kept-forever files stay
    again = CheckpointSaver(tmp_path, {"h": holder}, n_saved=1, keep_every=2)
    again(_engine(3))
    assert _steps(tmp_path) == [2, 3, 4, 6]
    # best-by-score files of the same prefix are never counted or deleted by the periodic saver
    (tmp_path / "checkpoint_1_val_ade=-0.5000.pt").write_bytes((tmp_path / "checkpoint_2.pt").read_bytes())
    again(_engine(5))
    assert (tmp_path / "checkpoint_1_val_ade=-0.5000.pt").exists()


def test_retention_from_config() -> None:
    ae = compose_cfg("train_autoencoder", ["debug=autoencoder"])
    assert retention_from_config(ae, 99) == (3, None)  # default: model.keep_last_n (3) of the autoencoder
    diff = compose_cfg("train_diffusion", ["debug=diffusion"])
    assert retention_from_config(diff, 99) == (1, None)
    cfg = OmegaConf.create({"checkpoints": {"keep_last": None, "keep_every": 50}, "model": {"keep_last_n": 3}})
    assert retention_from_config(cfg, 1) == (None, 50)
    legacy = OmegaConf.create({"model": {"keep_last_n": 4}})  # a run saved before the block existed
    assert retention_from_config(legacy, 1) == (4, None)
    assert retention_from_config(OmegaConf.create({"model": {}}), 2) == (2, None)
    for bad in ({"keep_last": 0}, {"keep_last": "3"}, {"keep_every": -1}, {"keep_every": True}):
        with pytest.raises(ConfigError, match="checkpoints.keep_"):
            retention_from_config(OmegaConf.create({"checkpoints": bad}), 1)


@pytest.mark.slow
def test_trainer_retention_across_a_real_resume(tmp_path: Path) -> None:
    data = make_synthetic(tmp_path / "data")
    run = tmp_path / "run"
    policy = ["checkpoints.keep_last=1", "checkpoints.keep_every=2"]
    autoencoder_trainer.main(ae_cfg(data, run, ["model.num_epochs=3", *policy]))
    ck = run / "checkpoints"
    assert _steps(ck) == [2, 3]
    resumed = autoencoder_trainer.main(ae_cfg(data, tmp_path / "unused", [f"resume={run}", "model.num_epochs=5"]),
                                       overrides=[f"resume={run}", "model.num_epochs=5"])
    assert resumed["epochs"] == 5
    assert _steps(ck) == [2, 4, 5]  # the saved run config's policy applies after the resume
    assert safe_torch_load(ck / "last.pt")["meta"]["epoch"] == 5
