"""Human3.6M: ``D3_Positions`` CDF files -> ``data_3d_h36m.npz`` (``{subject: {action: float32 [T, 17, 3]}}``).

Official processing: ``cdflib.CDF(file)['Pose']`` reshaped to ``[T, 32, 3]`` (mm, 50 fps, Z-up world), the 17
joints ``CONVERSION_IDX_H36M_32TO17`` kept, divided by 1000 (metres), float32; no temporal subsampling. Action
name = file stem with ``TakingPhoto -> Photo``, ``WalkingDog -> WalkDog``, spaces -> ``_``; ``S11/Directions``
(un-numbered) is skipped as corrupted. Each subject must have 30 files (``strict``; the official script asserts).

Segment CSVs (procedure version 1, see :func:`h36m_segment_rows`): windows start at 0 with stride 25 (0.5 s),
length 125, every window that fits; the test CSV lists S9 then S11 with raw-style action names (``Sitting 1``),
the valid CSV (S8) has a leading pandas index column (restarting at 0 for every clip) and ``_`` names. The clip *order* of the shipped CSVs follows
the authors' file-system listing and cannot be recovered; given that order and the clip lengths the shipped
files are reproduced byte for byte (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.data.segments import normalize_h36m_action
from skeleton_diffusion.data.builders.common import (
    BuildSummary,
    build_side_files_if_possible,
    check_csv_windows,
    official_train_window_count,
    record_csv_check,
    write_processed,
)
from skeleton_diffusion.data.segments import window_rows
from skeleton_diffusion.data.processed import read_processed

SUBJECTS = ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
SPLITS = {"train": ["S1", "S5", "S6", "S7", "S8"], "valid": ["S8"], "test": ["S9", "S11"]}
CONVERSION_IDX_H36M_32TO17 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
FILES_PER_SUBJECT = 30
OBS, PRED, FPS = 25, 100, 50


def read_cdf_positions(path: str | Path) -> np.ndarray:
    """``[T, 32, 3]`` millimetres from an H36M ``D3_Positions`` CDF (variable ``Pose``)."""
    import cdflib

    cdf = cdflib.CDF(str(path))
    try:
        pose = np.asarray(cdf.varget("Pose"))
    except Exception as exc:  # noqa: BLE001
        raise DataFormatError(f"{path}: cannot read CDF variable 'Pose' ({exc})") from exc
    if pose.size % 96 != 0:
        raise DataFormatError(f"{path}: 'Pose' has shape {pose.shape}, expected [1, T, 96] (32 joints x 3)")
    return pose.reshape(-1, 32, 3)


def convert_positions(raw_mm: np.ndarray) -> np.ndarray:
    """Official conversion: 32 -> 17 joints, mm -> m in the file's dtype (float32 in the real files), float32."""
    positions = raw_mm[:, CONVERSION_IDX_H36M_32TO17, :]
    if not np.issubdtype(positions.dtype, np.floating):
        positions = positions.astype(np.float64)
    positions /= 1000
    return positions.astype(np.float32)


def h36m_segment_rows(
    clips: Sequence[tuple[str, str, int]], *, stride: int = 25, style: str = "test"
) -> tuple[list[str], list[list]]:
    """Header and rows of an H36M segment CSV for ``clips = [(subject, canonical_action, T), ...]`` in order.

    ``style='test'``: ``subject,action,init,pred_init,pred_end`` with ``_`` shown as spaces (``Sitting 1``);
    ``style='valid'``: a leading unnamed per-clip window-index column and canonical names.
    """
    rows: list[list] = []
    for subject, action, length in clips:
        shown = action.replace("_", " ") if style == "test" else action
        for k, (_, init, pred_init, pred_end) in enumerate(window_rows([(action, length)], OBS, PRED, stride)):
            rows.append(([k] if style == "valid" else []) + [subject, shown, init, pred_init, pred_end])
    if style == "valid":  # the shipped file's index column restarts at 0 for every clip (per-clip pandas frames)
        return ["", "subject", "action", "init", "pred_init", "pred_end"], rows
    return ["subject", "action", "init", "pred_init", "pred_end"], rows


def check_h36m_csv(positions: dict, csv_path: Path) -> tuple[int, int, list[str]]:
    def length_of(row: dict[str, str]) -> int | None:
        clip = positions.get(row["subject"], {}).get(normalize_h36m_action(row["action"]))
        return None if clip is None else len(clip)

    return check_csv_windows(
        csv_path, length_of, lambda r: int(r["init"]), lambda r: int(r["pred_end"]),
        lambda r: f"{r['subject']}/{r['action']}",
    )


def build_h36m(
    data_root: str | Path = "datasets",
    *,
    subjects: Sequence[str] = SUBJECTS,
    strict: bool = True,
    side_files: bool = True,
    force: bool = False,
    progress: bool = True,
) -> BuildSummary:
    """Build ``processed/Human36M/hmp/data_3d_h36m.npz`` (+ side files) from ``raw/Human36M``."""
    data_root = Path(data_root)
    raw_dir = data_root / "raw" / "Human36M"
    processed_dir = data_root / "processed" / "Human36M" / "hmp"
    annotations_dir = data_root / "annotations" / "Human36M" / "hmp"
    out_path = processed_dir / "data_3d_h36m.npz"
    summary = BuildSummary("Human36M", output=str(out_path))

    if out_path.is_file() and not force:
        summary.reused = True
        positions = read_processed(out_path)
    else:
        positions = {}
        for subject in tqdm(subjects, desc="H36M subjects", unit="subject", disable=not progress):
            folder = raw_dir / subject / "MyPoseFeatures" / "D3_Positions"
            files = sorted(folder.glob("*.cdf"))
            if not files:
                raise DatasetNotPreparedError(f"No CDF files in '{folder}' (expected {FILES_PER_SUBJECT}).")
            if strict and len(files) != FILES_PER_SUBJECT:
                raise DataFormatError(
                    f"'{folder}' holds {len(files)} CDF files, expected {FILES_PER_SUBJECT} "
                    "(pass --no-strict to build from an incomplete copy)"
                )
            positions[subject] = {}
            for f in tqdm(files, desc=subject, unit="file", disable=not progress, leave=False):
                summary.sequences_read += 1
                if subject == "S11" and f.stem == "Directions":
                    summary.skip(f"{subject}/{f.name}", "corrupted recording (skipped as in the official script)")
                    continue
                positions[subject][normalize_h36m_action(f.stem)] = convert_positions(read_cdf_positions(f))
        write_processed(out_path, positions, skeleton="h36m")
    summary.clips_written = sum(len(v) for v in positions.values())
    summary.frames = sum(len(a) for v in positions.values() for a in v.values())

    train_lengths = [len(a) for s in SPLITS["train"] for a in positions.get(s, {}).values()]
    summary.windows["train (stride 1)"] = official_train_window_count(train_lengths, OBS + PRED)
    for split in ("valid", "test"):
        csv_path = annotations_dir / f"segments_{split}.csv"
        if csv_path.is_file():
            record_csv_check(summary, split, check_h36m_csv(positions, csv_path), csv_path)
        else:
            summary.csv_checks[split] = f"not checked: {csv_path} missing"
    if side_files and summary.csv_ok and (annotations_dir / "segments_test.csv").is_file():
        build_side_files_if_possible("h36m", processed_dir, annotations_dir, summary, force=force or not summary.reused)
    return summary
