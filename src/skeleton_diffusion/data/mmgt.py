"""Multimodal ground truth (MMGT), spec §5.5, and the ground-truth APD of each MMGT set (``mmapd_GT.csv``).

For test segments ``a, b`` (self included), ``b in MM(a)`` iff the Euclidean distance between their **last
observed poses** (metric space: hip-centred, root dropped, flattened to 3N, metres) is strictly below the
dataset threshold. Distances are the exact pairwise differences (not the ``|a|^2+|b|^2-2ab`` matmul trick), as
``scipy.spatial.distance.pdist``; computed in float32 by default like the official code (``torch.cdist`` with
``donot_use_mm_for_euclid_dist``), or float64 on request. Work is done in blocks so 12,727 segments fit easily.

File ``mmgt_<split>.txt``: a JSON-encoded *string* whose content is the Python repr of
``{segment_idx: {idx, ...}, ...}`` sorted by key (official format; read = ``json.load`` + ``ast.literal_eval``).
"""

from __future__ import annotations

import ast
import csv
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_write

__all__ = [
    "compute_mmgt",
    "write_mmgt",
    "read_mmgt",
    "mmgt_summary",
    "compute_mmgt_apd",
    "write_mmapd_csv",
    "read_mmapd_csv",
]


def compute_mmgt(
    last_obs: np.ndarray | torch.Tensor,
    threshold: float,
    *,
    block_size: int = 2048,
    precision: str = "float32",
    progress: bool = False,
) -> dict[int, set[int]]:
    """MMGT index sets from the last observed poses ``[n, N, 3]`` (or ``[n, 3N]``) in metric space (metres).

    Returns ``{i: {j, ...}}`` for every ``i`` in ``0..n-1`` (each set contains ``i``). Strict ``d < threshold``.
    ``precision``: ``'float32'`` (official) or ``'float64'``.
    """
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
    x = torch.as_tensor(np.asarray(last_obs) if not isinstance(last_obs, torch.Tensor) else last_obs)
    if x.ndim < 2:
        raise ValueError(f"last_obs must be [n, N, 3] or [n, D], got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1).to(getattr(torch, precision))
    n = x.shape[0]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    blocks = list(range(0, n, block_size))
    iterator = blocks
    if progress:
        from tqdm import tqdm

        iterator = tqdm(blocks, desc="MMGT blocks", leave=False)
    for i0 in iterator:
        a = x[i0 : i0 + block_size]
        for j0 in blocks:
            if j0 < i0:
                continue
            b = x[j0 : j0 + block_size]
            d = torch.cdist(a, b, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
            ii, jj = torch.nonzero(d < threshold, as_tuple=True)
            rows.append((ii + i0).numpy())
            cols.append((jj + j0).numpy())
    r = np.concatenate(rows + cols + [np.arange(0)]) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols + rows + [np.arange(0)]) if rows else np.zeros(0, dtype=np.int64)
    order = np.lexsort((c, r))  # symmetric closure, grouped by row
    r, c = r[order], c[order]
    bounds = np.searchsorted(r, np.arange(n + 1))
    return {i: set(c[bounds[i] : bounds[i + 1]].tolist()) for i in range(n)}


def _canonical(mmgt: Mapping[int, Sequence[int] | set[int]]) -> dict[int, set[int]]:
    # same construction as the official writer, so str() gives the same text
    return {int(k): {int(v) for v in sorted(mmgt[k])} for k in sorted(mmgt, key=int)}


def write_mmgt(path: str | os.PathLike, mmgt: Mapping[int, Sequence[int] | set[int]]) -> Path:
    """Write ``mmgt_<split>.txt`` atomically in the official format (JSON string of the Python repr)."""
    path = Path(path)
    text = json.dumps(str(_canonical(mmgt)))
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path


def read_mmgt(path: str | os.PathLike, num_segments: int | None = None) -> dict[int, list[int]]:
    """Read an MMGT file (ours or official) -> ``{segment_idx: sorted list of indices}`` sorted by key.

    Tolerates a plain JSON object (``{"0": [0, 3], ...}``) as well as the official JSON-string-of-repr.
    ``num_segments``: when given, the file must have exactly that many keys ``0..n-1``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotPreparedError(
            f"Multimodal GT file not found: '{path}'. It is written by the dataset creation command, or "
            f"regenerated with `python -m skeleton_diffusion.apps.regenerate_side_files {path.parent}`; "
            "it is only needed for stats_mode=probabilistic."
        )
    try:
        with open(path, encoding="utf-8") as fh:
            content = json.load(fh)
        if isinstance(content, str):
            content = ast.literal_eval(content)
    except (ValueError, SyntaxError) as exc:
        raise DataFormatError(f"{path}: not an MMGT file (JSON string of a dict of sets expected): {exc}") from exc
    if not isinstance(content, dict):
        raise DataFormatError(f"{path}: expected a dict {{segment_idx: {{indices}}}}, found {type(content).__name__}")
    out = {int(k): sorted(int(v) for v in content[k]) for k in sorted(content, key=int)}
    if num_segments is not None and (len(out) != num_segments or (out and max(out) != num_segments - 1)):
        raise DataFormatError(
            f"{path}: MMGT has {len(out)} segments but the dataset split has {num_segments}; the file belongs to "
            "another segment list (rebuild it with force=True)."
        )
    return out


def mmgt_summary(mmgt: Mapping[int, Sequence[int]]) -> dict[str, float]:
    sizes = np.array([len(v) for v in mmgt.values()], dtype=np.float64)
    return {
        "num_segments": int(len(sizes)),
        "mean_size": float(sizes.mean()) if len(sizes) else 0.0,
        "max_size": int(sizes.max()) if len(sizes) else 0,
        "singletons": int((sizes == 1).sum()),
    }


def compute_mmgt_apd(futures_metric: np.ndarray, mmgt: Mapping[int, Sequence[int]]) -> np.ndarray:
    """Ground-truth APD per segment: APD (§6.1) over the futures of its MMGT set; 0 for singletons.

    ``futures_metric``: ``[n, T, N, 3]`` metres. Returns float32 ``[n]``. Pairwise distances in float64.
    """
    from scipy.spatial.distance import pdist

    flat = np.asarray(futures_metric, dtype=np.float64).reshape(len(futures_metric), -1)
    out = np.zeros(len(flat), dtype=np.float32)
    for i in range(len(flat)):
        members = list(mmgt[i])
        if len(members) > 1:
            out[i] = np.float32(pdist(flat[members]).mean())
    return out


def write_mmapd_csv(path: str | os.PathLike, values: Sequence[float]) -> Path:
    """Write ``mmapd_GT.csv`` (``id,gt_APD`` header, one row per test segment), official format."""
    path = Path(path)
    with atomic_write(path, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "gt_APD"])
        for i, v in enumerate(values):
            w.writerow([i, repr(float(v))])
    return path


def read_mmapd_csv(path: str | os.PathLike) -> np.ndarray:
    """Read ``mmapd_GT.csv`` -> float64 ``[n]`` indexed by ``id`` (zeros kept; APDE replaces them by NaN)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotPreparedError(f"mmapd_GT file not found: '{path}'")
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "id" not in rows[0] or "gt_APD" not in rows[0]:
        raise DataFormatError(f"{path}: expected header 'id,gt_APD'")
    ids = np.array([int(r["id"]) for r in rows])
    vals = np.array([float(r["gt_APD"]) for r in rows])
    out = np.zeros(ids.max() + 1)
    out[ids] = vals
    return out
