"""HumanML3D loader (text-to-motion): the released folder layout, read as the official data loaders do.

Folder (``configs/dataset/humanml3d.yaml: precomputed_folder``, e.g. ``datasets/raw/HumanML3D``)::

    new_joint_vecs/<id>.npy   float [T, 263] features (skeleton_diffusion.representations.humanml3d), 20 fps
    new_joints/<id>.npy       float [T, 22, 3] positions (optional; recovered from the features when absent)
    texts/<id>.txt            one caption per line: ``caption#tok/POS tok/POS ...#from#to`` (seconds; 0#0 = all)
    Mean.npy, Std.npy         [263] normalisation statistics
    train.txt, val.txt, test.txt (train_val.txt, all.txt)   one id per line

Official rules kept: motions shorter than ``min_frames`` (40) or of ``max_len`` (200) frames or more are
skipped; a caption with a ``from``/``to`` interval describes the sub-clip ``[int(from*20), int(to*20))`` and
becomes its own entry (kept when that sub-clip passes the same length rule); a ``from``/``to`` of ``nan``
reads as 0. Positions for the generation dataset come from :func:`recover_from_ric` (Y up, frame 0 faces +Z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.representations.humanml3d import feature_dim

__all__ = ["HUMANML3D_FPS", "TextEntry", "MotionEntry", "parse_texts_file", "read_split", "load_humanml3d_split",
           "load_mean_std", "normalize_features"]  # fmt: skip

HUMANML3D_FPS = 20


@dataclass(frozen=True)
class TextEntry:
    """One line of a ``texts/<id>.txt`` file."""

    caption: str
    tokens: tuple[str, ...]  # "word/POS"
    start_s: float
    end_s: float


@dataclass
class MotionEntry:
    """A (sub-)clip with its captions: ``features [T, 263]``."""

    name: str
    features: np.ndarray
    texts: list[TextEntry] = field(default_factory=list)


def _tag(value: str, path: Path, line_no: int) -> float:
    try:
        v = float(value)
    except ValueError as exc:
        raise DataFormatError(f"{path}:{line_no}: from/to '{value}' is not a number (expected "
                              "caption#tokens#from#to).") from exc  # fmt: skip
    return 0.0 if math.isnan(v) else v


def parse_texts_file(path: str | Path) -> list[TextEntry]:
    """Parse ``caption#tokens#from#to`` lines (blank lines ignored)."""
    path = Path(path)
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("#")
        if len(parts) != 4:
            raise DataFormatError(f"{path}:{i}: expected 4 '#'-separated fields caption#tokens#from#to; got "
                                  f"{len(parts)}.")  # fmt: skip
        caption, tokens, f, t = parts
        out.append(TextEntry(caption.strip(), tuple(tokens.split()), _tag(f, path, i), _tag(t, path, i)))
    return out


def read_split(folder: str | Path, split: str) -> list[str]:
    """Ids listed in ``<folder>/<split>.txt``."""
    path = Path(folder) / f"{split}.txt"
    if not path.is_file():
        raise DatasetNotPreparedError(
            f"HumanML3D split file '{path}' not found: put the HumanML3D release (new_joint_vecs/, texts/, "
            f"Mean.npy, Std.npy, train/val/test.txt) in '{Path(folder)}' (configs/dataset/humanml3d.yaml: "
            "precomputed_folder).")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def load_mean_std(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``Mean.npy`` and ``Std.npy`` of the folder (``[263]`` each)."""
    folder = Path(folder)
    out = []
    for name in ("Mean.npy", "Std.npy"):
        p = folder / name
        if not p.is_file():
            raise DatasetNotPreparedError(f"'{p}' not found (HumanML3D normalisation statistics).")
        out.append(np.load(p).astype(np.float32))
    if out[0].shape != out[1].shape or out[0].ndim != 1:
        raise DataFormatError(f"Mean/Std in '{folder}' must be 1-D of equal size; got {out[0].shape}, {out[1].shape}.")
    return out[0], out[1]


def normalize_features(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(features - Mean) / Std``."""
    return (features - mean) / std


def load_humanml3d_split(
    folder: str | Path, split: str, *, min_frames: int = 40, max_len: int = 200, joints_num: int = 22
) -> list[MotionEntry]:
    """Entries of a split following the official rules (see module doc), in split-file order (sub-clips after
    their clip)."""
    folder = Path(folder)
    dim = feature_dim(joints_num)
    entries: list[MotionEntry] = []
    for name in read_split(folder, split):
        vec_path, txt_path = folder / "new_joint_vecs" / f"{name}.npy", folder / "texts" / f"{name}.txt"
        if not vec_path.is_file() or not txt_path.is_file():
            continue  # the official loaders skip ids whose files are missing
        motion = np.load(vec_path)
        if motion.ndim != 2 or motion.shape[1] != dim:
            raise DataFormatError(f"'{vec_path}' has shape {motion.shape}; expected [T, {dim}].")
        if not (min_frames <= len(motion) < max_len):
            continue
        whole = MotionEntry(name, motion.astype(np.float32))
        subs = []
        for k, text in enumerate(parse_texts_file(txt_path)):
            if text.start_s == 0.0 and text.end_s == 0.0:
                whole.texts.append(text)
                continue
            sub = motion[int(text.start_s * HUMANML3D_FPS) : int(text.end_s * HUMANML3D_FPS)]
            if min_frames <= len(sub) < max_len:
                subs.append(MotionEntry(f"{name}_{k}", sub.astype(np.float32), [text]))
        if whole.texts:
            entries.append(whole)
        entries.extend(subs)
    return entries
