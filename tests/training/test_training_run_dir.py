"""Run folders and resume resolution."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skeleton_diffusion.checkpoints.format import make_meta, save_checkpoint
from skeleton_diffusion.training.run_dir import prepare_run_dir, resolve_resume, run_dir_path, timestamp
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError


class _H:
    def state_dict(self):
        return {"x": 1}


def _cfg(**kw):
    base = {"seed": 1, "model": {"lr": 5e-3}, "output_log_path": "somewhere", "device": "auto"}
    base.update(kw)
    return OmegaConf.create(base)


def test_layout_and_timestamp(tmp_path: Path) -> None:
    assert timestamp(dt.datetime(2025, 6, 30, 11, 35, 8)) == "June30_11-35-08"
    p = run_dir_path(tmp_path / "output", "hmp", "amass", "autoencoder", "June30_11-35-08")
    assert p == tmp_path / "output/hmp/amass/autoencoder/June30_11-35-08"
    run = prepare_run_dir(p, _cfg(interp="${seed}"))
    assert run.config_path.is_file() and run.checkpoints.is_dir() and run.tb.is_dir()
    assert OmegaConf.load(run.config_path).interp == 1  # resolved
    # a second job in the same second gets a suffixed folder
    assert run_dir_path(tmp_path / "output", "hmp", "amass", "autoencoder", "June30_11-35-08").name == "June30_11-35-08_1"


def test_refuses_to_overwrite_another_run(tmp_path: Path) -> None:
    run = prepare_run_dir(tmp_path / "r", _cfg())
    prepare_run_dir(tmp_path / "r", _cfg(device="cpu", output_log_path="else"))  # same run, volatile keys only
    save_checkpoint(run.checkpoints / "checkpoint_1.pt", {"h": _H()})
    with pytest.raises(ConfigError, match="already holds a training run with checkpoints"):
        prepare_run_dir(tmp_path / "r", _cfg())
    # resuming is allowed; config.yaml becomes the effective config (a later resume=auto trains on with it), the
    # previous one is kept beside it (issue 28 item 11)
    prepare_run_dir(tmp_path / "r", _cfg(model={"lr": 1e-3}), resume=True)
    assert OmegaConf.load(run.config_path).model.lr == 1e-3
    kept = list(run.root.glob("config_before_resume_*.yaml"))
    assert len(kept) == 1 and OmegaConf.load(kept[0]).model.lr == 5e-3
    with pytest.raises(CheckpointError, match="does not exist"):
        prepare_run_dir(tmp_path / "missing", _cfg(), resume=True)


def test_resolve_resume_forms(tmp_path: Path) -> None:
    run = prepare_run_dir(tmp_path / "run", _cfg(seed=77))
    assert resolve_resume(None) is None and resolve_resume("") is None
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        resolve_resume(run.root)
    for e in (1, 2):
        save_checkpoint(run.checkpoints / f"checkpoint_{e}.pt", {"h": _H()}, make_meta("autoencoder", "amass"))
    spec = resolve_resume(str(run.root))
    assert spec.run_dir == run.root and spec.checkpoint.name == "checkpoint_2.pt" and spec.config.seed == 77
    spec = resolve_resume(run.checkpoints / "checkpoint_1.pt")
    assert spec.run_dir == run.root and spec.checkpoint.name == "checkpoint_1.pt"
    # the official four
    spec = resolve_resume(if_resume_training=True, output_log_path=str(run.root), load_path="")
    assert spec.checkpoint.name == "checkpoint_2.pt" and spec.config.seed == 77
    spec = resolve_resume(if_resume_training=True, output_log_path=run.root, load_path=run.checkpoints / "checkpoint_1.pt")
    assert spec.checkpoint.name == "checkpoint_1.pt"
    with pytest.raises(ConfigError, match="is not the run folder of load_path"):
        resolve_resume(if_resume_training=True, output_log_path=tmp_path, load_path=run.checkpoints / "checkpoint_1.pt")
    with pytest.raises(ConfigError, match="needs output_log_path"):
        resolve_resume(if_resume_training=True)
    assert resolve_resume(if_resume_training=False, output_log_path=run.root) is None
    # resume=auto: resume when the folder has a checkpoint, else fresh
    assert resolve_resume("auto", output_log_path=run.root).checkpoint.name == "checkpoint_2.pt"
    assert resolve_resume("auto", output_log_path=tmp_path / "new") is None
    with pytest.raises(CheckpointError, match="neither a run folder nor a checkpoint"):
        resolve_resume(tmp_path / "nothing")


def test_apply_overrides_on_resumed_config() -> None:
    from skeleton_diffusion.training.run_dir import apply_overrides

    saved = OmegaConf.create({"seed": 1, "model": {"lr": 5e-3, "num_epochs": 200}, "dataset": {"name": "amass"},
                              "extra": 3})
    out = apply_overrides(saved, ["model.num_epochs=300", "+model.new=[1, 2]", "~extra", "resume=/some/run",
                                  "if_resume_training=true", "load_path=x.pt", "hydra.run.dir=.", "progress=false"])
    assert out.model.num_epochs == 300 and list(out.model.new) == [1, 2] and "extra" not in out
    assert "resume" not in out and "load_path" not in out and out.progress is False
    assert saved.model.num_epochs == 200  # the input is not modified
    with pytest.raises(ConfigError, match="swaps the config group 'dataset'"):
        apply_overrides(saved, ["dataset=h36m"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(saved, ["model.lr"])
