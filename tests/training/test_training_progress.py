"""Training progress output: tqdm bar on a terminal, one line per epoch otherwise (issue 15.7)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from skeleton_diffusion.training.loggers import EpochLogger, attach_progress, progress_mode

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^epoch (\d+)/(\d+)  iter (\d+)/(\d+)  loss (\S+)(?:  lr (\S+))?  (\S+) it/s  ETA (\d+:\d\d:\d\d)$")


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_decision() -> None:
    assert progress_mode(True, _FakeTTY()) == "bar"
    assert progress_mode(False, _FakeTTY()) == "epochs"  # progress=false: per-epoch lines, not silence
    assert progress_mode(True, io.StringIO()) == "epochs"  # a file / pipe (SLURM log): no \r redraws
    closed = io.StringIO()
    closed.close()
    assert progress_mode(True, closed) == "epochs"


def _engine(losses: list[float]) -> tuple[Engine, torch.optim.Optimizer]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.25)
    it = iter(losses)
    return Engine(lambda e, b: {"loss": torch.tensor(next(it))}), opt


def test_epoch_lines() -> None:
    losses = [float(i) for i in range(12)]
    trainer, opt = _engine(losses)
    out = io.StringIO()
    assert isinstance(attach_progress(trainer, True, optimizer=opt, stream=out), EpochLogger)
    trainer.run(range(4), max_epochs=3)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 3
    parsed = [LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    assert [m.group(1, 2, 3, 4) for m in parsed] == [("1", "3", "4", "12"), ("2", "3", "8", "12"),
                                                     ("3", "3", "12", "12")]
    assert [float(m.group(5)) for m in parsed] == [1.5, 5.5, 9.5]  # the epoch's mean loss
    assert float(parsed[0].group(6)) == 0.25 and parsed[-1].group(8) == "0:00:00"


def test_bar_on_a_terminal() -> None:
    from ignite.handlers import ProgressBar

    trainer, opt = _engine([0.0] * 4)
    assert isinstance(attach_progress(trainer, True, optimizer=opt, stream=_FakeTTY()), ProgressBar)
    trainer2, opt2 = _engine([0.0] * 4)
    assert isinstance(attach_progress(trainer2, False, optimizer=opt2, stream=_FakeTTY()), EpochLogger)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_real_pty_gets_the_bar_and_a_pipe_gets_lines() -> None:
    code = textwrap.dedent("""
        import torch
        from ignite.engine import Engine
        from skeleton_diffusion.training.loggers import attach_progress
        e = Engine(lambda e, b: {"loss": torch.tensor(1.0)})
        h = attach_progress(e, True)
        e.run(range(3), max_epochs=2)
        print("HANDLER", type(h).__name__, flush=True)
    """)
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    piped = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert "HANDLER EpochLogger" in piped.stdout and "\r" not in piped.stdout + piped.stderr
    assert len([ln for ln in piped.stdout.splitlines() if LINE.match(ln)]) == 2
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=slave, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
    finally:
        os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "HANDLER ProgressBar" in text and "\r" in text
