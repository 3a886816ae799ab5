"""Shared pieces of the builders that keep a source's own skeleton (BVH ``--skeleton native``, DeepMimic).

* :func:`clip_labels`: CMD / mean-motion classes from folder or file names (``clip_labels.txt``);
* :func:`native_dataset_cfg` / :func:`write_dataset_config`: the ``configs/dataset`` group written beside the data
  (``dataset_config.yaml`` + ``.json``), whose ``skeleton_name`` points at the ``skeleton.json`` beside it;
* :func:`write_native_dataset`: split clips, write npz + skeleton + CSVs + labels + config (+ side files).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from skeleton_diffusion.skeletons.formats.bvh import native_hierarchy  # noqa: F401  (used by builders)
from skeleton_diffusion.utils.errors import DataFormatError
from skeleton_diffusion.utils.io import atomic_write
from skeleton_diffusion.data.builders.common import BuildSummary, build_side_files_if_possible
from skeleton_diffusion.data.processed import check_finite
from skeleton_diffusion.data.segments import window_rows, write_csv

__all__ = ["clip_labels", "native_dataset_cfg", "write_dataset_config", "write_native_dataset", "build_native_dataset",
           "native_hierarchy", "bvh_to_native"]

_TRAILING_NUMBER = re.compile(r"[_\-\s.]*\d+$")


def clip_labels(clip_paths: Mapping[str, str], mode: str = "auto") -> dict[str, str]:
    """``{clip: label}`` from each clip's relative source path (``a/b/walk_03.bvh``).

    ``folder``: the first folder (``a``); ``filename``: the file stem without a trailing number and without a
    ``<prefix>_`` shared by every file (``humanoid3d_walk`` -> ``walk``, ``run_02`` -> ``run``); ``none``: the clip
    name itself (one class per clip); ``auto``: ``folder`` when the files sit in two or more folders, else
    ``filename``.
    """
    if mode not in ("auto", "folder", "filename", "none"):
        raise ValueError(f"labels must be auto, folder, filename or none; got {mode!r}")
    parts = {c: Path(p).parts for c, p in clip_paths.items()}
    if mode == "auto":
        folders = {pp[0] for pp in parts.values() if len(pp) > 1}
        mode = "folder" if len(folders) >= 2 else "filename"
    if mode == "none":
        return {c: c for c in clip_paths}
    if mode == "folder":
        return {c: (pp[0] if len(pp) > 1 else ".") for c, pp in parts.items()}
    stems = {c: _TRAILING_NUMBER.sub("", Path(p).stem) or Path(p).stem for c, p in clip_paths.items()}
    prefixes = {s.split("_", 1)[0] for s in stems.values() if "_" in s}
    if len(prefixes) == 1 and all("_" in s for s in stems.values()) and len(stems) > 1:
        stems = {c: s.split("_", 1)[1] for c, s in stems.items()}
    return stems


def native_dataset_cfg(name: str, fps: int, num_joints: int, *, skeleton_file: bool = True,
                       skeleton_name: str = "amass", mirroring: float = 0.5) -> dict[str, Any]:
    """A ``configs/dataset`` group for a dataset under ``processed/<name>/hmp/`` (folders relative to
    ``${dataset_main_path}``)."""
    folder = f"processed/{name}/hmp/"
    return {
        "dataset_name": name.lower(), "dataset_type": "GenericMotionDataset",
        "skeleton_name": f"${{dataset_main_path}}/{folder}skeleton.json" if skeleton_file else skeleton_name,
        "num_joints": int(num_joints), "fps": int(fps), "multimodal_threshold": 0.4, "dtype": "float32",
        "precomputed_folder": folder, "annotations_folder": folder,
        "data_loader_train": {"stride": 10, "augmentation": 5, "da_mirroring": mirroring, "da_rotations": 1.0,
                              "shuffle": True},
        "data_loader_train_eval": {"stride": 30, "augmentation": 0, "da_mirroring": 0.0, "da_rotations": 0.0},
        "data_loader_valid": {"segments_path": "segments_valid.csv", "shuffle": False},
        "data_loader_test": {"segments_path": "segments_test.csv", "shuffle": False},
    }


def write_dataset_config(processed_dir: str | Path, cfg: Mapping[str, Any]) -> Path:
    """Write ``dataset_config.yaml`` (found by ``dataset=<name>``, see ``dataset_configs.py``) and ``.json``."""
    import yaml

    processed_dir = Path(processed_dir)
    with atomic_write(processed_dir / "dataset_config.json", "w") as fh:
        json.dump(dict(cfg), fh, indent=1)
    path = processed_dir / "dataset_config.yaml"
    with atomic_write(path, "w") as fh:
        fh.write(f"# written by the dataset builder; usable as dataset={cfg['dataset_name']} (add "
                 "dataset_main_path=<--data-root> if not ./datasets)\n")
        yaml.safe_dump(dict(cfg), fh, sort_keys=False)
    return path


def side_cfg(cfg: Mapping[str, Any], processed_dir: str | Path) -> dict[str, Any]:
    """``cfg`` with absolute folders and skeleton path (for building side files without Hydra)."""
    p = str(Path(processed_dir).resolve())
    out = dict(cfg, precomputed_folder=p, annotations_folder=p)
    if str(out.get("skeleton_name", "")).endswith("skeleton.json"):
        out["skeleton_name"] = str(Path(p) / "skeleton.json")
    return out


def write_native_dataset(
    processed_dir: Path,
    name: str,
    positions: Mapping[str, Mapping[str, np.ndarray]],
    skeleton: Any,
    labels: Mapping[str, str],
    summary: BuildSummary,
    *,
    fps: int,
    obs: int,
    pred: int,
    side_files: bool = True,
    mirroring: float = 0.5,
) -> dict[str, Any]:
    """Write ``data_3d_<name>.npz``, ``skeleton.json``, ``segments_<split>.csv`` (stride ``obs``),
    ``clip_labels.txt``, ``dataset_config.yaml`` and (``side_files``) the evaluation side files."""
    from skeleton_diffusion.skeletons.formats.files import save_skeleton_file

    processed_dir = Path(processed_dir)
    from skeleton_diffusion.data.processed import save_processed

    save_processed(processed_dir / f"data_3d_{name.lower()}.npz", positions, joint_names=list(skeleton.joint_names))
    save_skeleton_file(skeleton, processed_dir / "skeleton.json")
    for split, clips_of in positions.items():
        rows = window_rows([(c, len(a)) for c, a in clips_of.items()], obs, pred, stride=obs)
        write_csv(processed_dir / f"segments_{split}.csv", ("name", "init", "pred_init", "pred_end"), rows)
        summary.windows[split] = len(rows)
    with atomic_write(processed_dir / "clip_labels.txt", "w") as fh:
        fh.writelines(f"{c},{labels[c]}\n" for c in sorted(labels))
    cfg = native_dataset_cfg(name, fps, skeleton.num_joints, mirroring=mirroring)
    if (obs, pred) != (int(round(0.5 * fps)), int(round(2.0 * fps))):
        # non-default segment windows: train/eval with task.history_sec / task.prediction_horizon_sec equal to these
        cfg["windows_sec"] = {"history": obs / fps, "horizon": pred / fps}
    write_dataset_config(processed_dir, cfg)
    summary.clips_written = sum(len(v) for v in positions.values())
    summary.frames = sum(len(a) for v in positions.values() for a in v.values())
    if side_files and summary.windows.get("test", 0) > 0:
        from skeleton_diffusion.data.side_files import build_side_files

        scfg = side_cfg(cfg, processed_dir)
        build_side_files_if_possible(name.lower(), processed_dir, processed_dir, summary, force=True, dataset_cfg=scfg)
        build_side_files(name.lower(), processed_dir, processed_dir, force=False, dataset_cfg=scfg, mmapd=True)
    return cfg


def _read_clip_arrays(input_path: Path, num_joints: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({clip: [T, J, 3]}, {clip: relative source path})`` from a folder of ``.npy`` files or one ``.npz``."""
    from skeleton_diffusion.utils.errors import DatasetNotPreparedError

    clips: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    if input_path.is_file() and input_path.suffix == ".npz":
        with np.load(input_path, allow_pickle=False) as data:
            for k in data.files:
                clips[k], sources[k] = np.asarray(data[k]), f"{k}.npy"
    elif input_path.is_dir():
        for f in sorted(input_path.rglob("*.npy")):
            clip = f.relative_to(input_path).with_suffix("").as_posix().replace("/", "__")
            clips[clip], sources[clip] = np.load(f, allow_pickle=False), f.relative_to(input_path).as_posix()
    else:
        raise DatasetNotPreparedError(f"input '{input_path}' must be a folder of .npy clips or one .npz file")
    if not clips:
        raise DatasetNotPreparedError(f"no clips (.npy arrays [T, J, 3]) found in '{input_path}'")
    for k, a in clips.items():
        if a.ndim != 3 or a.shape[1:] != (num_joints, 3) or not np.issubdtype(a.dtype, np.floating):
            raise DataFormatError(f"{input_path}: clip {k!r} has shape {a.shape} dtype {a.dtype}; expected float "
                                  f"[T, {num_joints}, 3] metres in the skeleton's joint order")
        check_finite(a, f"{input_path}: clip {k!r} ({sources[k]})")
    return {k: a.astype(np.float32) for k, a in clips.items()}, sources


