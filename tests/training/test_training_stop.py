"""SIGINT / SIGTERM stop training cleanly: last.pt, one line with the resume command, exit 130 / 143 (issue 15.3)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from _pipeline_helpers import TINY_AE, TINY_DIFF, ae_cfg, make_synthetic
from skeleton_diffusion.methods.skeleton_diffusion import train_autoencoder as autoencoder_trainer
from skeleton_diffusion.training.launch import (STOP, StopRequest, TrainingInterrupted, attach_stop_handler,
                                                interrupt_message, resume_command)
from skeleton_diffusion.utils.io import safe_torch_load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"))


# ------------------------------------------------------------------------------------------------ unit level
def test_handler_raises_before_the_engine_runs_and_defers_while_it_runs() -> None:
    stop = StopRequest()
    with pytest.raises(TrainingInterrupted) as err:
        stop._handle(signal.SIGTERM, None)
    assert err.value.signum == signal.SIGTERM
    stop = StopRequest()
    stop.deferred = True
    stop._handle(signal.SIGINT, None)  # only recorded
    stop._handle(signal.SIGTERM, None)  # a duplicate within 2 s (e.g. forwarded by the parent) is ignored
    assert stop.signum == signal.SIGINT and stop.requested


def test_engine_stops_after_the_current_iteration_without_completed() -> None:
    completed = []
    trainer = Engine(lambda e, b: 0.0)
    attach_stop_handler(trainer)
    trainer.add_event_handler(Events.COMPLETED, lambda e: completed.append(1))

    @trainer.on(Events.ITERATION_STARTED(once=7))  # a signal during step 7
    def _signal(engine):
        STOP.signum = int(signal.SIGINT)  # as the handler would record it

    try:
        STOP.signum = None
        trainer.run(range(5), max_epochs=10)
    finally:
        STOP.signum, STOP.deferred = None, False
    assert trainer.state.iteration == 7 and trainer.state.epoch == 2
    assert trainer.state.stopped_by == signal.SIGINT and not completed


def _interrupted_during_startup(local_rank, cfg):
    raise TrainingInterrupted(signal.SIGTERM)  # what the handler raises before the engine runs


def test_signal_during_startup_exits_143_with_one_line(capsys) -> None:
    from omegaconf import OmegaConf

    from skeleton_diffusion.training.launch import launch

    with pytest.raises(SystemExit) as exit_info:
        launch(_interrupted_during_startup, OmegaConf.create({"nproc_per_node": 1}))
    assert exit_info.value.code == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Stopped by SIGTERM before a training step finished; nothing was saved."]
    assert signal.getsignal(signal.SIGTERM) != STOP._handle and not STOP._previous  # handlers restored afterwards


def test_message_and_resume_command() -> None:
    summary = {"run_dir": "/runs/a", "checkpoint": "/runs/a/checkpoints/last.pt", "epochs": 3, "iterations": 17,
               "resume_command": resume_command("/runs/a", "diffusion")}
    line = interrupt_message(signal.SIGTERM, summary)
    assert "\n" not in line and "SIGTERM" in line and "/runs/a/checkpoints/last.pt" in line
    assert re.search(r"resume with: python train_\w+\.py resume=/runs/a$", line)
    assert "nothing was saved" in interrupt_message(signal.SIGINT, {"run_dir": "/r", "checkpoint": None})


@pytest.mark.slow
def test_interrupted_mid_epoch_then_resumed_matches_an_uninterrupted_run(data_root, tmp_path) -> None:
    """In process: stop request in the middle of epoch 2 -> last.pt of that iteration; resuming reaches the same
    weights as a run that was never stopped (same process, same thread count)."""
    extra = ["model.num_epochs=2", "dataset.data_loader_train.augmentation=0"]
    straight = autoencoder_trainer.main(ae_cfg(data_root, tmp_path / "straight", extra))

    calls = {"n": 0}
    real_check = autoencoder_trainer.AutoencodeStep.forward

    def forward(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 8:  # 6 iterations per epoch: inside epoch 2
            STOP.signum = int(signal.SIGINT)
        return real_check(self, *a, **kw)

    autoencoder_trainer.AutoencodeStep.forward = forward
    try:
        with pytest.raises(SystemExit) as exit_info:
            autoencoder_trainer.main(ae_cfg(data_root, tmp_path / "stopped", extra))
    finally:
        autoencoder_trainer.AutoencodeStep.forward = real_check
        STOP.signum, STOP.deferred = None, False
    assert exit_info.value.code == 130
    ck = safe_torch_load(tmp_path / "stopped" / "checkpoints" / "last.pt")
    assert ck["meta"]["iteration"] == 8 and ck["meta"]["epoch"] == 2 and ck["meta"]["interrupted"] == "SIGINT"
    assert not (tmp_path / "stopped" / "checkpoints" / "checkpoint_2.pt").exists()  # no partial-epoch file
    run = tmp_path / "stopped"
    resumed = autoencoder_trainer.main(ae_cfg(data_root, tmp_path / "unused", [f"resume={run}", *extra]),
                                       overrides=[f"resume={run}"])
    assert resumed["epochs"] == 2 and resumed["iterations"] == straight["iterations"] == 12
    a = safe_torch_load(Path(straight["checkpoint"]))["model"]
    b = safe_torch_load(Path(resumed["checkpoint"]))["model"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------------ real signals
def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    """PIDs of the spawned workers of ``pid`` (not multiprocessing's resource tracker, which exits on its own)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_when(proc: subprocess.Popen, ready: Path, sig: int, timeout: float = 180,
                 children: list[int] | None = None) -> tuple[str, str]:
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not ready.exists() and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "training ended before it was signalled"
        assert ready.exists(), f"{ready} not written before the deadline"
        if children is not None:
            for _ in range(20):  # (ps under heavy load can miss a process; look again)
                found = _children(proc.pid)
                if len(found) >= 2:
                    break
                time.sleep(0.2)
            children.extend(found)
        proc.send_signal(sig)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_single_line(out: str, err: str, sig_name: str, run: Path, script: str) -> re.Match:
    text = out + err
    assert "Traceback" not in text, text[-2000:]
    lines = [ln for ln in text.splitlines() if "resume with" in ln or "Stopped by" in ln]
    assert len(lines) == 1, lines
    m = re.fullmatch(rf"Stopped by {sig_name} at epoch (\d+), iteration (\d+): saved (\S+); resume with: "
                     rf"python {script} resume=(\S+)", lines[0])
    assert m, lines[0]
    assert Path(m.group(3)) == run / "checkpoints" / "last.pt" and Path(m.group(4)) == run
    return m


