"""An official CrossDiff checkpoint (bare state dict ``model0000.pt`` + the merged YAML config), written exactly
as the official ``TrainLoop.save`` / ``parse_args`` produce them, converts into a run folder that loads and
reproduces the official forward passes (``shared/fixtures/crossdiff``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _crossdiff_fixture import assert_close, load_fixture, official_state_dict

from skeleton_diffusion.methods.crossdiff import convert, load_run
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

#: the rest of the official configs/base.yaml, as parse_args merges it (values the converter must tolerate)
BASE_REST = {"resume_checkpoint": None, "test_checkpoint": None, "num_epochs": 2000, "save_interval": 200,
             "save_dir": "save", "running_mode": "train", "seed": 233, "eval_during_train": True,
             "train_platform_type": "TensorboardPlatform", "lr_anneal_steps": 0, "cut_2d": False, "ucf_keys": [],
             "test_generatefrom2d": False, "change_idx": 300, "classifier_free": False, "eval_part": "all",
             "captions": ["a person is swimming", "person is dancing eloquently"]}


def write_official_run(fx: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "model0000.pt"
    torch.save(official_state_dict(fx), ckpt)
    cfg = {**BASE_REST, **fx["args"], "NAME": "crossdiff_pre", "model_type": "crossdiff"}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return ckpt, config


@pytest.fixture(scope="module")
def fx(shared_dir: Path) -> dict[str, Any]:
    return load_fixture(shared_dir)


@pytest.fixture(scope="module")
def converted(fx: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("official")
    ckpt, config = write_official_run(fx, src)
    out = tmp_path_factory.mktemp("run") / "crossdiff"
    written = convert(ckpt, out, config=config)
    assert written.is_file() and written.parent == out / "checkpoints" and (out / "config.yaml").is_file()
    return out


def test_converted_file_is_weights_only_with_meta(converted: Path, fx: dict[str, Any]) -> None:
    ckpt = torch.load(next((converted / "checkpoints").glob("*.pt")), weights_only=True)
    meta = ckpt["meta"]
    assert meta["method"] == "crossdiff" and meta["representation"] == "official"
    for key in ("latent_dim", "layers", "layers2", "cond_mask_prob", "dataset"):
        assert meta["official_args"][key] == fx["args"][key]
    assert set(ckpt["model"]) == set(fx["checkpoint"]["key_order"])
    assert yaml.safe_load((converted / "config.yaml").read_text())["method"] == "crossdiff"


def test_loaded_run_reproduces_fixture_forwards(converted: Path, fx: dict[str, Any]) -> None:
    pred = load_run(converted, device="cpu")
    pred.model.eval()
    f, text = fx["forward"], fx["batch"]["enc_text"]
    with torch.no_grad():
        for x_key, dom in (("x_t", "3d"), ("joint_t", "2d")):
            out = pred.model.net(f[x_key], f["t"], text, domain_in=dom, domains_out=("3d", "2d"))
            assert_close(out["3d"], f[f"{dom}->3d"], f"converted {dom}->3d")
            assert_close(out["2d"], f[f"{dom}->2d"], f"converted {dom}->2d")
    assert_close(pred.model.diff3d.q_sample(fx["batch"]["motion"], f["t"], f["noise"]), f["x_t"], "q_sample 3d")
    assert_close(pred.model.diff2d.q_sample(fx["batch"]["joint"], f["t"], f["noise_joint"]), f["joint_t"],
                 "q_sample 2d")


def test_legacy_loader_dispatches_to_official(converted: Path) -> None:
    from skeleton_diffusion.methods.crossdiff.joints_sampling import load_crossdiff

    pred = load_crossdiff(converted, device="cpu")
    assert hasattr(pred.model, "net") and hasattr(pred.model, "diff3d") and hasattr(pred.model, "diff2d")


def test_refuses_non_empty_output_without_force(fx: dict[str, Any], tmp_path: Path) -> None:
    ckpt, config = write_official_run(fx, tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not empty"):
        convert(ckpt, out, config=config)
    assert convert(ckpt, out, config=config, force=True).is_file()


def test_config_that_contradicts_the_tensors_is_refused(fx: dict[str, Any], tmp_path: Path) -> None:
    ckpt, config = write_official_run(fx, tmp_path / "src")
    cfg = yaml.safe_load(config.read_text())
    cfg["latent_dim"] = 512
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="latent_dim"):
        convert(ckpt, tmp_path / "out", config=config)
    cfg["latent_dim"], cfg["model_type"] = fx["args"]["latent_dim"], "MDM"
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="model_type"):
        convert(ckpt, tmp_path / "out2", config=config)


def test_not_a_crossdiff_state_dict(tmp_path: Path) -> None:
    bad = tmp_path / "model0000.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="official CrossDiff"):
        convert(bad, tmp_path / "out")


def test_sizes_without_config_come_from_the_tensors(fx: dict[str, Any], tmp_path: Path) -> None:
    ckpt, _ = write_official_run(fx, tmp_path / "src")
    convert(ckpt, tmp_path / "out")
    pred = load_run(tmp_path / "out", device="cpu")
    net = pred.model.net
    assert (net.latent_dim, net.num_layers, net.num_layers2) == (fx["args"]["latent_dim"], fx["args"]["layers"],
                                                               fx["args"]["layers2"])


@pytest.mark.slow
def test_cli_converts(fx: dict[str, Any], tmp_path: Path) -> None:
    module = "skeleton_diffusion.apps.convert"
    ckpt, config = write_official_run(fx, tmp_path / "src")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", module, str(ckpt), str(out), "--method", "crossdiff", "--config",
                          str(config)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_run(out, device="cpu").model.net.latent_dim == fx["args"]["latent_dim"]
    from skeleton_diffusion.methods.registry import load_model

    assert load_model(out, device="cpu").model.net.latent_dim == fx["args"]["latent_dim"]  # registry dispatch
