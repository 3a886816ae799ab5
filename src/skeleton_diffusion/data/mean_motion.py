"""Per-class reference speeds for CMD: ``mean_motion_test.txt`` (spec §2.6).

For each test segment ``b`` with metric-space future ``Y_b [T, N, 3]``:
``v_b = mean_{t, j} ||Y_b[t+1, j] - Y_b[t, j]||`` (metres / frame). Per class ``c``: ``ref_c = mean_{b in c} v_b``
and ``freq_c = |c| / #segments``. File: no header, one ``<class>,<ref_c>,<freq_c>`` line per class in the
dataset's ``idx_to_class`` order. Accumulation follows the official code (float32 sums per batch of 128).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_write

__all__ = ["segment_mean_speed", "compute_mean_motion", "write_mean_motion", "read_mean_motion"]


def segment_mean_speed(futures_metric: np.ndarray) -> np.ndarray:
    """``[..., T, N, 3]`` metres -> ``[...]`` mean per-frame joint displacement (float32 like the inputs)."""
    f = np.asarray(futures_metric)
    disp = np.linalg.norm(f[..., 1:, :, :] - f[..., :-1, :, :], axis=-1)  # [..., T-1, N]
    return disp.mean(axis=-1).mean(axis=-1)


def compute_mean_motion(
    futures_metric: Iterable[np.ndarray],
    class_names: Sequence[str],
    idx_to_class: Sequence[str],
    *,
    batch_size: int = 128,
) -> tuple[list[float], list[float]]:
    """Reference speed and frequency per class (in ``idx_to_class`` order).

    ``futures_metric``: one ``[T, N, 3]`` float32 array per segment, in segment order (an iterable, so callers
    can stream). ``class_names``: the class of each segment. Classes without segments get ``nan`` / 0.
    """
    cls_index = {c: i for i, c in enumerate(idx_to_class)}
    k = len(idx_to_class)
    sums = np.zeros(k, dtype=np.float32)
    counts = np.zeros(k, dtype=np.int64)
    batch: list[np.ndarray] = []
    batch_cls: list[int] = []
    seen = 0

    def flush() -> None:
        if not batch:
            return
        v = segment_mean_speed(np.stack(batch))  # float32 [B]
        c = np.asarray(batch_cls)
        for ci in range(k):
            m = c == ci
            sums[ci] = np.float32(sums[ci] + v[m].sum(dtype=np.float32))
            counts[ci] += int(m.sum())
        batch.clear()
        batch_cls.clear()

    for fut, name in zip(futures_metric, class_names):
        if name not in cls_index:
            raise DataFormatError(f"segment {seen} has class {name!r} which is not in idx_to_class {list(idx_to_class)}")
        batch.append(np.asarray(fut))
        batch_cls.append(cls_index[name])
        seen += 1
        if len(batch) == batch_size:
            flush()
    flush()
    if seen != len(class_names):
        raise DataFormatError(f"got {seen} futures for {len(class_names)} class labels")
    total = counts.sum()
    # float32 sum / Python int, as officially (the quotient stays float32 under NumPy 2 promotion rules)
    refs = [float(sums[i] / int(counts[i])) if counts[i] else float("nan") for i in range(k)]
    freqs = [float(counts[i] / total) if total else 0.0 for i in range(k)]
    return refs, freqs


def write_mean_motion(
    path: str | os.PathLike, idx_to_class: Sequence[str], refs: Sequence[float], freqs: Sequence[float]
) -> Path:
    """Write ``<class>,<ref>,<freq>`` lines (no header, no trailing newline, as officially), atomically."""
    if not (len(idx_to_class) == len(refs) == len(freqs)):
        raise ValueError("idx_to_class, refs and freqs must have the same length")
    for c in idx_to_class:
        if "," in str(c):
            raise DataFormatError(f"class name {c!r} contains a comma; it cannot be written to a mean-motion file")
    path = Path(path)
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(f"{c},{r},{f}" for c, r, f in zip(idx_to_class, refs, freqs)))
    return path


def read_mean_motion(path: str | os.PathLike, idx_to_class: Sequence[str] | None = None) -> dict[str, tuple[float, float]] | list[float]:
    """Read a mean-motion file.

    Without ``idx_to_class``: ``{class: (ref, freq)}`` in file order. With it: the list of ``ref`` values in that
    order (what CMD needs); a class missing from the file raises :class:`DataFormatError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotPreparedError(
            f"Mean-motion file not found: '{path}'. It is written by the dataset creation command "
            "(skeleton_diffusion.data.side_files.build_side_files)."
        )
    table: dict[str, tuple[float, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(",", 2)
            if len(parts) != 3:
                raise DataFormatError(f"{path}, line {n}: expected '<class>,<ref>,<freq>', found {line!r}")
            try:
                table[parts[0]] = (float(parts[1]), float(parts[2]))
            except ValueError as exc:
                raise DataFormatError(f"{path}, line {n}: non-numeric value in {line!r}") from exc
    if idx_to_class is None:
        return table
    missing = [c for c in idx_to_class if c not in table]
    if missing:
        raise DataFormatError(
            f"{path}: classes {missing} of the dataset are missing from the mean-motion file (has {list(table)}); "
            "rebuild it for this segment list."
        )
    return [table[c][0] for c in idx_to_class]
