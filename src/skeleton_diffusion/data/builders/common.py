"""Shared pieces of the raw -> processed dataset builders.

* :class:`BuildSummary`: what every builder reports at the end (sequences read, skipped with reasons, frames,
  windows per split, and the check of the test windows against the annotation CSV).
* Writing the processed ``data_3d_<name>.npz`` (official layout, atomic) and the side files
  (``mean_motion_test.txt``, ``mmgt_test.txt``) through the data layer's API.
* Window generation for ``segments_<split>.csv`` (``name,init,pred_init,pred_end``; windows start at frame 0,
  fixed stride, every window that fits) and window checks against CSVs.

Window-generation procedure (version ``WINDOWS_VERSION``): for each clip in the given order and each
``init = 0, stride, 2*stride, ...`` with ``init + obs + pred <= T`` write ``init, init+obs, init+obs+pred-1``
(``pred_end`` inclusive). This reproduces the shipped H36M (stride 25), FreeMan (stride 15) and 3DPW (stride 30)
CSVs given the clip lengths and clip order; AMASS's test CSV follows a different rule (see ``amass.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from skeleton_diffusion.data.segments import read_csv
from skeleton_diffusion.utils.io import atomic_path

log = logging.getLogger("skeleton_diffusion.data.builders")

WINDOWS_VERSION = 1
GENERIC_CSV_HEADER = ("name", "init", "pred_init", "pred_end")


@dataclass
class BuildSummary:
    """End-of-build report. ``windows`` maps split -> number of windows; ``csv_checks`` split -> message."""

    dataset: str
    output: str = ""
    sequences_read: int = 0
    clips_written: int = 0
    frames: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)
    csv_checks: dict[str, str] = field(default_factory=dict)
    csv_ok: bool = True
    notes: list[str] = field(default_factory=list)
    reused: bool = False

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append((item, reason))
        log.warning("skipping %s: %s", item, reason)

    def skip_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, reason in self.skipped:
            key = reason.split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out

    def format(self) -> str:
        lines = [f"== {self.dataset}: build summary =="]
        lines.append(f"output: {self.output}" + ("  (already present, reused)" if self.reused else ""))
        lines.append(f"sequences read: {self.sequences_read}; clips written: {self.clips_written}; frames: {self.frames}")
        lines.append(f"skipped: {len(self.skipped)}" + (f" {self.skip_reasons()}" if self.skipped else ""))
        for item, reason in self.skipped[:20]:
            lines.append(f"  - {item}: {reason}")
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more")
        for split, n in self.windows.items():
            lines.append(f"windows[{split}]: {n}")
        for split, msg in self.csv_checks.items():
            lines.append(f"annotation check [{split}]: {msg}")
        lines.extend(self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- processed files
def write_processed(path: str | Path, positions_3d: Mapping[Any, Any], skeleton: str | None = None) -> Path:
    """Write ``positions_3d`` as ``data_3d_*.npz`` (single pickled-dict key ``positions_3d``), atomically.

    ``skeleton`` (a built-in skeleton name): its joint names are stored beside the data (``joint_names``; official
    loaders ignore the extra key), so the file carries its joint order."""
    path = Path(path)
    try:
        from skeleton_diffusion.data.processed import save_processed  # the data layer's writer (validates the layout)
    except ImportError:  # pragma: no cover - only while the data layer is incomplete
        save_processed = None
    if save_processed is not None:
        joint_names = None
        if skeleton is not None:
            from skeleton_diffusion.skeletons.lookup import get_skeleton

            joint_names = list(get_skeleton(skeleton).joint_names)
        save_processed(path, dict(positions_3d), joint_names=joint_names)
    else:  # pragma: no cover
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, positions_3d=dict(positions_3d))
    return path


def build_side_files_if_possible(
    dataset_name: str,
    processed_dir: str | Path,
    annotations_dir: str | Path,
    summary: BuildSummary,
    *,
    force: bool = False,
    dataset_cfg: Any = None,
) -> dict | None:
    """Build ``mean_motion_test.txt`` and ``mmgt_test.txt`` via the data layer; note in ``summary`` what happened."""
    from skeleton_diffusion.data.side_files import build_side_files

    result = build_side_files(dataset_name, processed_dir, annotations_dir, force=force, dataset_cfg=dataset_cfg)
    written = [Path(p).name for p in result.get("written", [])]
    kept = [Path(p).name for p in result.get("skipped", [])]
    line = f"side files: written {written or 'none'}, already present {kept or 'none'}"
    if "num_segments" in result:
        line += f"; {result['num_segments']} test segments"
    if "mmgt_mean_size" in result:
        line += f"; MMGT mean set size {result['mmgt_mean_size']:.2f}, singletons {result['mmgt_singletons']}"
    summary.notes.append(line)
    mmapd = Path(annotations_dir) / "mmapd_GT.csv"
    mmgt_file = Path(processed_dir) / "mmgt_test.txt"
    if mmapd.is_file() and mmgt_file.is_file():
        summary.notes.append(check_mmgt_singletons(mmgt_file, mmapd))
    return result


def check_mmgt_singletons(mmgt_path: str | Path, mmapd_path: str | Path) -> str:
    """Compare the number of singleton MMGT sets with the zeros of the shipped ``mmapd_GT.csv`` (spec §10.11).

    A zero ground-truth APD means the segment's MMGT set holds only itself, so both counts should agree
    (AMASS 2 643, H36M 73 with the official data); a difference hints at different processed data.
    """
    from skeleton_diffusion.data.mmgt import read_mmgt, mmgt_summary

    singletons = mmgt_summary(read_mmgt(mmgt_path))["singletons"]
    _, rows = read_csv(mmapd_path)
    zeros = sum(1 for r in rows if float(r["gt_APD"]) == 0.0)
    verdict = "match" if singletons == zeros else "DIFFER"
    return f"MMGT singletons {singletons} vs zero rows of {Path(mmapd_path).name} {zeros}: {verdict}"


# --------------------------------------------------------------------------------------------- windows / CSVs
def official_train_window_count(lengths: Iterable[int], window: int) -> int:
    """Number of stride-1 training windows the official loader makes: ``max(0, T - window)`` per clip (§5.1)."""
    return int(sum(max(0, int(t) - window) for t in lengths))


def check_csv_windows(
    csv_path: str | Path,
    length_of: Callable[[dict[str, str]], int | None],
    first_frame: Callable[[dict[str, str]], int],
    last_frame: Callable[[dict[str, str]], int],
    describe: Callable[[dict[str, str]], str],
) -> tuple[int, int, list[str]]:
    """Check that every CSV window addresses an existing clip and fits inside it.

    Returns ``(n_rows, n_ok, problems)``; ``length_of`` returns the clip length or None when the clip is missing.
    """
    _, rows = read_csv(csv_path)
    problems: list[str] = []
    n_ok = 0
    for i, row in enumerate(rows):
        length = length_of(row)
        if length is None:
            problems.append(f"row {i}: clip {describe(row)} not in the processed data")
            continue
        a, b = first_frame(row), last_frame(row)
        if a < 0 or b >= length:
            problems.append(f"row {i}: window [{a}, {b}] of {describe(row)} exceeds the clip length {length}")
            continue
        n_ok += 1
    return len(rows), n_ok, problems


def official_file_note(csv_path: str | Path | None) -> str:
    """`` (official file, sha256 verified)`` when ``csv_path`` is byte-identical to a shipped annotation file."""
    if csv_path is None or not Path(csv_path).is_file():
        return ""
    from skeleton_diffusion.data.annotations import ANNOTATION_FILES

    digest = sha256_file(csv_path)
    for rel, (sha, _) in ANNOTATION_FILES.items():
        if sha == digest:
            return f" (official {rel}, sha256 verified)"
    return " (not an official annotation file)"


def record_csv_check(
    summary: BuildSummary, split: str, result: tuple[int, int, list[str]], csv_path: str | Path | None = None
) -> None:
    n_rows, n_ok, problems = result
    if problems:
        summary.csv_ok = False
        summary.csv_checks[split] = (
            f"MISMATCH: {n_ok}/{n_rows} CSV windows valid; first problems: " + "; ".join(problems[:5])
        )
        log.error("annotation CSV check failed for %s: %s", split, summary.csv_checks[split])
    else:
        summary.csv_checks[split] = (f"OK: all {n_rows} CSV windows address existing clips and fit"
                                     + official_file_note(csv_path))
    summary.windows[split] = n_ok


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def resolve_device(gpu: bool) -> str:
    """``--gpu``: CUDA when available, otherwise CPU with a warning (never a crash)."""
    if not gpu:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    log.warning("--gpu given but CUDA is not available; running on CPU")
    return "cpu"


def setup_cli_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")


def resample(positions: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear resampling of ``[F, J, 3]`` to ``dst_fps`` at times ``k/dst_fps`` within the clip.

    Interpolating positions shortens every rotating limb on the in-between frames; for skeleton data use
    :func:`resample_keep_bones` (positions) or ``bvh_forward_kinematics(motion, fps)`` (BVH rotations)."""
    from skeleton_diffusion.skeletons.formats.bvh import resample_weights

    i0, i1, w = resample_weights(positions.shape[0], src_fps, dst_fps)
    w = w[:, None, None]
    return (1 - w) * positions[i0] + w * positions[i1]


