"""Issue 28 items 1-2: evaluation results are never overwritten silently, default folders are unique per evaluated
run, task, dataset, split and options, ``results_path=x.json`` is that one file and nothing lands elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skeleton_diffusion.tasks.results import ResultsTarget, results_target, write_results
from skeleton_diffusion.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _run_result(ade: float = 1.0) -> dict:
    return {"metrics": {"ADE": ade}, "num_windows": 3, "num_samples": 2, "seed": 0, "stats_mode": "deterministic"}


def test_write_results_never_replaces_an_existing_result(tmp_path: Path) -> None:
    write_results(tmp_path / "r", _run_result(1.0), dataset="synthetic")
    with pytest.raises(ConfigError, match=r"already holds an evaluation result.*overwrite=true"):
        write_results(tmp_path / "r", _run_result(2.0), dataset="synthetic")
    assert '"mean": 1.0' in (tmp_path / "r" / "results.json").read_text()
    write_results(tmp_path / "r", _run_result(2.0), dataset="synthetic", overwrite=True)
    assert '"mean": 2.0' in (tmp_path / "r" / "results.json").read_text()


def test_results_path_json_is_one_file_anything_else_a_folder(tmp_path: Path) -> None:
    target = results_target(str(tmp_path / "out.json"), tmp_path / "default")
    paths = write_results(target, _run_result(), dataset="synthetic")
    assert paths == {"json": tmp_path / "out.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert results_target(str(tmp_path / "res"), tmp_path / "d") == ResultsTarget(tmp_path / "res")
    assert results_target(None, tmp_path / "d") == ResultsTarget(tmp_path / "d")


def _hmp_cfg(**kw):
    base = {"dataset": {"dataset_name": "synthetic"}, "dataset_split": "test", "stats_mode": "probabilistic",
            "num_samples": 10, "seed": 0, "task": {"task_name": "hmp"}, "results_path": None}
    base.update(kw)
    return OmegaConf.create(base)


def test_hmp_default_folders_differ_per_run_checkpoint_and_options(tmp_path: Path) -> None:
    from skeleton_diffusion.tasks.hmp.protocol import results_dir

    a = tmp_path / "runA" / "checkpoints" / "checkpoint_10.pt"
    b = tmp_path / "runB" / "checkpoints" / "checkpoint_10.pt"
    folders = {results_dir(_hmp_cfg(), a, "SD").folder, results_dir(_hmp_cfg(), b, "SD").folder,
               results_dir(_hmp_cfg(num_samples=50), a, "SD").folder,
               results_dir(_hmp_cfg(dataset_split="valid"), a, "SD").folder}
    assert len(folders) == 4
    assert all(tmp_path in f.parents for f in folders)


def _gen_cfg(tmp_path: Path, ckpt: Path | None, **task) -> object:
    return OmegaConf.create({"dataset": {"dataset_name": "synthetic", "precomputed_folder": "p"},
                             "dataset_main_path": str(tmp_path / "ds"), "checkpoint_path": str(ckpt),
                             "task": {"condition": "text", "replication_times": 1, **task}, "results_path": None})


def test_generation_default_folders_are_unique_per_evaluated_run(tmp_path: Path) -> None:
    """Before: ``output/eval/generation/synthetic_test_text_checkpoint`` for every run (the second replaced the
    first)."""
    from skeleton_diffusion.tasks.generation.protocol import _results_target

    runs = []
    for name in ("mdm_text", "crossdiff_text"):
        ckpt = tmp_path / name / "checkpoints" / "checkpoint_5.pt"
        ckpt.parent.mkdir(parents=True)
        ckpt.write_bytes(b"x")
        runs.append(_results_target(_gen_cfg(tmp_path, ckpt.parent.parent), "checkpoint", "text", "test", "all", [0]))
    assert runs[0].folder != runs[1].folder
    assert (tmp_path / "mdm_text") in runs[0].folder.parents and (tmp_path / "crossdiff_text") in runs[1].folder.parents
    other = _results_target(_gen_cfg(tmp_path, tmp_path / "mdm_text", multimodality_times=3), "checkpoint", "text",
                            "test", "all", [0])
    assert other.folder != runs[0].folder  # other options: another folder


def _eval(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_eval_cli_results_path_json_and_no_silent_overwrite(tmp_path: Path) -> None:
    """``results_path=out.json`` (the README's example) writes ``out.json`` and nothing else; a second evaluation
    into it is refused (exit 2, one paragraph naming ``overwrite=true``) until ``overwrite=true``."""
    from _pipeline_helpers import make_synthetic

    data = make_synthetic(tmp_path / "datasets")
    work = tmp_path / "work"
    work.mkdir()
    common = ["dataset=synthetic", f"dataset_main_path={data}", "method_specs=zero_velocity", "progress=false",
              "debug=eval", "results_path=out.json"]
    first = _eval(common, work)
    assert first.returncode == 0, first.stderr[-2000:]
    assert sorted(p.name for p in work.iterdir()) == ["out.json"]
    again = _eval(common, work)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "overwrite=true" in again.stderr and "out.json" in again.stderr
    third = _eval([*[c for c in common if c != "progress=false"], "overwrite=true"], work)  # progress on, not a TTY
    assert third.returncode == 0, third.stderr[-2000:]
    # issue 28 item 11: one line per progress step in a log, no \r redraws (tqdm's bar before)
    assert "\r" not in third.stdout + third.stderr and "evaluate (seed 0): " in third.stdout
