"""Processed 2D->3D lifting data: one ``.npz`` file (no pickles) and a window dataset over it.

File ``data_lifting_<name>.npz`` (written by ``create_h36m_lifting_dataset`` / ``create_synthetic_lifting_dataset``):

=================  ===================  =====================================================================
key                shape / dtype        meaning
=================  ===================  =====================================================================
pose_3d            [F, J, 3] float32    all frames of all sequences, camera frame, root-relative, metres
pose_2d            [F, J, 2] float32    matching 2D keypoints, normalised to the image width ([-1, 1])
seq_start/seq_len  [S] int64            frame range of each sequence (one per subject/action/camera)
seq_subject        [S] str              e.g. ``S9``
seq_action         [S] str              action name (per-action metrics)
seq_camera         [S] int64            camera index
seq_split          [S] str              ``train`` or ``test``
joint_names        [J] str              skeleton joint order (root first)
skeleton           [] str               skeleton name (``h36m``)
fps                [] float             frame rate
joint_noise_std    [J] float32          per-joint std of the 2D error (normalised units; ones if unknown)
=================  ===================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_path

__all__ = ["LIFTING_KEYS", "LiftingData", "save_lifting", "load_lifting", "LiftingWindows", "lifting_file_path"]

LIFTING_KEYS = ("pose_3d", "pose_2d", "seq_start", "seq_len", "seq_subject", "seq_action", "seq_camera",
                "seq_split", "joint_names", "skeleton", "fps", "joint_noise_std")


def lifting_file_path(folder: str | Path, name: str) -> Path:
    """``<folder>/data_lifting_<name>.npz``."""
    return Path(folder) / f"data_lifting_{name}.npz"


@dataclass
class LiftingData:
    """In-memory lifting file (see module docstring for the fields)."""

    pose_3d: np.ndarray
    pose_2d: np.ndarray
    seq_start: np.ndarray
    seq_len: np.ndarray
    seq_subject: np.ndarray
    seq_action: np.ndarray
    seq_camera: np.ndarray
    seq_split: np.ndarray
    joint_names: tuple[str, ...]
    skeleton: str
    fps: float
    joint_noise_std: np.ndarray

    @property
    def num_joints(self) -> int:
        return int(self.pose_3d.shape[1])

    def sequences(self, split: str | None = None) -> list[int]:
        """Indices of the sequences of ``split`` (all when None)."""
        return [i for i in range(len(self.seq_start)) if split is None or self.seq_split[i] == split]


def save_lifting(path: str | Path, sequences: Sequence[dict[str, Any]], *, split_of: dict[str, str],
                 joint_names: Sequence[str], skeleton: str, fps: float,
                 joint_noise_std: np.ndarray | None = None) -> Path:
    """Write sequences (dicts with ``pose_3d [T,J,3]``, ``pose_2d [T,J,2]``, ``subject``, ``action``, ``camera``)
    as one lifting file; ``split_of[subject]`` gives ``train``/``test`` (subjects without an entry are dropped)."""
    seqs = [s for s in sequences if s["subject"] in split_of]
    if not seqs:
        raise DataFormatError(f"no sequence belongs to the subjects {sorted(split_of)}")
    j = len(joint_names)
    for s in seqs:
        if s["pose_3d"].shape[1:] != (j, 3) or s["pose_2d"].shape != (*s["pose_3d"].shape[:2], 2):
            raise DataFormatError(f"sequence {s['subject']}/{s['action']}/{s['camera']}: pose_3d "
                                  f"{s['pose_3d'].shape} / pose_2d {s['pose_2d'].shape}, expected [T,{j},3]/[T,{j},2]")
    lens = np.array([len(s["pose_3d"]) for s in seqs], dtype=np.int64)
    noise = np.ones(j, np.float32) if joint_noise_std is None else np.asarray(joint_noise_std, np.float32)
    arrays = dict(
        pose_3d=np.concatenate([s["pose_3d"] for s in seqs]).astype(np.float32),
        pose_2d=np.concatenate([s["pose_2d"] for s in seqs]).astype(np.float32),
        seq_start=np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64), seq_len=lens,
        seq_subject=np.array([s["subject"] for s in seqs]), seq_action=np.array([s["action"] for s in seqs]),
        seq_camera=np.array([s["camera"] for s in seqs], dtype=np.int64),
        seq_split=np.array([split_of[s["subject"]] for s in seqs]), joint_names=np.array(list(joint_names)),
        skeleton=np.array(skeleton), fps=np.array(float(fps)), joint_noise_std=noise)
    path = Path(path)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def load_lifting(path: str | Path, create_hint: str = "") -> LiftingData:
    """Read and check a lifting file (no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotPreparedError(f"lifting dataset '{path}' does not exist"
                                      + (f"; create it with `{create_hint}`" if create_hint else ""))
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in LIFTING_KEYS if k not in f.files]
        if missing:
            raise DataFormatError(f"'{path}' lacks keys {missing} (a lifting file has {list(LIFTING_KEYS)})")
        d = {k: f[k] for k in LIFTING_KEYS}
    p3, p2 = d["pose_3d"], d["pose_2d"]
    if p3.ndim != 3 or p3.shape[2] != 3 or p2.shape != (*p3.shape[:2], 2):
        raise DataFormatError(f"'{path}': pose_3d {p3.shape} / pose_2d {p2.shape}, expected [F, J, 3] / [F, J, 2]")
    if int(d["seq_len"].sum()) != p3.shape[0]:
        raise DataFormatError(f"'{path}': seq_len sums to {int(d['seq_len'].sum())}, "
                              f"but there are {p3.shape[0]} frames")
    return LiftingData(p3, p2, d["seq_start"], d["seq_len"], d["seq_subject"], d["seq_action"], d["seq_camera"],
                       d["seq_split"], tuple(str(n) for n in d["joint_names"]), str(d["skeleton"]),
                       float(d["fps"]), d["joint_noise_std"].astype(np.float32))


