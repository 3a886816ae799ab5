"""The release check: converts each released checkpoint listed in configs/release/{diffpose,diffhpe}_h36m.yaml and
runs eval.py task=lifting's official protocol on the VideoPose3D files; compares with `expected` where it is set.

Runs only where SKELETON_DIFFUSION_RELEASE_DIR names a folder holding the released files and the VideoPose3D data
(flat: checkpoints, data_3d_h36m.npz and the 2D files side by side); skips, saying which, otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from skeleton_diffusion.methods import registry
from skeleton_diffusion.tasks.lifting.protocol import main as evaluate_lifting
from skeleton_diffusion.tasks.results import load_results

ROOT = Path(__file__).resolve().parents[3]
RELEASE = os.environ.get("SKELETON_DIFFUSION_RELEASE_DIR")
CASES = [(name, run_name) for name in ("diffpose_h36m", "diffhpe_h36m")
         for run_name in yaml.safe_load((ROOT / "configs" / "release" / f"{name}.yaml").read_text())["runs"]]


def test_release_configs_are_well_formed():
    for name in ("diffpose_h36m", "diffhpe_h36m"):
        cfg = yaml.safe_load((ROOT / "configs" / "release" / f"{name}.yaml").read_text())
        assert cfg["method"] in ("diffpose", "diffhpe") and cfg["tolerance_mm"] > 0
        for run in cfg["runs"].values():
            assert {"denoiser", "test_2d", "expected"} <= set(run)
            assert all(v is None or isinstance(v, (int, float)) for v in run["expected"].values())


@pytest.mark.slow
@pytest.mark.parametrize("name, run_name", CASES)
def test_release_checkpoint_reproduces_published_numbers(name, run_name, tmp_path):
    if not RELEASE:
        pytest.skip("set SKELETON_DIFFUSION_RELEASE_DIR=<folder with the released checkpoints and VideoPose3D "
                    "files> to run the release check")
    cfg = yaml.safe_load((ROOT / "configs" / "release" / f"{name}.yaml").read_text())
    run = cfg["runs"][run_name]
    folder = Path(RELEASE)
    needed = [folder / run["denoiser"], folder / cfg["data_3d"], folder / run["test_2d"]]
    needed += [folder / run["prior"]] if run.get("prior") else []
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        pytest.skip(f"release files missing: {missing}")
    expected = {k: v for k, v in run["expected"].items() if v is not None}
    if not expected:
        pytest.skip(f"{name}/{run_name}: no verified published number in configs/release/{name}.yaml")
    spec = registry.get_method(cfg["method"])
    options = dict(run.get("convert") or {})
    if run.get("prior"):
        options["prior"] = folder / run["prior"]
    spec.hook("convert")(folder / run["denoiser"], tmp_path / "run", **options)
    load = lambda p, device: registry.get_method(registry.method_of_checkpoint(p)).hook("load")(p, device=device)  # noqa: E731
    evaluate_lifting(OmegaConf.create({
        "checkpoint_path": str(tmp_path / "run"), "results_path": str(tmp_path / "res"), "seed": 0, "device": "auto",
        "progress": False, "task": {"task_name": "lifting", "official": {
            "data_dir": str(folder), "test_2d": run["test_2d"], "miss_type": run.get("miss_type", "no_miss")}}}), load)
    got = load_results(tmp_path / "res")["metrics"]
    for key, value in expected.items():
        assert got[key]["mean"] == pytest.approx(value, abs=cfg["tolerance_mm"]), key