def resample_keep_bones(positions: np.ndarray, parents: Sequence[int], src_fps: float, dst_fps: float) -> np.ndarray:
    """Resample ``[F, J, 3]`` joint positions to ``dst_fps`` keeping bone lengths (``parents[j]``, -1 = root).

    Joint positions are interpolated linearly, then, parents before children, each bone is given back its length
    (interpolated linearly between the two source frames, so a constant bone length stays constant to float
    precision) along the interpolated bone direction."""
    from skeleton_diffusion.skeletons.formats.bvh import resample_weights

    i0, i1, w = resample_weights(positions.shape[0], src_fps, dst_fps)
    x = np.asarray(positions, dtype=np.float64)
    wb = w[:, None, None]
    lerp = (1 - wb) * x[i0] + wb * x[i1]
    out = lerp.copy()
    order = sorted(range(len(parents)), key=lambda j: _depth(parents, j))
    for j in order:
        p = parents[j]
        if p < 0:
            continue
        src_len = np.linalg.norm(x[:, j] - x[:, p], axis=-1)
        length = (1 - w) * src_len[i0] + w * src_len[i1]
        d = lerp[:, j] - lerp[:, p]
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        # a bone that folds through zero length mid-interpolation keeps the source frame's direction
        fallback = np.where(w[:, None] < 0.5, x[i0, j] - x[i0, p], x[i1, j] - x[i1, p])
        fb_norm = np.linalg.norm(fallback, axis=-1, keepdims=True)
        unit = np.where(norm > 1e-9, d / np.maximum(norm, 1e-12), fallback / np.maximum(fb_norm, 1e-12))
        out[:, j] = out[:, p] + unit * length[:, None]
    return out.astype(positions.dtype, copy=False)


