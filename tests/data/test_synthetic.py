"""Embedded procedural dataset: determinism, human proportions, non-trivial MMGT, loads through build_dataset."""

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from skeleton_diffusion.data.loaders import build_dataloader
from skeleton_diffusion.data.registry import build_dataset
from skeleton_diffusion.data.builders.synthetic import (
    PARENTS,
    PRIMITIVES,
    SyntheticConfig,
    build_synthetic_dataset,
    generate_clip,
)
from skeleton_diffusion.apps.create_synthetic_dataset import main as create_main
from skeleton_diffusion.data.mean_motion import read_mean_motion
from skeleton_diffusion.data.mmgt import read_mmapd_csv, read_mmgt
from skeleton_diffusion.data.processed import load_processed
from skeleton_diffusion.skeletons.lookup import get_skeleton

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "hmp"
    assert create_main(["--out", str(out), "--small", "--seed", "0"]) == 0
    return out


def _bones(pos):
    return np.linalg.norm(pos[:, 1:] - pos[:, list(PARENTS[1:])], axis=-1)  # [T, 21]


def test_parents_match_the_amass_skeleton():
    assert PARENTS == get_skeleton("amass").parents


def test_deterministic_for_a_seed(small_dir, tmp_path):
    again = build_synthetic_dataset(tmp_path / "b", seed=0, small=True, verbose=False)
    a, b = load_processed(small_dir / "data_3d_synthetic.npz"), load_processed(tmp_path / "b" / "data_3d_synthetic.npz")
    assert list(a["train"]) == list(b["train"])
    for split in a:
        for name in a[split]:
            np.testing.assert_array_equal(a[split][name], b[split][name])
    for f in ("segments_test.csv", "segments_valid.csv", "mmgt_test.txt", "mean_motion_test.txt", "mmapd_GT.csv"):
        assert (small_dir / f).read_text() == (tmp_path / "b" / f).read_text(), f
    other = build_synthetic_dataset(tmp_path / "c", seed=1, small=True, verbose=False)
    c = load_processed(tmp_path / "c" / "data_3d_synthetic.npz")
    assert not np.array_equal(a["test"]["test_0000"][:100], c["test"]["test_0000"][:100])
    assert again["windows"]["test"] > 0 and other["seed"] == 1
    skipped = build_synthetic_dataset(tmp_path / "b", seed=0, small=True, verbose=False)
    assert skipped.get("skipped") is True


def test_shapes_and_human_proportions(small_dir):
    data = load_processed(small_dir / "data_3d_synthetic.npz", num_joints=22)
    assert set(data) == {"train", "valid", "test"}
    for split in data.values():
        for clip in split.values():
            assert clip.dtype == np.float32 and clip.ndim == 3 and clip.shape[1:] == (22, 3)
            assert np.isfinite(clip).all()
            bones = _bones(clip)
            assert bones.std(axis=0).max() < 1e-4  # rigid bones: lengths constant over time
            femur = bones[0, 3]  # joint 4 (LKnee) - joint 1 (LHip)
            assert 0.35 <= femur <= 0.5
            assert clip[:, [7, 8, 10, 11], 2].min() > -0.01  # feet never below the floor (Z-up)
            height = clip[:, 15, 2] - clip[:, [10, 11], 2].min(axis=1)
            assert 1.4 < np.median(height) < 1.7  # head joint above the feet (~1.55 m standing)
            assert 0.7 < np.median(clip[:, 0, 2]) < 1.1  # pelvis height


def test_primitives_have_distinct_speeds_and_all_occur():
    rng = np.random.default_rng(0)
    labels, speeds = [], {}
    for _ in range(12):
        pos, lab = generate_clip(rng, 900)
        v = np.linalg.norm(np.diff(pos[:, 1:] - pos[:, :1], axis=0), axis=-1).mean(-1)
        for name in PRIMITIVES:
            m = np.array(lab[1:]) == name
            if m.any():
                speeds.setdefault(name, []).append(v[m].mean())
        labels += lab
    assert set(labels) == set(PRIMITIVES)
    mean = {k: np.mean(v) for k, v in speeds.items()}
    assert mean["run"] > mean["walk"] > mean["idle"]


def test_processed_file_carries_its_joint_order(small_dir):
    from skeleton_diffusion.data.processed import read_joint_names
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    assert read_joint_names(small_dir / "data_3d_synthetic.npz") == list(get_skeleton("amass").joint_names)


def test_side_files_are_consistent(small_dir):
    n = len((small_dir / "segments_test.csv").read_text().strip().splitlines()) - 1
    mm = read_mmgt(small_dir / "mmgt_test.txt", num_segments=n)
    assert all(i in v for i, v in mm.items())
    apd = read_mmapd_csv(small_dir / "mmapd_GT.csv")
    assert len(apd) == n and all((apd[i] == 0) == (len(mm[i]) == 1) for i in range(n))
    assert list(read_mean_motion(small_dir / "mean_motion_test.txt")) == list(PRIMITIVES)


def test_loads_through_build_dataset_with_the_config(small_dir):
    cfg = OmegaConf.load(REPO / "configs" / "dataset" / "synthetic.yaml")
    main = small_dir.parent
    cfg.precomputed_folder = cfg.annotations_folder = small_dir.name  # relative to dataset_main_path
    for split, expect_len in (("train", None), ("train_eval", None), ("valid", 7), ("test", 13)):
        ds = build_dataset(cfg, split, pose_box_size=1.5, dataset_main_path=main,
                           if_load_mmgt=(split == "test"), if_compute_cmd=(split == "test"))  # fmt: skip
        if expect_len is not None:
            assert len(ds) == expect_len
        obs, fut, extra = next(iter(build_dataloader(ds, batch_size=4, seed=0)))
        assert obs.shape == (4, 30, 21, 3) and fut.shape == (4, 120, 21, 3)
        assert extra["adj"].shape == (4, 21, 21)
    assert ds.idx_to_class == list(PRIMITIVES) and len(ds.mean_motion_per_class) == len(PRIMITIVES)
    assert (extra["class_idx"] >= 0).all() and len(extra["mm_gt"]) == 4


@pytest.mark.slow
def test_full_build_size_speed_and_multimodality(tmp_path):
    info = build_synthetic_dataset(tmp_path / "full", seed=0, verbose=False)
    assert info["seconds"] < 60
    assert info["windows"]["test"] >= 200 and info["windows"]["train_all"] // 10 >= 2000
    mm = info["mmgt"]
    assert 1.5 < mm["mean_size"] < 60 and mm["singletons"] < mm["num_segments"] / 2
    assert SyntheticConfig().multimodal_threshold == 0.4
