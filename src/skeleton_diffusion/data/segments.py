"""Windows ("segments") over clips, and the segment CSV files that fix the test/valid windows.

A segment is ``(clip_idx, start, end)`` with ``end`` **inclusive** and ``end - start + 1 = obs + pred``.
Row ``i`` of a CSV is segment index ``i`` (MMGT, ``mmapd_GT.csv`` and APDE rely on that order).

CSV kinds (header in the file; extra columns are ignored):

* ``amass``: ``dataset,file,file_idx,pred_init,pred_end`` -> window ``[pred_init - obs, pred_init + pred - 1]``
  (``pred_end`` is ignored, as officially, so long-term factors other than the file's work).
* ``h36m``: ``subject,action,init,pred_init,pred_end`` (the valid CSV has a leading unnamed index column)
  -> window ``[init, pred_end]``; action names normalised (space -> ``_``, TakingPhoto -> Photo,
  WalkingDog -> WalkDog).
* ``named`` (FreeMan, 3DPW, generic/synthetic/BVH): ``name,init,pred_init,pred_end[,class]`` -> ``[init, pred_end]``.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_write

__all__ = [
    "CsvSegment",
    "generate_segments",
    "generate_segments_array",
    "read_segments_csv",
    "read_amass_segments",
    "read_h36m_segments",
    "read_named_segments",
    "write_named_segments",
    "normalize_h36m_action",
    "h36m_action_class",
    "clip_windows",
]

Segment = tuple[int, int, int]

_REQUIRED = {
    "amass": ("dataset", "file_idx", "pred_init"),
    "h36m": ("subject", "action", "init", "pred_end"),
    "named": ("name", "init", "pred_end"),
}


@dataclass(frozen=True)
class CsvSegment:
    """One CSV row. ``key`` addresses the clip: ``(dataset, file_idx)`` (AMASS), ``(subject, action)`` (H36M,
    action normalised) or ``(name,)``. ``init`` is None for AMASS rows (derived from ``pred_init``)."""

    row: int
    key: tuple
    init: int | None
    pred_init: int | None
    pred_end: int | None
    label: str | None = None

    def window(self, obs_length: int, pred_length: int) -> tuple[int, int]:
        """Inclusive ``(start, end)`` of the window, with the official per-kind semantics."""
        if self.init is None:  # AMASS: pred_end ignored
            assert self.pred_init is not None
            return self.pred_init - obs_length, self.pred_init + pred_length - 1
        assert self.pred_end is not None
        return self.init, self.pred_end


def generate_segments(clip_lengths: Sequence[int], seg_length: int, *, include_last: bool = False) -> list[Segment]:
    """All windows of every clip, clip-major then by start: ``(clip, start, start + seg_length - 1)``.

    Official semantics (``include_last=False``): starts ``0 .. T - seg_length - 1``, i.e. the last possible
    window is excluded (spec §10.13, kept for reproduction). ``include_last=True`` adds it.
    """
    extra = 1 if include_last else 0
    return [
        (c, s, s + seg_length - 1)
        for c, length in enumerate(clip_lengths)
        for s in range(0, int(length) - seg_length + extra)
    ]


def generate_segments_array(clip_lengths: Sequence[int], seg_length: int, *, include_last: bool = False):
    """:func:`generate_segments` as an ``int64 [n, 3]`` array (compact: millions of training windows)."""
    import numpy as np

    lengths = np.asarray(list(clip_lengths), dtype=np.int64)
    counts = np.maximum(0, lengths - seg_length + (1 if include_last else 0))
    total = int(counts.sum())
    clip = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    start = np.arange(total, dtype=np.int64) - np.repeat(offsets, counts)
    return np.stack([clip, start, start + seg_length - 1], axis=1)


def clip_windows(length: int, obs_length: int, pred_length: int, stride: int, first_init: int = 0) -> list[int]:
    """Start frames ``init`` of CSV-style windows ``[init, init+obs+pred-1]`` that fit in a clip of ``length``."""
    seg = obs_length + pred_length
    return list(range(first_init, length - seg + 1, stride))


def read_segments_csv(path: str | os.PathLike, kind: str) -> list[CsvSegment]:
    """Parse a segment CSV of ``kind`` in ``{'amass', 'h36m', 'named'}`` (see module doc), in row order."""
    if kind not in _REQUIRED:
        raise ValueError(f"unknown segment CSV kind {kind!r}; expected one of {sorted(_REQUIRED)}")
    path = Path(path)
    if not path.is_file():
        raise DatasetNotPreparedError(
            f"Segment file not found: '{path}'. Official annotation files are fetched with "
            "`python -m skeleton_diffusion.apps.fetch_annotations`; generic datasets write theirs when created, "
            f"or regenerate them with `python -m skeleton_diffusion.apps.regenerate_side_files {path.parent} "
            "--segments`."
        )
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in _REQUIRED[kind] if c not in header]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {missing} for a {kind} segment file; header found: {header}, "
            f"expected at least {list(_REQUIRED[kind])}"
        )
    out: list[CsvSegment] = []
    for i, rec in enumerate(reader):
        line = i + 2
        try:
            if kind == "amass":
                seg = CsvSegment(
                    row=i,
                    key=(rec["dataset"], int(rec["file_idx"])),
                    init=None,
                    pred_init=int(rec["pred_init"]),
                    pred_end=int(rec["pred_end"]) if rec.get("pred_end") not in (None, "") else None,
                )
            elif kind == "h36m":
                seg = CsvSegment(
                    row=i,
                    key=(rec["subject"], normalize_h36m_action(rec["action"])),
                    init=int(rec["init"]),
                    pred_init=int(rec["pred_init"]) if rec.get("pred_init") not in (None, "") else None,
                    pred_end=int(rec["pred_end"]),
                )
            else:
                label = rec.get("class")
                seg = CsvSegment(
                    row=i,
                    key=(rec["name"],),
                    init=int(rec["init"]),
                    pred_init=int(rec["pred_init"]) if rec.get("pred_init") not in (None, "") else None,
                    pred_end=int(rec["pred_end"]),
                    label=label if label not in (None, "") else None,
                )
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"{path}, line {line}: cannot parse row {rec} ({exc})") from exc
        out.append(seg)
    return out


def read_amass_segments(path: str | os.PathLike) -> list[CsvSegment]:
    return read_segments_csv(path, "amass")


def read_h36m_segments(path: str | os.PathLike) -> list[CsvSegment]:
    return read_segments_csv(path, "h36m")


def read_named_segments(path: str | os.PathLike) -> list[CsvSegment]:
    return read_segments_csv(path, "named")


def write_named_segments(
    path: str | os.PathLike,
    rows: Iterable[tuple[str, int, int, int] | tuple[str, int, int, int, str]],
) -> Path:
    """Write ``name,init,pred_init,pred_end[,class]`` rows (inclusive ``pred_end``) atomically."""
    rows = list(rows)
    with_class = bool(rows) and len(rows[0]) == 5
    path = Path(path)
    with atomic_write(path, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", "init", "pred_init", "pred_end"] + (["class"] if with_class else []))
        for r in rows:
            w.writerow(list(r))
    return path


def normalize_h36m_action(action: str) -> str:
    """Official H36M action-name normalisation: TakingPhoto->Photo, WalkingDog->WalkDog, spaces -> ``_``."""
    return action.replace("TakingPhoto", "Photo").replace("WalkingDog", "WalkDog").replace(" ", "_")


def h36m_action_class(action: str) -> str:
    """Class of an H36M action name: the part before the first space or underscore (``Sitting_1`` -> ``Sitting``)."""
    return action.split(" ")[0].split("_")[0]


def window_rows(
    clips: Iterable[tuple[str, int]], obs: int, pred: int, stride: int, start: int = 0
) -> list[tuple[str, int, int, int]]:
    """Rows ``(name, init, pred_init, pred_end)`` for every window of ``obs+pred`` frames that fits (see module doc)."""
    if obs <= 0 or pred <= 0 or stride <= 0:
        raise ValueError(f"obs, pred and stride must be positive, got {obs}, {pred}, {stride}")
    rows = []
    for name, length in clips:
        init = start
        while init + obs + pred <= length:
            rows.append((name, init, init + obs, init + obs + pred - 1))
            init += stride
    return rows


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Atomic CSV write (``\\n`` line endings, header first)."""
    path = Path(path)
    with atomic_write(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows (dicts) of a CSV; an unnamed leading pandas index column is kept under key ''."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows
