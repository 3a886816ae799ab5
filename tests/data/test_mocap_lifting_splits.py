"""Issue 27 item 6: a lifting set built from a processed 3D dataset follows its splits and takes its fps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skeleton_diffusion.apps.create_synthetic_lifting_dataset import build_synthetic_lifting
from skeleton_diffusion.data.processed import save_processed


def test_lifting_from_processed_follows_source_splits_and_fps(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 17, 3)).astype(np.float32) * 0.3
    def clip(scale):  # a distinct body size per split: a test pose can only come from a test clip
        return (base * scale + 0.01 * rng.normal(size=(120, 17, 3))).astype(np.float32)
    src = tmp_path / "hmp" / "data_3d_mo.npz"
    src.parent.mkdir()
    save_processed(src, {"train": {"a": clip(1.0), "b": clip(1.0)}, "valid": {"v": clip(1.0)},
                         "test": {"t": clip(2.0)}})
    (src.parent / "dataset_config.json").write_text(json.dumps({"fps": 30}))
    path = build_synthetic_lifting(tmp_path / "out", clips_per_subject=2, frames=40, step=1, cameras=1,
                                   noise_px=0, source=src, name="mo")
    with np.load(path, allow_pickle=False) as d:
        assert float(d["fps"]) == 30.0 and path.name == "data_lifting_mo.npz"
        size = np.linalg.norm(d["pose_3d"], axis=-1).mean(axis=-1)  # per frame, root-relative: scale-invariant rotation
        split = np.repeat(d["seq_split"], d["seq_len"])
    assert size[split == "test"].min() > 1.5 * size[split == "train"].max()


def _processed_source(root):
    rng = np.random.default_rng(1)
    src = root / "processed" / "Mo" / "hmp" / "data_3d_mo.npz"
    src.parent.mkdir(parents=True)
    seq = lambda: (rng.normal(size=(1, 17, 3)) * 0.3 + 0.01 * rng.normal(size=(90, 17, 3))).astype(np.float32)  # noqa: E731
    save_processed(src, {"train": {"a": seq(), "b": seq()}, "valid": {"v": seq()}, "test": {"t": seq()}})
    (src.parent / "dataset_config.json").write_text(json.dumps({"fps": 30}))
    return src


def test_lifting_from_processed_is_usable_by_its_own_name(tmp_path, monkeypatch):
    """Issue 27 item 6: the CLI writes <processed>/<NAME>/lifting/ with a dataset_config.yaml, and
    dataset=<n>_lifting composes and loads it (no dataset=synthetic_lifting + dataset_main_path trick)."""
    from skeleton_diffusion.apps.create_synthetic_lifting_dataset import main
    from skeleton_diffusion.config.datasets import find_built_datasets
    from skeleton_diffusion.training.lifting import load_lifting_dataset

    data = tmp_path / "data"
    src = _processed_source(data)
    path = main(["--from-processed", str(src), "--clips-per-subject", "1", "--frames", "30", "--cameras", "1"])
    assert path == data / "processed" / "Mo" / "lifting" / "data_lifting_mo.npz"
    found = find_built_datasets(data)
    assert found["mo_lifting"] == path.parent / "dataset_config.yaml"
    args = ["--from-processed", str(src), "--clips-per-subject", "1", "--frames", "30", "--cameras", "1"]
    before = path.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exc:      # never overwritten silently
        main(args)
    assert exc.value.code == 2 and path.stat().st_mtime_ns == before
    assert main([*args, "--force"]) == path

    from hydra import compose, initialize_config_dir
    from skeleton_diffusion.config import register_dataset_configs

    register_dataset_configs()
    monkeypatch.setenv("SKELETON_DIFFUSION_DATASETS", str(data))   # what dataset_main_path= does on a CLI
    from pathlib import Path
    configs = Path(__file__).resolve().parents[2] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base=None):
        cfg = compose(config_name="train_lifting", overrides=["dataset=mo_lifting", f"dataset_main_path={data}"])
    assert cfg.dataset.dataset_name == "mo_lifting" and cfg.dataset.fps == 15.0   # 30 fps source, step 2
    lifting = load_lifting_dataset(cfg.dataset, cfg.dataset_main_path)
    assert lifting.skeleton == "h36m"
