"""Dataset options are checked: a misspelt key in a ``data_loader_*`` block or a ``build_dataset`` override is
refused with one paragraph naming it and the nearest valid key, instead of being silently ignored (issue 30)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skeleton_diffusion.apps.create_synthetic_dataset import main as create_synthetic
from skeleton_diffusion.data import build_dataset
from skeleton_diffusion.data.windows.hmp import accepted_options
from skeleton_diffusion.data.windows.hmp_sources import DATASET_TYPES
from skeleton_diffusion.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("opts")
    assert create_synthetic(["--out", str(root / "processed" / "Synthetic" / "hmp"), "--small"]) in (0, None)
    return root, OmegaConf.to_container(OmegaConf.load(ROOT / "configs/dataset/synthetic.yaml"), resolve=True)


def test_valid_options_still_build(synthetic):
    root, cfg = synthetic
    ds = build_dataset(cfg, "train", pose_box_size=1.2, dataset_main_path=root, da_mirroring=0.5, if_noisy_obs=True)
    assert ds.da_mirroring == 0.5 and ds.if_noisy_obs


@pytest.mark.parametrize("typo, nearest", [("da_mirorring", "da_mirroring"), ("if_noisy_obz", "if_noisy_obs")])
def test_misspelt_override_is_refused_naming_the_nearest_key(synthetic, typo, nearest):
    root, cfg = synthetic
    with pytest.raises(ConfigError) as err:
        build_dataset(cfg, "train", pose_box_size=1.2, dataset_main_path=root, **{typo: 1.0})
    msg = str(err.value)
    assert f"'{typo}'" in msg and f"did you mean '{nearest}'" in msg and "\n" not in msg


def test_misspelt_key_in_a_config_block_names_the_block(synthetic):
    root, cfg = synthetic
    cfg = {**cfg, "data_loader_train": {**cfg["data_loader_train"], "strde": 3}}
    with pytest.raises(ConfigError, match=r"'strde' in data_loader_train of dataset 'synthetic'.*'stride'"):
        build_dataset(cfg, "train", pose_box_size=1.2, dataset_main_path=root)


def test_direct_construction_refuses_unknown_options(synthetic):
    root, _ = synthetic
    cls = DATASET_TYPES["GenericMotionDataset"]
    with pytest.raises(ConfigError, match="did you mean 'augmentation'"):
        cls("train", root / "processed" / "Synthetic" / "hmp", "amass", 30, 120, augmentaton=2)


WINDOW_CONFIGS = [p for p in sorted((ROOT / "configs/dataset").glob("*.yaml"))
                  if OmegaConf.load(p).get("dataset_type") in DATASET_TYPES]  # not lifting / generation configs


def test_the_window_configs_are_found():
    assert {"amass", "h36m", "freeman", "3dpw", "synthetic"} <= {p.stem for p in WINDOW_CONFIGS}


@pytest.mark.parametrize("path", WINDOW_CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_dataset_block_uses_only_valid_keys(path):
    """What the registry passes on from each block must be read by the dataset class (loader keys aside)."""
    from skeleton_diffusion.data.registry import LOADER_ONLY_KEYS

    cfg = OmegaConf.to_container(OmegaConf.load(path))
    valid = accepted_options(DATASET_TYPES[cfg["dataset_type"]]) | set(LOADER_ONLY_KEYS) | {"long_term_segments_path"}
    for name, block in cfg.items():
        if name.startswith("data_loader_") and block:
            assert set(block) <= valid, (path.name, name, set(block) - valid)


def test_3dpw_accepts_the_official_actions_all_and_refuses_other_values():
    cls = DATASET_TYPES["D3PWZeroShotDataset"]
    assert "actions" in accepted_options(cls)
    with pytest.raises(ConfigError, match="3DPW has no actions"):
        cls("test", "/nonexistent", "3dpw", 30, 120, actions=["walking"], segments_path="x.csv")
