"""Issue 28 items 6 and 8: messages name the real cause and the fix, no raw traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_task_horizon_differing_from_the_built_windows_names_the_overrides() -> None:
    """Before: the data was blamed ("was it built with the same script/version?")."""
    from skeleton_diffusion.tasks.hmp.protocol import check_dataset_windows

    cfg = OmegaConf.create({"dataset": {"dataset_name": "deepmimic", "windows_sec": {"history": 0.5, "horizon": 1.0}},
                            "task": {"history_sec": 0.5, "prediction_horizon_sec": 2.0}})
    with pytest.raises(ConfigError, match=r"built with windows of 0.5 s observed \+ 1 s predicted.*"
                                          r"task.history_sec=0.5 task.prediction_horizon_sec=1"):
        check_dataset_windows(cfg)
    cfg.task.prediction_horizon_sec = 1.0
    check_dataset_windows(cfg)  # matching: fine
    cfg.task.prediction_horizon_sec = 2.0
    cfg.if_long_term_test = True
    check_dataset_windows(cfg)  # long-term windows are the dataset's own


def _results(path: Path, stats_mode: str) -> Path:
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({
        "dataset": "synthetic", "num_windows": 3, "seeds": [0], "stats_mode": stats_mode, "num_samples": 5,
        "metrics": {"ADE": {"mean": 1.0, "std": 0.0, "n": 1, "unit": "m"}}}))
    return path


def _compare(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skeleton_diffusion.apps.compare", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONWARNINGS="ignore"))


@pytest.mark.slow
def test_compare_of_different_stats_modes_is_one_paragraph(tmp_path: Path) -> None:
    a = _results(tmp_path / "a", "deterministic")
    b = _results(tmp_path / "b", "probabilistic")
    res = _compare([str(a), str(b)])
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "stats_mode" in res.stderr and "same stats_mode=" in " ".join(res.stderr.split())
    res = _compare([str(a), str(tmp_path / "missing")])
    assert res.returncode == 2 and "Traceback" not in res.stderr and "missing" in res.stderr


@pytest.mark.slow
def test_compare_out_is_never_replaced_silently(tmp_path: Path) -> None:
    a = _results(tmp_path / "a", "deterministic")
    out = tmp_path / "table.md"
    out.write_text("earlier table")
    res = _compare([str(a), "--out", str(out)])
    assert res.returncode == 2 and "--overwrite" in res.stderr and out.read_text() == "earlier table"
    assert _compare([str(a), "--out", str(out), "--overwrite"]).returncode == 0 and out.read_text() != "earlier table"


class _Pickled:
    pass


def test_pickled_checkpoint_message_is_ours_alone(tmp_path: Path) -> None:
    """Before: PyTorch's "Weights only load failed ... do those steps only if you trust the source" inside it."""
    from skeleton_diffusion.utils.io import safe_torch_load

    path = tmp_path / "pickled.pt"
    torch.save({"obj": _Pickled()}, path)
    with pytest.raises(CheckpointError) as err:
        safe_torch_load(path)
    msg = str(err.value)
    assert "_Pickled" in msg and "weights_only=True" in msg
    assert "trust the source" not in msg and "Weights only load failed" not in msg