class LiftingWindows(Dataset):
    """Windows of ``window`` consecutive frames (1 = frame-based) of one split.

    Item: ``(pose_2d [F, J, 2], pose_3d [F, J, 3], {'class_idx': action id, 'metadata': ()})`` (the motion
    loaders' collation gives ``extra['class_idx'] [B]``); windows lie inside
    one sequence, start every ``stride`` frames (``stride`` defaults to 1 for train, ``window`` for test).
    ``max_windows`` keeps an evenly spaced subset (quick evaluations)."""

    def __init__(self, data: LiftingData, split: str, window: int = 1, stride: int | None = None,
                 max_windows: int | None = None) -> None:
        if window < 1:
            raise ConfigError(f"window must be >= 1, got {window}")
        self.data, self.window = data, int(window)
        stride = int(stride or (1 if split == "train" else window))
        self.actions = sorted({str(a) for a in data.seq_action})
        starts, acts = [], []
        for i in data.sequences(split):
            s0, n = int(data.seq_start[i]), int(data.seq_len[i])
            for s in range(0, n - self.window + 1, stride):
                starts.append(s0 + s)
                acts.append(self.actions.index(str(data.seq_action[i])))
        if not starts:
            raise DataFormatError(f"split {split!r} has no window of {window} frames "
                                  f"(sequences: {len(data.sequences(split))})")
        idx = np.arange(len(starts))
        if max_windows and len(idx) > max_windows:
            idx = np.linspace(0, len(idx) - 1, int(max_windows)).round().astype(int)
        self.starts = np.asarray(starts, dtype=np.int64)[idx]
        self.action_ids = np.asarray(acts, dtype=np.int64)[idx]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        s = int(self.starts[i])
        sl = slice(s, s + self.window)
        return (torch.from_numpy(self.data.pose_2d[sl]), torch.from_numpy(self.data.pose_3d[sl]),
                {"class_idx": int(self.action_ids[i]), "metadata": ()})
