"""Window datasets with the official semantics (spec §5.1, §5.3-§5.5): the shared base class. The per-source
classes (AMASS, H36M, FreeMan, 3DPW, generic) are in :mod:`skeleton_diffusion.data.windows.hmp_sources`.

Every dataset holds ``annotations`` (per-clip float32 ``[T, J, 3]`` world arrays, read-only), ``segments``
(``(clip_idx, start, end)``, end inclusive), per-segment ``metadata`` (2-tuples of strings) and
``idx_to_class``. ``dataset[i]`` returns ``(obs [T_obs, N, 3], fut [T_pred, N, 3], extra)`` in **input space**
(metric / ``pose_box_size``) as float32 tensors; see :func:`skeleton_diffusion.data.loaders.collate_motion_batch`.

Indexing (official): ``len = len(segments) // stride``; sample ``i`` -> segment ``stride*i + augmentation``,
plus a uniform integer offset in ``[-augmentation, augmentation]`` clipped to the valid range when
``augmentation > 0``. CSV-defined splits force ``stride=1, augmentation=0``. Training (``in_eval=False``)
applies mirroring/rotation augmentation; eval splits never do.

Fixes over the official loaders (documented in docs): data are never modified in place (noise and
augmentation work on copies; cached arrays are read-only); 3DPW loads every actor key; long-term AMASS uses
the shipped ``segments_test_long_term_pred.csv``.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError
from skeleton_diffusion.data.augment import augmentation as aug
from skeleton_diffusion.data.mean_motion import compute_mean_motion, read_mean_motion
from skeleton_diffusion.data.mmgt import read_mmgt
from skeleton_diffusion.data.processed import load_processed_cached, processed_path
from skeleton_diffusion.data.segments import generate_segments_array

__all__ = [
    "MotionWindowDataset",
    "accepted_options",
    "check_options",
    "AMASS_TEST_CLASSES",
    "H36M_CLASSES",
]

AMASS_TEST_CLASSES = ("DFaust", "DanceDB", "GRAB", "HUMAN4D", "SOMA", "SSM", "Transitions")
H36M_CLASSES = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)  # fmt: skip

SPLITS = ("train", "valid", "test")


class MotionWindowDataset(Dataset):
    """Base class: windows over clips, official sampling/augmentation/MMGT semantics.

    Args:
        split: ``train`` | ``valid`` | ``test`` (which clips/CSV to use).
        precomputed_folder: folder with ``data_3d_<name>.npz`` (+ ``mmgt_<split>.txt``, ``mean_motion_test.txt``).
        skeleton: a :class:`~skeleton_diffusion.skeletons.Skeleton` (or its name); gives ``J`` and ``adj``.
        obs_length, pred_length: window lengths in frames.
        segments_path: CSV fixing the windows (stride/augmentation then forced to 1/0).
        stride, augmentation: official sample -> segment mapping (see module doc).
        da_mirroring, da_rotations: augmentation probabilities (training only).
        pose_box_size: metres per input-space unit.
        if_load_mmgt: add ``extra['mm_gt']`` (``[n_i, T_pred, N, 3]`` input space) from ``mmgt_<split>.txt``.
        if_noisy_obs, noise_level, noise_std: observation noise in world space, root untouched.
        noise_seed: ``None`` = numpy global RNG (official); an int = per-segment generator seeded by
            ``(noise_seed, segment_idx)``, so noise is independent of batch order and workers.
        in_eval: disable augmentation; default ``split != 'train'``.
        rng: RNG for temporal jitter and augmentation (``None`` = numpy global RNG, official).
        mirror_swap_lr: also swap left/right joint labels when mirroring (not official; default False).
        if_compute_cmd: load ``mean_motion_per_class`` (test split) from ``mean_motion_test.txt``.
    """

    dataset_name: str = "base"
    fps: int = 60
    metadata_class_idx: int = 0

    def __init__(
        self,
        split: str,
        precomputed_folder: str | os.PathLike,
        skeleton: Any,
        obs_length: int,
        pred_length: int,
        *,
        annotations_folder: str | os.PathLike | None = None,
        segments_path: str | os.PathLike | None = None,
        stride: int = 1,
        augmentation: int = 0,
        da_mirroring: float = 0.0,
        da_rotations: float = 0.0,
        dtype: str = "float32",
        pose_box_size: float = 1.5,
        if_load_mmgt: bool = False,
        mmgt_path: str | os.PathLike | None = None,
        if_noisy_obs: bool = False,
        noise_level: float = 0.25,
        noise_std: float = 0.02,
        noise_seed: int | None = None,
        in_eval: bool | None = None,
        rng: Any = None,
        mirror_swap_lr: bool = False,
        if_compute_cmd: bool = False,
        processed_file: str | os.PathLike | None = None,
        silent: bool = True,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:  # a typo (da_mirorring, if_noisy_obz) must not be silently ignored
            check_options(type(self), unknown, f"{type(self).__name__}(...)")
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if isinstance(skeleton, str):
            from skeleton_diffusion.skeletons.lookup import get_skeleton

            skeleton = get_skeleton(skeleton)
        if skeleton is None:
            raise ConfigError(f"{type(self).__name__}: a skeleton is required (object or name)")
        if int(obs_length) <= 0 or int(pred_length) <= 0:
            raise ConfigError(f"obs_length and pred_length must be positive, got {obs_length}, {pred_length}")
        for name, p in (("da_mirroring", da_mirroring), ("da_rotations", da_rotations)):
            if not 0.0 <= float(p) <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {p}")
        if int(augmentation) < 0 or int(stride) < 1:
            raise ConfigError(f"augmentation must be >= 0 and stride >= 1, got {augmentation}, {stride}")
        if dtype.lower() not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
        self.split = split
        self.precomputed_folder = Path(precomputed_folder)
        self.annotations_folder = Path(annotations_folder) if annotations_folder is not None else None
        self.segments_path = Path(segments_path) if segments_path else None
        if split == "test" and self.segments_path is None:
            raise ConfigError(
                f"{type(self).__name__}: the test split is defined by a segment CSV; set data_loader_test.segments_path"
            )
        self.processed_file = Path(processed_file) if processed_file else None
        self.skeleton = skeleton
        self.num_joints = int(skeleton.num_joints)
        self.obs_length = int(obs_length)
        self.pred_length = int(pred_length)
        self.seg_length = self.obs_length + self.pred_length
        self.stride = int(stride)
        self.augmentation = int(augmentation)
        self.da_mirroring = float(da_mirroring)
        self.da_rotations = float(da_rotations)
        self.dtype = np.float64 if dtype.lower() == "float64" else np.float32
        self.pose_box_size = float(pose_box_size)
        self.if_load_mmgt = bool(if_load_mmgt)
        self.if_noisy_obs = bool(if_noisy_obs)
        self.noise_level = float(noise_level)
        self.noise_std = float(noise_std)
        self.noise_seed = noise_seed
        self.in_eval = (split != "train") if in_eval is None else bool(in_eval)
        self.rng = rng
        self.silent = silent
        self.swap_pairs = aug.left_right_pairs(skeleton.joint_names) if mirror_swap_lr else None
        self._adj = torch.from_numpy(np.asarray(skeleton.adjacency(), dtype=np.float32))

        self.annotations: list[np.ndarray] = []
        self.clip_names: list[str] = []
        self.clip_metadata: list[tuple[str, str]] = []
        # segments: int64 [n, 3] rows (clip_idx, start, end-inclusive) after construction (lists while preparing)
        self.segments: Any = []
        self.segment_metadata: Sequence[tuple[str, str]] = []
        self.idx_to_class: list[str] = []
        self.mm_indices: dict[int, list[int]] | None = None
        self.mean_motion_per_class: list[float] | None = None

        self._prepare()
        self.segments = np.asarray(self.segments, dtype=np.int64).reshape(-1, 3)
        if self.segments_path is not None:
            self.stride, self.augmentation = 1, 0
        self._validate_segments()
        self.class_to_idx = {c: i for i, c in enumerate(self.idx_to_class)}
        if self.if_load_mmgt:
            self.load_mmgt(mmgt_path)
        if split == "test" and if_compute_cmd:
            self.load_mean_motion()
        if not silent:
            print(f"{type(self).__name__}[{split}]: {len(self.annotations)} clips, {len(self.segments)} segments, "
                  f"{len(self)} samples")  # fmt: skip

    # ---------------------------------------------------------------------------------------------- loading
    @property
    def data_file(self) -> Path:
        return self.processed_file or processed_path(self.precomputed_folder, self.dataset_name)

    def _load_positions(self) -> dict:
        return load_processed_cached(self.data_file, dataset_name=self.dataset_name, num_joints=self.num_joints)

    def _add_clip(self, array: np.ndarray, name: str, metadata: tuple[str, str]) -> int:
        arr = np.asarray(array)[:, : self.num_joints]
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        arr.flags.writeable = False
        self.annotations.append(arr)
        self.clip_names.append(name)
        self.clip_metadata.append(metadata)
        return len(self.annotations) - 1

    def _windows_from_clips(self) -> None:
        """Non-CSV split: every window of every clip (official off-by-one kept), metadata from the clip."""
        self.segments = generate_segments_array([len(a) for a in self.annotations], self.seg_length)
        self.segment_metadata = _MetadataView(self.clip_metadata, self.segments[:, 0])

    def _prepare(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate_segments(self) -> None:
        if len(self.segments) == 0:
            raise DataFormatError(
                f"{type(self).__name__}[{self.split}]: no windows of {self.seg_length} frames "
                f"({self.obs_length}+{self.pred_length}) in {len(self.annotations)} clips of '{self.data_file}'"
            )
        seg = self.segments
        lengths = np.array([len(a) for a in self.annotations], dtype=np.int64)
        bad = (seg[:, 1] < 0) | (seg[:, 2] >= lengths[seg[:, 0]]) | (seg[:, 2] - seg[:, 1] + 1 != self.seg_length)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            c, s, e = (int(v) for v in seg[k])
            raise DataFormatError(
                f"{type(self).__name__}[{self.split}]: segment {k} (clip '{self.clip_names[c]}', frames "
                f"{s}..{e}) does not fit a clip of {lengths[c]} frames with obs {self.obs_length} + pred "
                f"{self.pred_length}; the processed data do not match "
                f"{self.segments_path or 'the window settings'} (was it built with the same script/version?)"
            )

    def load_mmgt(self, path: str | os.PathLike | None = None) -> None:
        path = Path(path) if path else self.precomputed_folder / f"mmgt_{self.split}.txt"
        self.mm_indices = read_mmgt(path, num_segments=len(self.segments))

    def load_mean_motion(self, path: str | os.PathLike | None = None, *, compute_if_missing: bool = True) -> list[float]:
        """Reference speed per class (``idx_to_class`` order) from ``mean_motion_test.txt``; computed if missing."""
        path = Path(path) if path else self.precomputed_folder / "mean_motion_test.txt"
        if not path.is_file() and compute_if_missing:
            from skeleton_diffusion.data.mean_motion import write_mean_motion

            refs, freqs = self.compute_mean_motion()
            write_mean_motion(path, self.idx_to_class, refs, freqs)
        self.mean_motion_per_class = list(read_mean_motion(path, self.idx_to_class))  # type: ignore[arg-type]
        return self.mean_motion_per_class

    # -------------------------------------------------------------------------------------- direct access
    def window_world(self, segment_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views ``(obs [T_obs, J, 3], fut [T_pred, J, 3])`` (world space) of a segment."""
        c, s, e = (int(v) for v in self.segments[segment_idx])
        data = self.annotations[c][s : e + 1]
        return data[: self.obs_length], data[self.obs_length :]

    def last_observed_metric(self) -> np.ndarray:
        """``[n_segments, N, 3]`` last observed pose of every segment, metric space (for MMGT)."""
        out = np.empty((len(self.segments), self.num_joints - 1, 3), dtype=self.dtype)
        for k, (c, s, _) in enumerate(self.segments.tolist()):
            p = self.annotations[c][s + self.obs_length - 1]
            out[k] = p[1:] - p[:1]
        return out

    def future_metric(self, segment_idx: int) -> np.ndarray:
        """``[T_pred, N, 3]`` future of a segment in metric space."""
        fut = self.window_world(segment_idx)[1]
        return fut[:, 1:] - fut[:, :1]

    def segment_classes(self) -> list[str]:
        return [m[self.metadata_class_idx] for m in self.segment_metadata]

    def compute_mean_motion(self, batch_size: int = 128) -> tuple[list[float], list[float]]:
        """Per-class reference speed and frequency over *all segments* of this split (official §2.6)."""
        futures = (self.future_metric(k) for k in range(len(self.segments)))
        return compute_mean_motion(futures, self.segment_classes(), self.idx_to_class, batch_size=batch_size)

    def class_index(self, segment_idx: int) -> int:
        """Index of the segment's class in ``idx_to_class`` (-1 for classes outside it, e.g. AMASS train)."""
        return self.class_to_idx.get(self.segment_metadata[segment_idx][self.metadata_class_idx], -1)

    # ------------------------------------------------------------------------------------------- sampling
    def __len__(self) -> int:
        return len(self.segments) // self.stride

    def sample_to_segment(self, sample_idx: int) -> int:
        k = self.stride * sample_idx + self.augmentation
        if self.augmentation > 0:
            k += aug.random_int(-self.augmentation, self.augmentation + 1, self.rng)
            k = max(0, min(k, len(self.segments) - 1))
        return k

    def _noise_rng(self, segment_idx: int):
        if self.noise_seed is None:
            return self.rng
        return np.random.default_rng([int(self.noise_seed), int(segment_idx)])

    def __getitem__(self, sample_idx: int):
        n = len(self)
        if sample_idx < 0:
            sample_idx += n
        if not 0 <= sample_idx < n:
            raise IndexError(f"sample index {sample_idx} out of range for {n} samples")
        k = self.sample_to_segment(int(sample_idx))
        c, s, e = (int(v) for v in self.segments[k])
        obs, fut = self.window_world(k)
        mm_gt = None
        if self.if_load_mmgt:
            if self.mm_indices is None:
                self.load_mmgt()
            assert self.mm_indices is not None
            mm_gt = np.stack([self.window_world(j)[1] for j in self.mm_indices[k]], axis=0)
        if self.if_noisy_obs:
            obs = aug.add_observation_noise(obs, self.noise_level, self.noise_std, self._noise_rng(k))
        if not self.in_eval:
            obs, fut, mm_gt = aug.mirror([obs, fut, mm_gt], self.da_mirroring, self.rng, self.swap_pairs)
            obs, fut, mm_gt = aug.rotate_z([obs, fut, mm_gt], self.da_rotations, self.rng)
        box = self.pose_box_size
        both = np.concatenate([obs, fut], axis=0)
        both = (both[:, 1:] - both[:, :1]) / np.asarray(box, dtype=self.dtype)
        x = torch.from_numpy(np.ascontiguousarray(both))
        extra: dict[str, Any] = {
            "sample_idx": int(sample_idx),
            "clip_idx": int(c),
            "init": int(s),
            "end": int(e),
            "segment_idx": int(k),
            "class_idx": self.class_index(k),
            "metadata": self.segment_metadata[k],
            "adj": self._adj,
        }
        if mm_gt is not None:
            mm = (mm_gt[..., 1:, :] - mm_gt[..., :1, :]) / np.asarray(box, dtype=self.dtype)
            extra["mm_gt"] = torch.from_numpy(np.ascontiguousarray(mm))
        return x[: self.obs_length], x[self.obs_length :], extra

    def unique_sample_string(self, extra: dict) -> str | list[str]:
        """``<m0>-<m1>_clip<c>_<init>:<end>-segment<k>`` (official ``unique_id``): a string for one item's
        ``extra``, a list of strings for a collated batch."""

        def one(m0: str, m1: str, c: int, s: int, e: int, k: int) -> str:
            return f"{m0}-{m1}_clip{c}_{s}:{e}-segment{k}"

        if isinstance(extra["clip_idx"], torch.Tensor) and extra["clip_idx"].ndim == 1:
            cols = [extra[key].tolist() for key in ("clip_idx", "init", "end", "segment_idx")]
            m0, m1 = extra["metadata"]
            return [one(a, b, *vals) for a, b, *vals in zip(m0, m1, *cols)]
        m = extra["metadata"]
        return one(m[0], m[1], int(extra["clip_idx"]), int(extra["init"]), int(extra["end"]), int(extra["segment_idx"]))

    def find_segment(self, clip_idx: int, init: int, end: int | None = None) -> int | None:
        """Index of the segment ``(clip_idx, init[, end])``, or None."""
        seg = self.segments
        m = (seg[:, 0] == clip_idx) & (seg[:, 1] == init)
        if end is not None:
            m &= seg[:, 2] == end
        hits = np.flatnonzero(m)
        return int(hits[0]) if len(hits) else None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, clips={len(self.annotations)}, "
                f"segments={len(self.segments)}, samples={len(self)}, obs={self.obs_length}, pred={self.pred_length})")  # fmt: skip


