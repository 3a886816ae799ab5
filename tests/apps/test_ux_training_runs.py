"""Issue 28 items 3, 5 and 11 (resume): a failed start does not block, a resume of another stage names the right
script, overrides given on resume reach the run's ``config.yaml``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skeleton_diffusion.checkpoints.format import make_meta, save_checkpoint
from skeleton_diffusion.training.run_dir import check_resume_stage, prepare_run_dir, resolve_resume
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

REPO = Path(__file__).resolve().parents[2]


class _H:
    def state_dict(self):
        return {"x": 1}


def _cfg(**kw):
    base = {"stage": "autoencoder", "task": {"task_name": "hmp"}, "seed": 1, "model": {"lr": 5e-3}, "output_log_path": "x",
            "device": "auto"}
    base.update(kw)
    return OmegaConf.create(base)


def test_a_run_folder_without_checkpoint_does_not_block_a_fresh_start(tmp_path: Path) -> None:
    """Before: the corrected rerun was refused ("holds a different run ... resume it") and so was the resume."""
    failed = prepare_run_dir(tmp_path / "ft", _cfg(data="corrupt.bvh"))  # the start that failed on bad data
    run = prepare_run_dir(tmp_path / "ft", _cfg(data="fixed.bvh"))
    assert OmegaConf.load(run.config_path).data == "fixed.bvh"
    kept = list(failed.root.glob("config_unstarted_*.yaml"))  # nothing lost
    assert len(kept) == 1 and OmegaConf.load(kept[0]).data == "corrupt.bvh"


def test_resuming_a_run_without_checkpoint_names_the_command_that_works(tmp_path: Path) -> None:
    run = prepare_run_dir(tmp_path / "ft", _cfg())
    with pytest.raises(CheckpointError) as err:
        resolve_resume(str(run.root))
    msg = str(err.value)
    assert f"python train_autoencoder.py output_log_path={run.root}" in msg and "afresh" in msg


@pytest.mark.parametrize("saved,want,script", [("diffusion", "autoencoder", "train_diffusion.py"),
                                               ("autoencoder", "diffusion", "train_autoencoder.py"),
                                               ("lifting", "diffusion", "train_lifting.py")])
def test_resume_of_another_stage_names_the_stage_and_the_script(tmp_path, saved, want, script) -> None:
    run = prepare_run_dir(tmp_path / "r", _cfg(stage=saved))
    save_checkpoint(run.checkpoints / "checkpoint_1.pt", {"h": _H()}, make_meta(saved, "synthetic"))
    with pytest.raises(ConfigError, match=rf"is a {saved} run.*trains the {want} stage.*python {script} resume="):
        check_resume_stage(OmegaConf.create({"stage": want, "resume": str(run.root)}))
    check_resume_stage(OmegaConf.create({"stage": saved, "resume": str(run.root)}))  # its own script: fine


@pytest.mark.slow
@pytest.mark.parametrize("script,saved,right", [("train_autoencoder.py", "diffusion", "train_diffusion.py"),
                                                ("train_diffusion.py", "autoencoder", "train_autoencoder.py")])
def test_cli_resume_of_another_stage_is_one_paragraph(tmp_path, script, saved, right) -> None:
    """Before: ``Missing key dataset`` (a traceback) and a blame on ``model.pretrained_autoencoder_path``."""
    run = prepare_run_dir(tmp_path / "r", _cfg(stage=saved))
    save_checkpoint(run.checkpoints / "checkpoint_1.pt", {"h": _H()}, make_meta(saved, "synthetic"))
    res = subprocess.run([sys.executable, str(REPO / script), f"resume={run.root}"], cwd=tmp_path,
                         env=dict(os.environ, PYTHONWARNINGS="ignore"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert f"python {right} resume={run.root}" in " ".join(res.stderr.split())
    assert "pretrained_autoencoder_path" not in res.stderr


def test_overrides_given_on_resume_reach_config_yaml(tmp_path: Path) -> None:
    """Before: kept only in config_resumed_*.yaml, so a later ``resume=auto`` trained on with the old value."""
    from skeleton_diffusion.training.launch import setup_run

    run = prepare_run_dir(tmp_path / "r", _cfg(model={"lr": 5e-3, "num_epochs": 2}, output_log_path=str(tmp_path / "r")))
    save_checkpoint(run.checkpoints / "checkpoint_1.pt", {"h": _H()}, make_meta("autoencoder", "synthetic"))
    setup_run(_cfg(resume=str(run.root)), overrides=[f"resume={run.root}", "model.num_epochs=5"])
    later = resolve_resume("auto", output_log_path=run.root)
    assert later.config.model.num_epochs == 5