def read_clip_rates(path: str | Path) -> dict[str, float]:
    """A per-clip rate file: one ``<clip>,<fps>`` line per clip (``<clip>``: the clip name, i.e. the ``.npy``
    path relative to the input folder without suffix and with ``/`` -> ``__``, or the ``.npz`` key)."""
    path = Path(path)
    if not path.is_file():
        from skeleton_diffusion.utils.errors import DatasetNotPreparedError

        raise DatasetNotPreparedError(f"rate file not found: '{path}' (expected '<clip>,<fps>' lines)")
    rates: dict[str, float] = {}
    for k, line in enumerate(path.read_text().splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.replace(" ", ",").split(",") if p.strip()]
        try:
            clip, fps = parts[0].removesuffix(".npy").replace("/", "__"), float(parts[1])
        except (IndexError, ValueError):
            raise DataFormatError(f"{path}: line {k + 1} {line!r} is not '<clip>,<fps>'") from None
        if not np.isfinite(fps) or fps <= 0:
            raise DataFormatError(f"{path}: line {k + 1}: frame rate must be a positive number, got {parts[1]!r}")
        rates[clip] = fps
    return rates


def build_native_dataset(
    input_path: str | Path,
    skeleton_file: str | Path,
    name: str,
    *,
    data_root: str | Path = "datasets",
    fps: int = 60,
    input_fps: float | None = None,
    rates: str | Path | Mapping[str, float] | None = None,
    obs_seconds: float = 0.5,
    pred_seconds: float = 2.0,
    split_mode: str = "auto",
    labels: str = "auto",
    side_files: bool = True,
    force: bool = False,
    drop_degenerate: bool = True,
) -> BuildSummary:
    """Clips of joint positions in metres (Z up, the skeleton file's joint order) + a skeleton file -> a processed
    dataset at ``fps`` under ``<data_root>/processed/<name>/hmp`` (see :func:`write_native_dataset`).

    The clips' own rate: ``rates`` (per clip, a ``<clip>,<fps>`` file or mapping; every clip must be listed),
    else ``input_fps`` for the whole folder, else ``fps`` (no resampling). Clips at another rate are resampled
    keeping every bone length (:func:`~.common.resample_keep_bones`). ``drop_degenerate``: joints on their parent
    in every frame are dropped (reported), else refused. An existing dataset is replaced only with ``force``,
    atomically (temporary folder, then swap)."""
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file
    from skeleton_diffusion.skeletons.skeleton import Skeleton
    from skeleton_diffusion.data.builders.common import (check_windows_nonempty, handle_degenerate,
                                                         resample_keep_bones, split_clips, staged_dataset_dir)
    from skeleton_diffusion.utils.errors import ConfigError

    sk = load_skeleton_file(skeleton_file)
    input_path = Path(input_path)
    processed_dir = Path(data_root) / "processed" / name / "hmp"
    if processed_dir.exists() and any(processed_dir.iterdir()) and not force:
        raise ConfigError(f"dataset folder '{processed_dir}' already exists; pass --force to rebuild it (the new "
                          "build replaces the whole folder atomically) or choose another --name")
    clips, sources = _read_clip_arrays(input_path, sk.num_joints)
    summary = BuildSummary(name, output=str(processed_dir / f"data_3d_{name.lower()}.npz"))
    summary.sequences_read = len(clips)
    rate_of = dict(read_clip_rates(rates) if isinstance(rates, (str, Path)) else (rates or {}))
    if rate_of:
        missing = [c for c in clips if c not in rate_of]
        if missing:
            raise DataFormatError(f"rate file {rates}: no frame rate for clip(s) {missing[:5]}"
                                  f"{' ...' if len(missing) > 5 else ''}; list every clip as '<clip>,<fps>'")
    resampled = []
    for c in list(clips):
        src_fps = rate_of.get(c, input_fps if input_fps is not None else fps)
        if abs(src_fps - fps) > 1e-6 * fps:
            clips[c] = resample_keep_bones(clips[c], sk.parents, src_fps, fps)
            resampled.append(f"{c} ({src_fps:g} fps)")
    if resampled:
        summary.notes.append(f"resampled to {fps} fps keeping bone lengths: {', '.join(resampled[:5])}"
                             + (f" and {len(resampled) - 5} more" if len(resampled) > 5 else ""))
    kept, parents = handle_degenerate(clips, sk.joint_names, sk.parents, summary, drop=drop_degenerate,
                                      source=str(input_path))
    if len(kept) < sk.num_joints:
        clips = {c: a[:, kept] for c, a in clips.items()}
        sk = Skeleton.from_hierarchy(sk.name, [sk.joint_names[k] for k in kept], parents,
                                     description=f"{sk.name} without its zero-length bones")
    obs, pred = int(round(obs_seconds * fps)), int(round(pred_seconds * fps))
    ranges = split_clips(list(clips), {k: len(v) for k, v in clips.items()}, split_mode)
    positions = {s: {c: clips[c][a:b].copy() for c, (a, b) in r.items()} for s, r in ranges.items()}
    for split, clips_of in positions.items():
        summary.windows[split] = len(window_rows([(c, len(a)) for c, a in clips_of.items()], obs, pred, stride=obs))
    check_windows_nonempty(summary, positions, obs + pred, str(input_path))
    with staged_dataset_dir(processed_dir) as out_dir:
        write_native_dataset(out_dir, name, positions, sk, clip_labels(sources, labels), summary, fps=fps,
                             obs=obs, pred=pred, side_files=side_files)
    return summary