def _depth(parents: Sequence[int], j: int) -> int:
    d = 0
    while parents[j] >= 0:
        j, d = parents[j], d + 1
        if d > len(parents):
            raise ValueError(f"cycle in the parents list at joint {j}")
    return d


def split_clips(names: Sequence[str], lengths: Mapping[str, int], mode: str) -> dict[str, dict[str, tuple[int, int]]]:
    """``{split: {clip: (start, end)}}`` frame ranges per split (see module doc)."""
    names = sorted(names)
    if mode == "auto":
        mode = "time" if len(names) < 10 else "clips"
    splits: dict[str, dict[str, tuple[int, int]]] = {"train": {}, "valid": {}, "test": {}}
    if mode == "test":
        splits["test"] = {n: (0, lengths[n]) for n in names}
    elif mode == "time":
        for n in names:
            t = lengths[n]
            a, b = int(round(0.70 * t)), int(round(0.85 * t))
            splits["train"][n], splits["valid"][n], splits["test"][n] = (0, a), (a, b), (b, t)
    elif mode == "clips":
        n_test = max(1, int(round(0.1 * len(names))))
        n_valid = int(round(0.1 * len(names))) if len(names) > 2 else 0
        # every 10th clip (by sorted name) to test, the next ones to valid: deterministic and spread out
        order = sorted(range(len(names)), key=lambda i: (i % 10, i))
        test_idx, valid_idx = set(order[:n_test]), set(order[n_test : n_test + n_valid])
        for i, n in enumerate(names):
            split = "test" if i in test_idx else "valid" if i in valid_idx else "train"
            splits[split][n] = (0, lengths[n])
    else:
        raise ValueError(f"split_mode must be auto, clips, time or test; got {mode!r}")
    return splits


