"""``configs/release/{mdm,crossdiff}_*.yaml``: the schema always; with the released files present (folder in
``SKELETON_DIFFUSION_RELEASES``), conversion and loading of each checkpoint."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml

from skeleton_diffusion.methods import registry

REPO = Path(__file__).resolve().parents[3]
NAMES = ("mdm_humanml3d", "mdm_kit", "mdm_humanact12", "crossdiff_humanml3d")
METRICS = {"R_precision_top1", "R_precision_top2", "R_precision_top3", "FID", "MM_Dist", "Diversity",
           "MultiModality", "Accuracy"}  # fmt: skip


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / "release" / f"{name}.yaml").read_text())


def _numbers(metrics: dict) -> list:
    vals = []
    for k, v in metrics.items():
        assert k in METRICS, f"unknown metric {k}"
        v = v["mean"] if isinstance(v, dict) else v
        assert v is None or isinstance(v, float), (k, v)
        vals.append(v)
    return vals


@pytest.mark.parametrize("name", NAMES)
def test_release_schema(name):
    cfg = _load(name)
    assert registry.canonical_name(cfg["method"]) == cfg["method"]
    assert "convert" in registry.get_method(cfg["method"]).hooks
    argv = shlex.split(cfg["convert"])
    assert argv[:4] == ["python", "-m", "skeleton_diffusion.apps.convert", "--method"] and argv[4] == cfg["method"]
    ckpts = [f for f in cfg["release"]["files"] if f["role"] == "checkpoint"]
    assert len(ckpts) == 1 and Path(ckpts[0]["path"]).name in cfg["convert"]
    _numbers(cfg["expected"]["metrics"])
    if cfg.get("evaluate"):
        assert "evaluator=official" in cfg["evaluate"]


def test_mdm_humanml3d_expected_is_the_fixed_table_row():
    """The expected row must be self-consistent: R-precision grows with k, and the real row beats the model's."""
    cfg = _load("mdm_humanml3d")["expected"]
    top = [cfg["metrics"][f"R_precision_top{k}"]["mean"] for k in (1, 2, 3)]
    real = [cfg["real"][f"R_precision_top{k}"]["mean"] for k in (1, 2, 3)]
    assert top == sorted(top) and all(r > m for r, m in zip(real, top))


def _releases() -> Path:
    root = os.environ.get("SKELETON_DIFFUSION_RELEASES")
    if not root or not Path(root).is_dir():
        pytest.skip("released checkpoints not available: set SKELETON_DIFFUSION_RELEASES=<folder holding the "
                    "unzipped official releases, e.g. humanml_trans_enc_512/>")  # fmt: skip
    return Path(root)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_release_converts_and_loads(name, tmp_path):
    root = _releases()
    cfg = _load(name)
    ckpt = root / next(f["path"] for f in cfg["release"]["files"] if f["role"] == "checkpoint")
    if not ckpt.is_file():
        pytest.skip(f"{name}: '{ckpt}' not present under SKELETON_DIFFUSION_RELEASES")
    spec = registry.get_method(cfg["method"])
    kwargs = {}
    if cfg["method"] == "crossdiff":
        merged = root / "crossdiff_merged.yaml"
        if not merged.is_file():
            pytest.skip(f"{name}: needs the merged config '{merged}' (base.yaml + crossdiff_finetune.yaml)")
        kwargs["config"] = merged
    spec.hook("convert")(ckpt, tmp_path / "run", **kwargs)
    model = spec.hook("load")(tmp_path / "run", device="cpu")
    assert model is not None