# ------------------------------------------------------------------------------------------- BVH, native joints
def bvh_to_native(
    path: str | Path, *, joints: Sequence[str] | None = None, unit: str | float | None = None,
    up: str | None = None, fps: float = 60,
) -> tuple[np.ndarray, dict, list[str], list[int]]:
    """One BVH file on its own skeleton: ``(float32 [T, J, 3] metres Z-up at fps, info, names, parents)``.

    End Sites are dropped; ``joints`` keeps a subset (root always kept, parents re-linked to the nearest kept
    ancestor)."""
    from skeleton_diffusion.skeletons.hierarchy import subset_hierarchy
    from skeleton_diffusion.skeletons.formats.bvh import bvh_forward_kinematics, leading_rest_frames, parse_bvh, resolve_unit, to_z_up

    motion = parse_bvh(path)
    names, parents, idx = native_hierarchy(motion)
    if joints:
        try:
            kept, parents = subset_hierarchy(names, parents, joints, motion.source)
        except ValueError as exc:
            from skeleton_diffusion.utils.errors import ConfigError

            raise ConfigError(f"--joints: {exc}") from None
        names, idx = [names[i] for i in kept], [idx[i] for i in kept]
    scale = resolve_unit(unit if unit is not None else "auto", motion)
    positions = bvh_forward_kinematics(motion, fps)[:, idx]  # slerp of the rotation channels, then FK
    out = to_z_up(positions * scale, up or "y").astype(np.float32)
    info = {"source_fps": motion.fps, "metres_per_unit": scale, "source_frames": motion.frames.shape[0],
            "frames": int(out.shape[0]),
            "tpose_frames": leading_rest_frames(motion, fps=fps)}
    return out, info, names, list(parents)