# ------------------------------------------------------------------------------------------ degenerate bones
DEGENERATE_BONE_M = 1e-4  # 0.1 mm: no real bone is that short; helper joints that sit on their parent are ~0


def degenerate_joints(clips: Iterable[np.ndarray], parents: Sequence[int], tol: float = DEGENERATE_BONE_M) -> list[int]:
    """Non-root joints whose bone to their parent is shorter than ``tol`` metres in every frame of every clip
    (``[T, J, 3]`` metres): a zero-length bone, which would make every limb-length metric divide by zero."""
    longest = np.zeros(len(parents))
    for arr in clips:
        for j, p in enumerate(parents):
            if p >= 0 and len(arr):
                longest[j] = max(longest[j], float(np.linalg.norm(arr[:, j] - arr[:, p], axis=-1).max()))
    return [j for j, p in enumerate(parents) if p >= 0 and longest[j] < tol]


def handle_degenerate(
    clips: Mapping[str, np.ndarray], names: Sequence[str], parents: Sequence[int], summary: BuildSummary,
    *, drop: bool, source: str,
) -> tuple[list[int], list[int]]:
    """Find zero-length bones; with ``drop`` return ``(kept joint indices, new parents)`` without the duplicate
    joints (children re-linked to the kept parent, a note in ``summary``), else refuse with one paragraph."""
    from skeleton_diffusion.skeletons.hierarchy import subset_hierarchy
    from skeleton_diffusion.utils.errors import DataFormatError

    bad = degenerate_joints(clips.values(), parents)
    if not bad:
        return list(range(len(names))), list(parents)
    pairs = ", ".join(f"{names[j]} (on {names[parents[j]]})" for j in bad)
    if not drop:
        raise DataFormatError(
            f"{source}: {len(bad)} joint(s) coincide with their parent in every frame (bone shorter than "
            f"{DEGENERATE_BONE_M * 1000:g} mm): {pairs}. A zero-length bone makes the limb-length metrics divide "
            "by zero; rebuild with --drop-degenerate (the default) to drop these joints, or choose a joint subset")
    keep_names = [n for j, n in enumerate(names) if j not in set(bad)]
    kept, new_parents = subset_hierarchy(names, parents, keep_names, source)
    summary.notes.append(f"degenerate bones: dropped {len(bad)} joint(s) that coincide with their parent in every "
                         f"frame: {pairs} ({len(kept)} joints kept; --no-drop-degenerate refuses instead)")
    return kept, new_parents


# ---------------------------------------------------------------------------------------- atomic dataset folders
@contextmanager
def staged_dataset_dir(final: str | Path) -> Iterator[Path]:
    """Build a dataset folder atomically: yield a fresh temporary folder beside ``final``; when the block ends
    without error it replaces ``final`` (an old folder is moved aside, then deleted), so no stale side file of an
    earlier build survives a ``--force`` rebuild; on error the temporary folder is removed and ``final`` is kept."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def check_windows_nonempty(summary: BuildSummary, positions: Mapping[str, Mapping[str, np.ndarray]], window: int,
                           source: str) -> None:
    """Refuse (one paragraph) when the train or test split holds clips but not one window of ``window`` frames."""
    from skeleton_diffusion.utils.errors import DataFormatError

    for split in ("train", "test"):
        clips = positions.get(split, {})
        if clips and summary.windows.get(split, 0) == 0:
            lengths = ", ".join(f"{c}: {len(a)}" for c, a in list(clips.items())[:8])
            raise DataFormatError(
                f"{source}: the {split} split has no window: every clip is shorter than one window of {window} "
                f"frames (observation + prediction) after the split ({lengths}{', ...' if len(clips) > 8 else ''} "
                "frames). Give longer clips, a shorter --obs-seconds/--pred-seconds, or --split-mode clips/test "
                "(time splits cut every clip into 70/15/15 %); nothing was written")
