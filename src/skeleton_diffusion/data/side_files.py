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

import numpy as np

from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.data.registry import DEFAULT_DATASET_CFGS, build_dataset, dataset_cfg_to_dict
from skeleton_diffusion.data.mean_motion import write_mean_motion
from skeleton_diffusion.data.mmgt import compute_mmgt, mmgt_summary, write_mmgt

__all__ = ["build_side_files", "build_test_dataset", "regenerate_side_files"]


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


def _window_overrides(dataset_cfg: Any) -> dict:
    """``history_sec`` / ``prediction_horizon_sec`` from a builder-written ``windows_sec`` block (datasets built
    with non-default windows, e.g. ``--pred-seconds 1``); ``{}`` otherwise."""
    if dataset_cfg is None:
        return {}
    w = dataset_cfg_to_dict(dataset_cfg).get("windows_sec") or {}
    out = {}
    if "history" in w:
        out["history_sec"] = float(w["history"])
    if "horizon" in w:
        out["prediction_horizon_sec"] = float(w["horizon"])
    return out


def build_side_files(
    dataset_name: str,
    processed_dir: str | os.PathLike,
    annotations_dir: str | os.PathLike | None,
    *,
    force: bool = False,
    dataset_cfg: Any = None,
    mmapd: bool = False,
) -> dict:
    """Write ``mean_motion_test.txt`` and ``mmgt_test.txt`` (and, with ``mmapd``, ``mmapd_GT.csv``: the APD of
    each test segment's multimodal ground truth, for APDE) into ``processed_dir``.

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
    todo_mmapd = mmapd and (force or not (processed_dir / "mmapd_GT.csv").is_file())
    if not (todo_mm or todo_mmgt or todo_mmapd):
        result["skipped"] = [mm_path, mmgt_path]
        result["seconds"] = time.time() - t0
        return result
    ds, cfg = build_test_dataset(dataset_name, processed_dir, annotations_dir, dataset_cfg, **_window_overrides(dataset_cfg))
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
    if mmapd:
        from skeleton_diffusion.data.mmgt import compute_mmgt_apd, read_mmgt, write_mmapd_csv

        mmapd_path = processed_dir / "mmapd_GT.csv"
        if todo_mmapd or todo_mmgt:
            futures = np.stack([ds.future_metric(i) for i in range(len(ds.segments))])
            write_mmapd_csv(mmapd_path, compute_mmgt_apd(futures, read_mmgt(mmgt_path, len(ds.segments))))
            result["written"].append(mmapd_path)
        else:
            result["skipped"].append(mmapd_path)
    result["seconds"] = time.time() - t0
    return result


def regenerate_side_files(processed_dir: str | os.PathLike, *, dataset_config: str | os.PathLike | None = None,
                          annotations_dir: str | os.PathLike | None = None, segments: bool = False,
                          stride_seconds: float = 0.5, mmapd: bool = True, force: bool = True) -> dict:
    """One call for any processed dataset folder: (``segments``) ``segments_<split>.csv`` of the generic layout,
    then ``mean_motion_test.txt``, ``mmgt_test.txt`` and ``mmapd_GT.csv`` (and, for ``GenericMotionDataset``
    folders, ``segments_test_long_term_pred.csv``: see :mod:`.long_term`).

    The dataset settings come from ``dataset_config`` (default ``<processed_dir>/dataset_config.yaml``, written by
    the builders) or, for the built-in datasets, from :data:`DEFAULT_DATASET_CFGS` by folder name."""
    import yaml

    processed_dir = Path(processed_dir)
    cfg_path = Path(dataset_config) if dataset_config else processed_dir / "dataset_config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"no dataset config: '{cfg_path}' does not exist; pass --dataset-config (a configs/dataset "
                          "yaml) or rebuild the dataset with its create_*_dataset command")
    cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.suffix in (".yaml", ".yml") else \
        __import__("json").loads(cfg_path.read_text())
    ann = Path(annotations_dir) if annotations_dir else processed_dir
    cfg = dict(cfg, precomputed_folder=str(processed_dir.resolve()), annotations_folder=str(ann.resolve()))
    sk_name = str(cfg.get("skeleton_name", ""))
    if sk_name.endswith("skeleton.json") or "${" in sk_name:
        cfg["skeleton_name"] = str((processed_dir / "skeleton.json").resolve())
    out: dict = {"segments": {}}
    if segments:
        from skeleton_diffusion.data.segments import window_rows, write_csv
        from skeleton_diffusion.data.processed import read_processed

        name = str(cfg["dataset_name"])
        positions = read_processed(processed_dir / f"data_3d_{name}.npz")
        fps = int(cfg["fps"])
        w = {"history": 0.5, "horizon": 2.0, **(cfg.get("windows_sec") or {})}
        obs, pred = int(round(float(w["history"]) * fps)), int(round(float(w["horizon"]) * fps))
        for split, clips in positions.items():
            if not isinstance(clips, dict):
                raise ConfigError("segments can only be regenerated for the generic layout {split: {clip: array}}")
            rows = window_rows([(c, len(a)) for c, a in clips.items()], obs, pred, stride=int(round(stride_seconds * fps)))
            write_csv(ann / f"segments_{split}.csv", ("name", "init", "pred_init", "pred_end"), rows)
            out["segments"][split] = len(rows)
    if str(cfg.get("dataset_type")) == "GenericMotionDataset":  # long-term test windows (H16c)
        from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
        from skeleton_diffusion.data.long_term import write_long_term_segments

        w = {"history": 0.5, "horizon": 2.0, **(cfg.get("windows_sec") or {})}
        test_csv = Path(str((cfg.get("data_loader_test") or {}).get("segments_path") or "segments_test.csv")).name
        try:
            out["long_term"] = write_long_term_segments(
                processed_dir, dataset_name=str(cfg["dataset_name"]), fps=float(cfg["fps"]),
                history_sec=float(w["history"]), horizon_sec=float(w["horizon"]), annotations_dir=ann,
                test_csv=test_csv, force=force)
        except (DataFormatError, DatasetNotPreparedError) as exc:  # clips too short / no test CSV: no file
            out["long_term"] = {"written": False, "reason": str(exc)}
            print(f"warning: no long-term test windows written ({exc})")
    out.update(build_side_files(str(cfg["dataset_name"]), processed_dir, ann, force=force, dataset_cfg=cfg,
                                mmapd=mmapd))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m skeleton_diffusion.data.side_files PROCESSED_DIR [--dataset-config F] [--segments] [--no-force]``"""
    import argparse

    p = argparse.ArgumentParser(description="(re)generate segments, MMGT, mean motion and mmapd_GT of a processed "
                                            "dataset folder")
    p.add_argument("processed_dir")
    p.add_argument("--dataset-config", default=None, help="default: <processed_dir>/dataset_config.yaml")
    p.add_argument("--annotations-dir", default=None, help="where the test CSV lives (default: processed_dir)")
    p.add_argument("--segments", action="store_true", help="also rewrite segments_<split>.csv (generic layout)")
    p.add_argument("--no-mmapd", action="store_true")
    p.add_argument("--no-force", action="store_true", help="keep side files that exist")
    a = p.parse_args(argv)
    r = regenerate_side_files(a.processed_dir, dataset_config=a.dataset_config, annotations_dir=a.annotations_dir,
                              segments=a.segments, mmapd=not a.no_mmapd, force=not a.no_force)
    if r.get("long_term", {}).get("written"):
        print(f"long-term windows: {r['long_term']['num_segments']} -> {r['long_term']['path']}")
    print(f"segments: {r['segments'] or 'kept'}; written: {[Path(x).name for x in r['written']]}; "
          f"test segments: {r.get('num_segments')}; {r['seconds']:.1f} s")
    return 0
