"""Long-term test windows (``segments_test_long_term_pred.csv``) for generic processed datasets.

``eval.py if_long_term_test=true`` predicts ``int(prediction_horizon_sec * fps * long_term_factor)`` frames
(0.5 s -> 5 s with the default factor 2.5) on the windows of ``segments_test_long_term_pred.csv``. AMASS ships
that file; generic datasets (synthetic, BVH, native skeletons: ``name,init,pred_init,pred_end[,class]`` CSVs)
get it from here: every window of the 2 s test CSV whose long horizon still fits in its clip, with the same
``init`` and class and ``pred_end = init + obs + long_pred - 1`` (inclusive), in test-CSV order.

``python -m skeleton_diffusion.apps.regenerate_side_files <processed dir> --no-force`` writes it for an existing
dataset folder (the synthetic builder writes it itself).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from skeleton_diffusion.utils.errors import DataFormatError
from skeleton_diffusion.data.segments import CsvSegment, read_named_segments, write_named_segments

__all__ = ["LONG_TERM_SEGMENTS", "DEFAULT_LONG_TERM_FACTOR", "long_term_length", "long_term_rows",
           "write_long_term_segments", "missing_long_term_hint"]

LONG_TERM_SEGMENTS = "segments_test_long_term_pred.csv"
DEFAULT_LONG_TERM_FACTOR = 2.5  # configs/eval.yaml long_term_factor: 2 s -> 5 s


def long_term_length(fps: float, horizon_sec: float = 2.0, factor: float = DEFAULT_LONG_TERM_FACTOR) -> int:
    """Predicted frames of a long-term window, exactly as the evaluator computes them:
    ``int(int(horizon_sec * fps) * factor)`` (300 at 60 fps)."""
    return int(int(horizon_sec * fps) * float(factor))


def long_term_rows(test_rows: Sequence[CsvSegment], clip_lengths: Mapping[str, int], obs_length: int,
                   long_pred_length: int) -> list[tuple]:
    """Rows ``(name, init, pred_init, pred_end[, class])`` of the test windows that fit ``obs_length +
    long_pred_length`` frames in their clip (pure; ``pred_end`` inclusive). A class column is written when
    any test row has one (empty for rows without)."""
    if obs_length < 1 or long_pred_length < 1:
        raise ValueError(f"obs_length and long_pred_length must be >= 1, got {obs_length}, {long_pred_length}")
    with_class = any(r.label is not None for r in test_rows)
    out: list[tuple] = []
    for r in test_rows:
        name = r.key[0]
        if name not in clip_lengths:
            raise DataFormatError(f"test CSV row {r.row}: clip {name!r} not in the processed data "
                                  f"(clips: {sorted(clip_lengths)[:10]}...)")
        assert r.init is not None
        end = r.init + obs_length + long_pred_length - 1
        if end >= int(clip_lengths[name]):
            continue
        row: tuple = (name, r.init, r.init + obs_length, end)
        out.append(row + (r.label or "",) if with_class else row)
    return out


def _clip_lengths(npz_path: Path, split: str = "test") -> dict[str, int]:
    from skeleton_diffusion.data.processed import read_processed

    data = read_processed(npz_path)
    clips = data[split] if split in data and isinstance(data[split], dict) else data
    if not all(hasattr(v, "shape") for v in clips.values()):
        raise DataFormatError(f"{npz_path}: expected {{split: {{clip: [T, J, 3]}}}} or {{clip: [T, J, 3]}}")
    return {str(k): int(v.shape[0]) for k, v in clips.items()}


def write_long_term_segments(processed_dir: str | os.PathLike, *, dataset_name: str, fps: float,
                             history_sec: float = 0.5, horizon_sec: float = 2.0,
                             factor: float = DEFAULT_LONG_TERM_FACTOR, annotations_dir: str | os.PathLike | None = None,
                             test_csv: str = "segments_test.csv", npz_path: str | os.PathLike | None = None,
                             force: bool = False) -> dict:
    """Write ``<annotations_dir>/segments_test_long_term_pred.csv`` from the test CSV and the processed npz
    (``data_3d_<dataset_name>.npz`` in ``processed_dir`` unless ``npz_path``). Skipped when present unless
    ``force``. Returns ``{'path', 'written': bool, 'num_segments', 'num_test_segments', 'long_pred_length'}``."""
    processed_dir = Path(processed_dir)
    ann = Path(annotations_dir) if annotations_dir is not None else processed_dir
    path = ann / LONG_TERM_SEGMENTS
    long_pred = long_term_length(fps, horizon_sec, factor)
    result: dict = {"path": path, "written": False, "long_pred_length": long_pred}
    if path.is_file() and not force:
        return result
    rows = read_named_segments(ann / test_csv)
    npz = Path(npz_path) if npz_path is not None else processed_dir / f"data_3d_{dataset_name}.npz"
    out = long_term_rows(rows, _clip_lengths(npz), int(history_sec * fps), long_pred)
    if not out:
        raise DataFormatError(f"no test window of {ann / test_csv} fits {int(history_sec * fps)} + {long_pred} "
                              f"frames in its clip ({npz}); long-term evaluation needs longer test clips")
    write_named_segments(path, out)
    result.update(written=True, num_segments=len(out), num_test_segments=len(rows))
    return result


def missing_long_term_hint(folder: str | os.PathLike, dataset_name: str | None = None) -> str:
    """The command that writes a missing long-term CSV of a generic dataset folder (for error messages)."""
    folder = Path(folder)
    extra = ""
    if not (folder / "dataset_config.yaml").is_file():
        extra = f" --dataset-config configs/dataset/{dataset_name or '<dataset>'}.yaml"
    return (f"'{folder / LONG_TERM_SEGMENTS}' does not exist; write it with `python -m "
            f"skeleton_diffusion.apps.regenerate_side_files {folder} --no-force{extra}` (generic datasets; the "
            "synthetic "
            "builder `python -m skeleton_diffusion.apps.create_synthetic_dataset` writes it too; AMASS: "
            "`python -m skeleton_diffusion.apps.fetch_annotations`)")
