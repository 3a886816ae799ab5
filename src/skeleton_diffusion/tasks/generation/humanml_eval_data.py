"""The HumanML3D evaluation loader of MDM (``Text2MotionDatasetV2`` in ``hml_mode`` ``gt`` / ``eval``), as data
pieces: caption lines, the split reader, the official eval crop, renormalisation and the collate order.

Folder (the official HumanML3D layout): ``<root>/{train,val,test}.txt`` (motion ids), ``new_joint_vecs/<id>.npy``
``[L, 263]`` (KIT: 251), ``texts/<id>.txt`` (lines ``caption#word/POS ...#from#to``, seconds), ``Mean.npy`` /
``Std.npy`` (the dataset statistics a generator normalises with). The evaluator's own statistics are the
``t2m_mean.npy`` / ``t2m_std.npy`` of MDM's ``dataset/`` folder (``kit_mean.npy`` / ``kit_std.npy``).

Reading (official filter): a motion is kept if ``min_len <= L < 200`` (40 frames HumanML3D, 24 KIT); a caption
with ``from``/``to`` not both 0 is a separate item cut at ``int(from*20):int(to*20)`` with the same length
filter. Items are sorted by length (stable). Each ``__getitem__`` draws a caption (``random.choice``), the
1-in-3 shortening coin (``np.random.choice(['single', 'single', 'double'])``) and the crop offset
(``random.randint(0, L - m_length)``); :func:`official_crop` takes both generators explicitly.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from skeleton_diffusion.utils.errors import DataFormatError, FileAccessError, InputError

__all__ = [
    "Caption",
    "HumanML3DItem",
    "parse_caption_line",
    "read_humanml3d_split",
    "official_eval_length",
    "official_crop",
    "renormalize_for_evaluator",
    "collate_order",
    "length_sort_order",
]


@dataclass(frozen=True)
class Caption:
    """One ``texts/*.txt`` line: caption, ``word/POS`` tokens and the segment ``[start, end)`` in seconds."""

    caption: str
    tokens: tuple[str, ...]
    start: float = 0.0
    end: float = 0.0


@dataclass
class HumanML3DItem:
    """An eval item: motion ``[L, F]`` (raw features) and its captions."""

    name: str
    motion: np.ndarray
    captions: list[Caption] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.motion.shape[0])


def parse_caption_line(line: str, source: str = "<line>") -> Caption:
    """``caption#w/P w/P ...#from#to`` -> :class:`Caption` (NaN times read as 0, as officially)."""
    parts = line.strip().split("#")
    if len(parts) < 4:
        raise DataFormatError(f"{source}: caption line {line.strip()!r} is not 'caption#tokens#from#to'.")
    try:
        start, end = float(parts[2]), float(parts[3])
    except ValueError as exc:
        raise DataFormatError(f"{source}: times of {line.strip()!r} are not numbers.") from exc
    start, end = (0.0 if np.isnan(start) else start), (0.0 if np.isnan(end) else end)
    return Caption(parts[0], tuple(parts[1].split(" ")), start, end)


def read_humanml3d_split(
    root: str | Path, split: str = "test", *, min_len: int = 40, max_len: int = 200, fps: int = 20,
    rng: _random.Random | None = None,
) -> list[HumanML3DItem]:  # fmt: skip
    """Items of ``<root>/<split>.txt`` sorted by motion length, as ``Text2MotionDatasetV2.__init__`` builds them.
    ``rng`` (a ``random.Random``) draws the letter prefix of segment items (officially the global ``random``)."""
    root = Path(root)
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        raise FileAccessError(f"split file '{split_file}' not found; expected the HumanML3D folder layout "
                              "(<root>/{train,val,test}.txt, new_joint_vecs/, texts/).")  # fmt: skip
    rng = rng or _random.Random(0)
    items: dict[str, HumanML3DItem] = {}
    order: list[tuple[str, int]] = []
    for name in (ln.strip() for ln in split_file.read_text().splitlines()):
        if not name:
            continue
        motion_path, text_path = root / "new_joint_vecs" / f"{name}.npy", root / "texts" / f"{name}.txt"
        if not motion_path.is_file() or not text_path.is_file():
            continue  # the official reader skips ids without files
        motion = np.load(motion_path, allow_pickle=False)
        if motion.ndim != 2:
            raise DataFormatError(f"'{motion_path}' must be [L, features]; got {motion.shape}.")
        if not min_len <= len(motion) < max_len:
            continue
        whole: list[Caption] = []
        for line in text_path.read_text().splitlines():
            if not line.strip():
                continue
            cap = parse_caption_line(line, str(text_path))
            if cap.start == 0.0 and cap.end == 0.0:
                whole.append(cap)
                continue
            seg = motion[int(cap.start * fps) : int(cap.end * fps)]
            if not min_len <= len(seg) < max_len:
                continue
            new = f"{rng.choice('ABCDEFGHIJKLMNOPQRSTUVW')}_{name}"
            while new in items:
                new = f"{rng.choice('ABCDEFGHIJKLMNOPQRSTUVW')}_{name}"
            items[new] = HumanML3DItem(new, seg, [cap])
            order.append((new, len(seg)))
        if whole:
            items[name] = HumanML3DItem(name, motion, whole)
            order.append((name, len(motion)))
    if not order:
        raise DataFormatError(f"'{root}' split {split!r}: no motion with {min_len} <= frames < {max_len} and a "
                              "caption file; check new_joint_vecs/ and texts/.")  # fmt: skip
    return [items[n] for n, _ in sorted(order, key=lambda x: x[1])]


def official_eval_length(length: int, double: bool, unit_length: int = 4) -> int:
    """The eval loader's crop length: ``(L // u) * u``, or ``(L // u - 1) * u`` when the 1-in-3 coin said double."""
    length, unit_length = int(length), int(unit_length)
    if unit_length < 1 or length < unit_length * (2 if double else 1):
        raise InputError(f"cannot crop a motion of {length} frames to units of {unit_length} (double={double}).")
    return (length // unit_length - (1 if double else 0)) * unit_length


def official_crop(
    motion: np.ndarray, np_rng: Any, py_rng: _random.Random, *, unit_length: int = 4,
) -> tuple[np.ndarray, int, bool, int]:  # fmt: skip
    """Official random crop: coin from ``np_rng.choice(['single', 'single', 'double'])`` (only if unit_length < 10),
    offset from ``py_rng.randint(0, L - m_length)`` -> (crop ``[m_length, F]``, m_length, double, offset)."""
    double = bool(unit_length < 10 and np_rng.choice(["single", "single", "double"]) == "double")
    m_length = official_eval_length(len(motion), double, unit_length)
    offset = py_rng.randint(0, len(motion) - m_length)
    return motion[offset : offset + m_length], m_length, double, offset


def renormalize_for_evaluator(motion: Any, data_mean: Any, data_std: Any, eval_mean: Any, eval_std: Any) -> Any:
    """A generation normalised with the dataset's ``Mean``/``Std`` -> normalised with the evaluator's
    ``t2m_mean``/``t2m_std`` (official ``eval`` mode): ``((motion * data_std + data_mean) - eval_mean) / eval_std``.
    ``motion [..., F]`` (torch or numpy; the result has its type), stats ``[F]``."""
    stats = [data_mean, data_std, eval_mean, eval_std]
    feat = motion.shape[-1]
    bad = [n for n, s in zip(("data_mean", "data_std", "eval_mean", "eval_std"), stats) if tuple(s.shape) != (feat,)]
    if bad:
        raise InputError(f"statistics {bad} must be [{feat}] like the motion's last axis; got "
                         f"{[tuple(s.shape) for s in stats]}.")  # fmt: skip
    if torch.is_tensor(motion):
        dm, ds, em, es = (torch.as_tensor(s, dtype=motion.dtype, device=motion.device) for s in stats)
        return ((motion * ds + dm) - em) / es
    motion = np.asarray(motion)
    dm, ds, em, es = (np.asarray(s) for s in stats)
    return ((motion * ds + dm) - em) / es


def collate_order(sent_lens: Sequence[int]) -> list[int]:
    """The official ``collate_fn`` order: indices sorted by sentence length, descending (stable)."""
    return sorted(range(len(sent_lens)), key=lambda i: int(sent_lens[i]), reverse=True)


def length_sort_order(lengths: Sequence[int]) -> np.ndarray:
    """The official wrapper's row order ``np.argsort(lengths)[::-1]`` (not stable for equal lengths)."""
    return np.argsort(np.asarray(lengths).tolist())[::-1].copy()