@pytest.mark.slow
def test_sigint_in_a_subprocess_writes_last_pt_prints_one_line_exits_130_and_resumes(data_root, tmp_path):
    run = tmp_path / "ae"
    proc = _start(["train_autoencoder.py", "dataset=synthetic", *TINY_AE, f"dataset_main_path={data_root}",
                   f"output_log_path={run}", "model.num_epochs=100000", "progress=true"])
    out, err = _signal_when(proc, run / "checkpoints" / "checkpoint_1.pt", signal.SIGINT)
    assert proc.returncode == 130, err[-2000:]
    m = _check_single_line(out, err, "SIGINT", run, "train_autoencoder.py")
    # stdout is a pipe (not a terminal): one line per epoch, no tqdm redraws, even with progress=true
    assert "\r" not in out and re.search(r"^epoch 1/100000  iter 6/600000  loss \S+  lr \S+  \S+ it/s  ETA ",
                                         out, re.M), out[:500]
    ck = safe_torch_load(run / "checkpoints" / "last.pt")
    epoch, iteration = int(m.group(1)), int(m.group(2))
    assert (ck["meta"]["epoch"], ck["meta"]["iteration"]) == (epoch, iteration)
    resumed = autoencoder_trainer.main(ae_cfg(data_root, tmp_path / "unused", [f"resume={run}",
                                                                                f"model.num_epochs={epoch + 1}"]),
                                       overrides=[f"resume={run}", f"model.num_epochs={epoch + 1}"])
    assert resumed["epochs"] == epoch + 1 and resumed["iterations"] == (epoch + 1) * 6


@pytest.mark.slow
def test_sigterm_stops_the_diffusion_trainer_with_143(data_root, tmp_path):
    ae = tmp_path / "ae"
    autoencoder_trainer.main(ae_cfg(data_root, ae, ["model.num_epochs=1"]))
    run = tmp_path / "diff"
    proc = _start(["train_diffusion.py", *TINY_DIFF, f"dataset_main_path={data_root}",
                   f"model.pretrained_autoencoder_path={ae}", f"output_log_path={run}", "model.num_epochs=100000"])
    out, err = _signal_when(proc, run / "checkpoints" / "last.pt", signal.SIGTERM)
    assert proc.returncode == 143, err[-2000:]
    _check_single_line(out, err, "SIGTERM", run, "train_diffusion.py")
    assert safe_torch_load(run / "checkpoints" / "last.pt")["meta"]["stage"] == "diffusion"


@pytest.mark.slow
@pytest.mark.distributed
def test_sigint_to_the_spawning_parent_stops_all_workers(data_root, tmp_path):
    run = tmp_path / "ddp"
    proc = _start(["train_autoencoder.py", "dataset=synthetic", *TINY_AE, f"dataset_main_path={data_root}",
                   f"output_log_path={run}", "model.num_epochs=100000", "nproc_per_node=2", "dist_backend=gloo",
                   "device=cpu"])
    workers: list[int] = []
    out, err = _signal_when(proc, run / "checkpoints" / "checkpoint_1.pt", signal.SIGINT, children=workers)
    assert proc.returncode == 130, err[-2000:]
    _check_single_line(out, err, "SIGINT", run, "train_autoencoder.py")
    assert safe_torch_load(run / "checkpoints" / "last.pt")["meta"]["stage"] == "autoencoder"
    assert len(workers) == 2  # the two spawned workers ...
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)]  # ... are all gone: no hanging children
