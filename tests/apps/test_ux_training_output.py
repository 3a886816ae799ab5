"""Issue 28 item 11 (training): unknown keys under ``model`` refused with the nearest valid key, validation numbers
in the log, checkpoint names carry the error itself (not its negation)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from skeleton_diffusion.config.model_keys import check_model_overrides
from skeleton_diffusion.training.checkpointing import CheckpointSaver
from skeleton_diffusion.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_unknown_model_key_names_the_nearest_valid_one() -> None:
    with pytest.raises(ConfigError, match=r"'num_epoch' is not a key.*did you mean model.num_epochs\?"):
        check_model_overrides(["+model.num_epoch=1"])
    with pytest.raises(ConfigError, match="model.num_epochs"):  # on resume, plain overrides are force-added
        check_model_overrides(["model.num_epochz=3"])
    check_model_overrides(["model.num_epochs=3", "+model.keep_last_n=2", "model.autoenc_arch.enc_num_layers=2",
                           "dataset=synthetic", "+task.crossdiff_start=2d"])  # known / not under model: fine


@pytest.mark.slow
def test_cli_refuses_plus_model_typo(tmp_path: Path) -> None:
    """Before: ``+model.num_epoch=1`` was accepted and ignored (training ran its default epochs)."""
    res = subprocess.run([sys.executable, str(REPO / "train_autoencoder.py"), "dataset=synthetic", "+model.num_epoch=1",
                          f"dataset_main_path={tmp_path / 'none'}", f"output_log_path={tmp_path / 'run'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "did you mean model.num_epochs?" in " ".join(res.stderr.split())


class _H:
    def state_dict(self):
        return {"x": torch.zeros(1)}


def _engine(epoch: int, metrics: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch, iteration=epoch * 10, metrics=metrics or {}))


def test_best_checkpoint_names_carry_the_error_and_rank_old_and_new_names(tmp_path: Path) -> None:
    (tmp_path / "checkpoint_1_val_mpjpe=-0.0900.pt").write_bytes(b"")  # an official-style (negated) older file
    errors = iter([0.0771, 0.2, 0.05])
    saver = CheckpointSaver(tmp_path, {"h": _H()}, n_saved=2, score_fn=lambda e: -next(errors), score_name="val_mpjpe")
    for epoch in (2, 3, 4):
        saver(_engine(epoch))
    names = sorted(p.name for p in tmp_path.glob("checkpoint_*.pt"))
    assert names == ["checkpoint_2_val_mpjpe=0.0771.pt", "checkpoint_4_val_mpjpe=0.0500.pt"]  # best two kept
    again = CheckpointSaver(tmp_path, {"h": _H()}, n_saved=2, score_fn=lambda e: -0.06, score_name="val_mpjpe")
    assert [round(t[0], 4) for t in again.saved] == [-0.0771, -0.05]  # ranked by the negated error, as before


def test_epoch_line_and_bar_mode_report_validation_numbers() -> None:
    from ignite.engine import Engine, Events

    from skeleton_diffusion.training.loggers import EpochLogger, ValidationPrinter

    for kind in ("line", "bar"):
        out = io.StringIO()
        engine = Engine(lambda e, b: {"loss": 0.5})

        @engine.on(Events.EPOCH_COMPLETED(every=2))
        def _validate(e):  # as attach_validation: writes trainer.state.metrics['val_*'] before the logger runs
            e.state.metrics["val_ADE"] = 0.5 / e.state.epoch

        (EpochLogger(stream=out) if kind == "line" else ValidationPrinter(out)).attach(engine)
        engine.run([0, 1], max_epochs=4)
        text = out.getvalue()
        assert "val_ADE 0.2500" in text and "val_ADE 0.1250" in text
        assert text.count("val_ADE") == 2  # only after the epochs that validated


def test_line_progress_writes_plain_lines() -> None:
    from skeleton_diffusion.training.loggers import LineProgress

    out = io.StringIO()
    items = list(LineProgress(range(25), desc="evaluate", lines=5, stream=out))
    assert items == list(range(25))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 5
    assert lines[0].startswith("evaluate: 5/25 (20%)") and lines[-1].startswith("evaluate: 25/25 (100%)")
