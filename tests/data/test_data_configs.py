"""configs/dataset/*.yaml: official keys/values, Hydra composition, agreement with DEFAULT_DATASET_CFGS."""

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skeleton_diffusion.data.windows.hmp_sources import DATASET_TYPES
from skeleton_diffusion.data.registry import DEFAULT_DATASET_CFGS
from skeleton_diffusion.skeletons.lookup import get_skeleton

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "dataset"

OFFICIAL = {  # num_joints, fps, threshold, dataset_type, precomputed, annotations, test CSV
    "amass": (22, 60, 0.4, "AMASSDataset", "processed/AMASS/hmp/", "annotations/AMASS/hmp/", "segments_test.csv"),
    "amass-mano": (52, 60, 0.4, "AMASSDataset", "processed/AMASS-MANO/hmp/", "annotations/AMASS-MANO/hmp/",
                   "segments_test.csv"),
    "h36m": (17, 50, 0.5, "H36MDataset", "processed/Human36M/hmp/", "annotations/Human36M/hmp/", "segments_test.csv"),
    "freeman": (18, 30, 0.5, "FreeManDataset", "processed/FreeMan/hmp/", "annotations/FreeMan/hmp/",
                "segments_test.csv"),
    "3dpw": (22, 60, 0.4, "D3PWZeroShotDataset", "processed/3DPW/hmp/", "annotations/3DPW/hmp/",
             "segments_test_zero_shot.csv"),
    "synthetic": (22, 60, 0.4, "GenericMotionDataset", "processed/Synthetic/hmp/", "processed/Synthetic/hmp/",
                  "segments_test.csv"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_dataset_config_values(name):
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"), resolve=True)
    nj, fps, thr, dtype, proc, ann, test_csv = OFFICIAL[name]
    assert (cfg["num_joints"], cfg["fps"], cfg["multimodal_threshold"], cfg["dataset_type"]) == (nj, fps, thr, dtype)
    assert cfg["dataset_name"] == name and cfg["dtype"] == "float32"
    assert cfg["precomputed_folder"] == proc and cfg["annotations_folder"] == ann
    assert cfg["dataset_type"] in DATASET_TYPES
    assert get_skeleton(cfg["skeleton_name"]).num_joints == nj
    test = cfg["data_loader_test"]
    assert test["segments_path"] == test_csv and test["shuffle"] is False and test["drop_last"] is False
    for block in [k for k in cfg if k.startswith("data_loader_")]:
        assert "_target_" not in cfg[block]
    if "data_loader_train" in cfg:
        assert cfg["data_loader_train"]["shuffle"] is True and cfg["data_loader_train"]["drop_last"] is True
    default = DEFAULT_DATASET_CFGS[name]
    for key in ("num_joints", "fps", "multimodal_threshold", "dataset_type", "dataset_name", "skeleton_name"):
        assert default[key] == cfg[key], key
    assert default["data_loader_test"]["segments_path"] == test_csv


def test_official_training_recipes():
    amass = OmegaConf.load(CONFIGS / "amass.yaml")
    tr = amass.data_loader_train
    assert (tr.stride, tr.augmentation, tr.da_mirroring, tr.da_rotations) == (60, 30, 0.5, 1.0)
    assert len(tr.datasets) == 11 and list(amass.data_loader_valid.datasets) == ["HumanEva", "HDM05", "SFU", "MoSh"]
    assert amass.data_loader_test.long_term_segments_path == "segments_test_long_term_pred.csv"
    h36m = OmegaConf.load(CONFIGS / "h36m.yaml")
    assert list(h36m.data_loader_train.subjects) == ["S1", "S5", "S6", "S7", "S8"]
    assert (h36m.data_loader_train.stride, h36m.data_loader_train.augmentation) == (10, 5)
    assert list(h36m.data_loader_test.subjects) == ["S9", "S11"]
    assert h36m.data_loader_valid.segments_path == "segments_valid.csv"


def test_hydra_composes_group_under_dataset(tmp_path):
    from hydra import compose, initialize_config_dir

    shutil.copytree(CONFIGS, tmp_path / "dataset")
    (tmp_path / "primary.yaml").write_text("defaults:\n  - _self_\n  - dataset: synthetic\ndataset_main_path: ./datasets\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose(config_name="primary", overrides=["dataset=h36m", "dataset.data_loader_train.stride=20"])
    assert cfg.dataset.dataset_name == "h36m" and cfg.dataset.data_loader_train.stride == 20
