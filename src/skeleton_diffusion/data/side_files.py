"""Side files every processed dataset needs for evaluation: ``mean_motion_test.txt`` and ``mmgt_test.txt``.

Both are computed from the processed npz and the test segment CSV, in metric space, with augmentation off
(official ``compute_stats`` / ``compute_multimodal_gt``). Written atomically; skipped when present unless
``force``. The raw-data builders call :func:`build_side_files` as their last step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..utils.errors import ConfigError
from .factory import DEFAULT_DATASET_CFGS, build_dataset, dataset_cfg_to_dict
from .mean_motion import write_mean_motion
from .mmgt import compute_mmgt, mmgt_summary, write_mmgt

__all__ = ["build_side_files", "build_test_dataset"]


def build_test_dataset(
    dataset_name: str,
    processed_dir: str | os.PathLike,
    annotations_dir: str | os.PathLike | None,
    dataset_cfg: Any = None,
    **overrides: Any,
):
    """The test split of ``dataset_name`` from explicit folders, metric space (``pose_box_size=1``), no DA."""
    if dataset_cfg is None:
        if dataset_name not in DEFAULT_DATASET_CFGS:
            raise ConfigError(
                f"no default settings for dataset {dataset_name!r} (known: {sorted(DEFAULT_DATASET_CFGS)}); "
                "pass dataset_cfg"
            )
        cfg = dict(DEFAULT_DATASET_CFGS[dataset_name])
    else:
        cfg = dataset_cfg_to_dict(dataset_cfg)
    cfg["precomputed_folder"] = str(Path(processed_dir).resolve())
    cfg["annotations_folder"] = str(Path(annotations_dir).resolve()) if annotations_dir is not None else None
    kwargs = dict(augmentation=0, da_mirroring=0.0, da_rotations=0.0, if_load_mmgt=False, if_noisy_obs=False,
                  if_long_term_test=False, dtype="float32", silent=True)  # fmt: skip
    kwargs.update(overrides)
    return build_dataset(cfg, "test", pose_box_size=1.0, dataset_main_path=None, **kwargs), cfg


def build_side_files(
    dataset_name: str,
    processed_dir: str | os.PathLike,
    annotations_dir: str | os.PathLike | None,
    *,
    force: bool = False,
    dataset_cfg: Any = None,
) -> dict:
    """Write ``mean_motion_test.txt`` and ``mmgt_test.txt`` into ``processed_dir``.

    ``annotations_dir`` holds the test CSV (and FreeMan labels). ``dataset_cfg``: a ``configs/dataset`` group
    (defaults: :data:`DEFAULT_DATASET_CFGS`). Returns ``{'mean_motion': path, 'mmgt': path, 'written': [...],
    'skipped': [...], 'num_segments': n, 'mmgt_mean_size': x, 'mmgt_singletons': k, 'seconds': t}``.
    """
    t0 = time.time()
    processed_dir = Path(processed_dir)
    mm_path = processed_dir / "mean_motion_test.txt"
    mmgt_path = processed_dir / "mmgt_test.txt"
    result: dict[str, Any] = {"mean_motion": mm_path, "mmgt": mmgt_path, "written": [], "skipped": []}
    todo_mm = force or not mm_path.is_file()
    todo_mmgt = force or not mmgt_path.is_file()
    if not (todo_mm or todo_mmgt):
        result["skipped"] = [mm_path, mmgt_path]
        result["seconds"] = time.time() - t0
        return result
    ds, cfg = build_test_dataset(dataset_name, processed_dir, annotations_dir, dataset_cfg)
    result["num_segments"] = len(ds.segments)
    if todo_mm:
        refs, freqs = ds.compute_mean_motion(batch_size=128)
        write_mean_motion(mm_path, ds.idx_to_class, refs, freqs)
        result["written"].append(mm_path)
    else:
        result["skipped"].append(mm_path)
    if todo_mmgt:
        threshold = float(cfg.get("multimodal_threshold", 0.4))
        mmgt = compute_mmgt(ds.last_observed_metric(), threshold, block_size=2048, progress=len(ds.segments) > 4096)
        write_mmgt(mmgt_path, mmgt)
        s = mmgt_summary(mmgt)
        result["mmgt_mean_size"] = s["mean_size"]
        result["mmgt_singletons"] = s["singletons"]
        result["written"].append(mmgt_path)
    else:
        result["skipped"].append(mmgt_path)
    result["seconds"] = time.time() - t0
    return result
