"""Issue 27 item 6: a lifting set built from a processed 3D dataset follows its splits and takes its fps."""

from __future__ import annotations

import json

import numpy as np

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