class _MetadataView(Sequence):
    """Per-segment metadata of generated windows without one tuple per window: ``view[k]`` is the metadata of
    the clip of segment ``k`` (training sets have millions of windows)."""

    def __init__(self, clip_metadata: list[tuple[str, str]], clip_of_segment: np.ndarray) -> None:
        self._clip_metadata = clip_metadata
        self._clip = clip_of_segment

    def __len__(self) -> int:
        return len(self._clip)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self._clip_metadata[int(c)] for c in self._clip[k]]
        return self._clip_metadata[int(self._clip[k])]


#: Positional parameters of every window dataset (given by the factory, never by a config block).
_POSITIONAL = ("self", "split", "precomputed_folder", "skeleton", "obs_length", "pred_length")


def accepted_options(cls: type) -> set[str]:
    """Keyword options a window dataset class accepts: the named parameters of every ``__init__`` in its MRO
    (subclasses pass the rest on with ``**kwargs``)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in _POSITIONAL:
                names.add(p.name)
        if klass is MotionWindowDataset:
            break
    return names


def check_options(cls: type, keys: Iterable[str], where: str) -> None:
    """Refuse option names ``cls`` does not accept: one paragraph naming the key, ``where`` it came from and the
    nearest valid name (``ConfigError``)."""
    valid = accepted_options(cls)
    unknown = [k for k in keys if k not in valid]
    if not unknown:
        return
    key = unknown[0]
    near = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
    hint = f"did you mean '{near[0]}'? " if near else ""
    more = f" (also unknown: {', '.join(repr(k) for k in unknown[1:])})" if len(unknown) > 1 else ""
    raise ConfigError(f"unknown dataset option '{key}' in {where}{more}: {cls.__name__} does not read it, so it "
                      f"would be silently ignored; {hint}valid options: {', '.join(sorted(valid))}")
