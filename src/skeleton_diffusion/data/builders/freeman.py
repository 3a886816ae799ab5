"""FreeMan: ``keypoints3d/<seq>.npy`` -> ``data_3d_freeman.npz`` (``{name: float32 [T, 18, 3]}``), 30 fps.

Official processing, reproduced:

* sequence names = ``.npy`` file names without the suffix; names in ``raw/FreeMan/ignore_list.txt`` or in the
  shipped ``bad_sequences.json`` are excluded;
* positions from the first key present among ``keypoints3d_smoothnet32`` > ``keypoints3d_smoothnet`` >
  ``keypoints3d_optim`` of element 0 of the pickled object array (``[T, 17, 3]`` COCO-17, centimetres);
* ``illlposed_slices_idxs.json`` (a JSON string holding a Python dict literal) lists the half-open frame ranges
  to keep: one range -> trimmed sequence under its own name; several -> ``<seq>_slice1``, ``_slice2``, ... (only
  for sequences with an action label, as in the official script); kept ranges must be NaN-free;
* COCO reorder (hips ... ankles first, then nose ... wrists), root = mid-hip prepended, cm -> m, coordinate 2
  negated, float32.

Deviation: the official script strips the suffix with ``str.strip('.npy')`` (a character-set strip); we remove
the ``.npy`` suffix, which gives the same names for every real FreeMan file (they start with digits and end
with ``subjNN``). Segment CSVs (procedure version 1): ``name,init,pred_init,pred_end`` with windows from 0 at
stride 15 over the clips of ``test.txt`` / ``valid.txt`` in file order; this reproduces the shipped CSVs given
the clip lengths (tested on the real files).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from skeleton_diffusion.data.safe_npz import read_npy_object
from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.data.builders.common import (
    BuildSummary,
    build_side_files_if_possible,
    check_csv_windows,
    log,
    official_train_window_count,
    record_csv_check,
    write_processed,
)
from skeleton_diffusion.data.segments import window_rows
from skeleton_diffusion.data.processed import read_processed

KEYPOINT_KEYS = ("keypoints3d_smoothnet32", "keypoints3d_smoothnet", "keypoints3d_optim")
OBS, PRED, FPS, STRIDE = 15, 60, 30, 15


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_annotations(annotations_dir: Path) -> tuple[set[str], dict[str, list[tuple[int, int]]], dict[str, str]]:
    """``bad_sequences``, ill-posed ranges and the action-label map (slices also register their parent name)."""
    for name in ("bad_sequences.json", "illlposed_slices_idxs.json", "seq_actions_labels.txt"):
        if not (annotations_dir / name).is_file():
            raise DatasetNotPreparedError(
                f"FreeMan annotation file missing: '{annotations_dir / name}'. "
                "Run `python -m skeleton_diffusion.apps.fetch_annotations --dataset FreeMan`."
            )
    with open(annotations_dir / "bad_sequences.json") as fh:
        bad = set(json.load(fh))
    with open(annotations_dir / "illlposed_slices_idxs.json") as fh:
        illposed = ast.literal_eval(json.load(fh))
    labels: dict[str, str] = {}
    for line in read_lines(annotations_dir / "seq_actions_labels.txt"):
        name, label = line.split(",")
        labels[name] = label
        labels.setdefault(name.split("_slice")[0], label)
    return bad, illposed, labels


def read_keypoints(path: Path) -> np.ndarray:
    """``[T, 17, 3]`` centimetres (COCO-17) from a FreeMan ``keypoints3d`` npy."""
    arr = read_npy_object(path)  # allow-listed unpickler: arrays, dicts, lists, strings, numbers
    try:
        record = arr[0]
    except (IndexError, TypeError) as exc:
        raise DataFormatError(f"{path}: expected a pickled object array whose element 0 is a dict") from exc
    for key in KEYPOINT_KEYS:
        if key in record:
            kpts = np.asarray(record[key])
            if kpts.ndim != 3 or kpts.shape[1:] != (17, 3):
                raise DataFormatError(f"{path}: '{key}' has shape {kpts.shape}, expected [T, 17, 3]")
            return kpts
    raise DataFormatError(f"{path}: none of the keys {list(KEYPOINT_KEYS)} found; keys: {sorted(record)}")


def preprocess_keypoints(kpts: np.ndarray) -> np.ndarray:
    """COCO-17 cm -> FreeMan-18 m (official order of operations, see module doc)."""
    if np.isnan(kpts).any():
        raise DataFormatError("sequence contains NaN after removing ill-posed frames")
    positions = np.concatenate([kpts[..., 11:, :], kpts[..., :11, :]], axis=-2)
    positions = np.concatenate(
        [positions[..., 0:1, :] + (positions[..., 1:2, :] - positions[..., 0:1, :]) / 2, positions], axis=-2
    )
    positions /= 100
    positions[..., 2] *= -1
    return positions.astype(np.float32)


def freeman_segment_rows(clips: list[tuple[str, int]], stride: int = STRIDE) -> list[tuple[str, int, int, int]]:
    return window_rows(clips, OBS, PRED, stride)


def check_named_csv(positions: dict, csv_path: Path) -> tuple[int, int, list[str]]:
    def length_of(row: dict[str, str]) -> int | None:
        clip = positions.get(row["name"])
        return None if clip is None else len(clip)

    return check_csv_windows(csv_path, length_of, lambda r: int(r["init"]), lambda r: int(r["pred_end"]),
                             lambda r: r["name"])


def build_freeman(
    data_root: str | Path = "datasets", *, side_files: bool = True, force: bool = False, progress: bool = True
) -> BuildSummary:
    data_root = Path(data_root)
    raw_dir = data_root / "raw" / "FreeMan"
    annotations_dir = data_root / "annotations" / "FreeMan" / "hmp"
    processed_dir = data_root / "processed" / "FreeMan" / "hmp"
    out_path = processed_dir / "data_3d_freeman.npz"
    summary = BuildSummary("FreeMan", output=str(out_path))

    if out_path.is_file() and not force:
        summary.reused = True
        positions = read_processed(out_path)
    else:
        bad, illposed, labels = load_annotations(annotations_dir)
        kp_dir = raw_dir / "keypoints3d"
        if not kp_dir.is_dir():
            raise DatasetNotPreparedError(f"FreeMan keypoints folder not found: '{kp_dir}'")
        ignore_file = raw_dir / "ignore_list.txt"
        ignore = set(read_lines(ignore_file)) if ignore_file.is_file() else set()
        if not ignore_file.is_file():
            log.warning("%s not found: only bad_sequences.json is excluded", ignore_file)
        positions = {}
        for path in tqdm(sorted(kp_dir.glob("*.npy")), desc="FreeMan sequences", unit="seq", disable=not progress):
            seq = path.name[: -len(".npy")]
            summary.sequences_read += 1
            if seq in ignore or seq in bad:
                summary.skip(seq, "ignore_list.txt" if seq in ignore else "bad_sequences.json")
                continue
            kpts = read_keypoints(path)
            ranges = illposed.get(seq)
            try:
                if ranges is not None and len(ranges) > 1:
                    if seq not in labels:
                        summary.skip(seq, "sliced sequence without action label (official: dropped)")
                        continue
                    for k, (a, b) in enumerate(ranges):
                        positions[f"{seq}_slice{k + 1}"] = preprocess_keypoints(kpts[a:b])
                else:
                    if ranges is not None:
                        kpts = kpts[ranges[0][0] : ranges[0][1]]
                    positions[seq] = preprocess_keypoints(kpts)
                    if seq not in labels:
                        log.warning("%s has no action label in seq_actions_labels.txt", seq)
            except DataFormatError as exc:
                raise DataFormatError(f"{path}: {exc}") from exc
        write_processed(out_path, positions, skeleton="freeman")
    summary.clips_written = len(positions)
    summary.frames = sum(len(a) for a in positions.values())

    train_file = annotations_dir / "train.txt"
    if train_file.is_file():
        names = read_lines(train_file)
        missing = [n for n in names if n not in positions]
        summary.windows["train (stride 1)"] = official_train_window_count(
            [len(positions[n]) for n in names if n in positions], OBS + PRED
        )
        if missing:
            summary.csv_ok = False
            summary.csv_checks["train"] = f"MISMATCH: {len(missing)} train.txt clips missing, e.g. {missing[:3]}"
        else:
            summary.csv_checks["train"] = f"OK: all {len(names)} train.txt clips present"
    for split in ("valid", "test"):
        csv_path = annotations_dir / f"segments_{split}.csv"
        if csv_path.is_file():
            record_csv_check(summary, split, check_named_csv(positions, csv_path), csv_path)
        else:
            summary.csv_checks[split] = f"not checked: {csv_path} missing"
    if side_files and summary.csv_ok and (annotations_dir / "segments_test.csv").is_file():
        build_side_files_if_possible("freeman", processed_dir, annotations_dir, summary, force=force or not summary.reused)
    return summary
