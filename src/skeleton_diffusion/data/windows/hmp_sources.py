"""Motion-prediction window datasets of each source (AMASS, Human3.6M, FreeMan, 3DPW zero-shot, generic processed
datasets) on the shared :class:`~skeleton_diffusion.data.windows.hmp.MotionWindowDataset`, and the name -> class
table the dataset configs use (``dataset_type``)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.data.segments import CsvSegment, h36m_action_class, read_amass_segments, read_h36m_segments, read_named_segments

from skeleton_diffusion.data.windows.hmp import AMASS_TEST_CLASSES, H36M_CLASSES, MotionWindowDataset  # noqa: F401

__all__ = ["AMASSDataset", "H36MDataset", "FreeManDataset", "ZeroShotAMASSDataset", "D3PWZeroShotDataset",
           "GenericMotionDataset", "DATASET_TYPES"]


def _missing_key(what: str, key: Any, available: Sequence[Any], file: Path) -> DataFormatError:
    avail = list(available)
    shown = avail[:20] + (["..."] if len(avail) > 20 else [])
    return DataFormatError(f"{file}: {what} {key!r} not found in the processed data; available: {shown}")


class AMASSDataset(MotionWindowDataset):
    """AMASS / AMASS-MANO (``{dataset: {file_idx: [T, J, 3]}}``). Class = source dataset (``metadata[0]``).

    ``datasets``: source datasets for non-CSV splits. With a CSV, all files of the datasets named in it are
    loaded (official). ``if_long_term_test``: future length ``int(pred_length * long_term_factor)``.
    """

    dataset_name = "amass"
    fps = 60
    metadata_class_idx = 0

    def __init__(
        self,
        split: str,
        precomputed_folder: str | os.PathLike,
        skeleton: Any,
        obs_length: int,
        pred_length: int,
        *,
        datasets: Sequence[str] | None = None,
        file_idces: str = "all",
        if_long_term_test: bool = False,
        long_term_factor: float = 4,
        dataset_name: str = "amass",
        **kwargs: Any,
    ) -> None:
        if file_idces != "all":
            raise ConfigError(f"AMASSDataset: only file_idces='all' is supported (got {file_idces!r})")
        self.datasets = list(datasets) if datasets is not None else None
        self.dataset_name = dataset_name
        self.if_long_term_test = bool(if_long_term_test)
        self.long_term_factor = float(long_term_factor)
        self.dict_indices: dict[str, dict[int, int]] = {}
        if self.if_long_term_test:
            if kwargs.get("if_load_mmgt"):
                raise ConfigError(
                    "AMASS long-term test has no multimodal GT (mmgt_test.txt belongs to the 2 s test CSV); "
                    "use stats_mode=deterministic with if_long_term_test"
                )
            pred_length = int(pred_length * self.long_term_factor)
        super().__init__(split, precomputed_folder, skeleton, obs_length, pred_length, **kwargs)

    def _read(self, datasets: Sequence[str]) -> None:
        data = self._load_positions()
        for ds in datasets:
            if ds not in data:
                raise _missing_key("AMASS source dataset", ds, data.keys(), self.data_file)
            self.dict_indices[ds] = {}
            for file_idx, arr in data[ds].items():
                fi = int(file_idx)
                self.dict_indices[ds][fi] = self._add_clip(arr, f"{ds}/{fi}", (ds, str(fi)))

    def _prepare(self) -> None:
        self.idx_to_class = list(AMASS_TEST_CLASSES)
        if self.segments_path is not None:
            rows = read_amass_segments(self.segments_path)
            self._read(list(dict.fromkeys(r.key[0] for r in rows)))
            segs = []
            for r in rows:
                ds, fi = r.key
                if fi not in self.dict_indices[ds]:
                    raise _missing_key(f"file_idx of {ds} (CSV row {r.row})", fi, self.dict_indices[ds], self.data_file)
                s, e = r.window(self.obs_length, self.pred_length)
                segs.append((self.dict_indices[ds][fi], s, e))
            self.segments = segs
            self.segment_metadata = [(r.key[0], str(r.key[1])) for r in rows]
        else:
            if not self.datasets:
                raise ConfigError(f"AMASSDataset[{self.split}]: set `datasets` (list of source datasets) or segments_path")
            self._read(self.datasets)
            self._windows_from_clips()


class H36MDataset(MotionWindowDataset):
    """Human3.6M (``{subject: {action: [T, 17, 3]}}``). Metadata ``(subject, action_class)``, class = element 1."""

    dataset_name = "h36m"
    fps = 50
    metadata_class_idx = 1

    def __init__(self, *args: Any, subjects: Sequence[str] | None = None, actions: str | Sequence[str] = "all", **kwargs: Any) -> None:
        self.subjects = [subjects] if isinstance(subjects, str) else (list(subjects) if subjects is not None else None)
        self.actions = actions if actions == "all" or not isinstance(actions, str) else [actions]
        self.dict_indices: dict[str, dict[str, int]] = {}
        super().__init__(*args, **kwargs)

    def load_mmgt(self, path: str | os.PathLike | None = None) -> None:
        if path is None and self.split == "train":
            name = "mmgt_train.txt" if self.subjects and "S8" in self.subjects else "mmgt_train_noS8.txt"
            path = self.precomputed_folder / name
        super().load_mmgt(path)

    def _read(self, subjects: Sequence[str], actions: str | Sequence[str]) -> None:
        data = self._load_positions()
        for subject, acts in data.items():  # npz order (official filter over the npz items)
            if subject not in subjects:
                continue
            names = list(acts.keys())
            if actions != "all":
                names = [a for a in names if any(x in a for x in actions)]
            if not names:
                continue
            self.dict_indices[subject] = {}
            for action in names:
                self.dict_indices[subject][action] = self._add_clip(
                    acts[action], f"{subject}/{action}", (subject, h36m_action_class(action))
                )
        missing = [s for s in subjects if s not in data]
        if missing:
            raise _missing_key("H36M subject", missing, data.keys(), self.data_file)

    def _prepare(self) -> None:
        self.idx_to_class = list(H36M_CLASSES)
        if self.segments_path is not None:
            rows = read_h36m_segments(self.segments_path)
            subjects = list(dict.fromkeys(r.key[0] for r in rows))
            actions = list(dict.fromkeys(r.key[1] for r in rows))
            self._read(subjects, actions)
            segs = []
            for r in rows:
                subj, act = r.key
                if act not in self.dict_indices.get(subj, {}):
                    raise _missing_key(f"H36M action of {subj} (CSV row {r.row})", act,
                                       self.dict_indices.get(subj, {}), self.data_file)  # fmt: skip
                s, e = r.window(self.obs_length, self.pred_length)
                segs.append((self.dict_indices[subj][act], s, e))
            self.segments = segs
            self.segment_metadata = [(r.key[0], h36m_action_class(r.key[1])) for r in rows]
        else:
            if not self.subjects:
                raise ConfigError(f"H36MDataset[{self.split}]: set `subjects` or segments_path")
            self._read(self.subjects, self.actions)
            self._windows_from_clips()


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise DatasetNotPreparedError(
            f"{what} not found: '{path}'. Fetch the annotation files with "
            "`python -m skeleton_diffusion.apps.fetch_annotations`."
        )
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


class FreeManDataset(MotionWindowDataset):
    """FreeMan (``{seq_or_slice: [T, 18, 3]}``). Metadata ``(action, seq_name)``, class = element 0.

    Needs ``annotations_folder`` (``seq_actions_labels.txt``; ``<split>.txt`` for non-CSV splits).
    """

    dataset_name = "freeman"
    fps = 30
    metadata_class_idx = 0

    def __init__(self, *args: Any, actions: str | Sequence[str] = "all", **kwargs: Any) -> None:
        self.actions = actions if actions == "all" or not isinstance(actions, str) else [actions]
        self.dict_indices: dict[str, int] = {}
        self.seq2action: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def _read(self, seqs: Sequence[str]) -> None:
        if self.annotations_folder is None:
            raise ConfigError("FreeManDataset needs annotations_folder (for seq_actions_labels.txt)")
        data = self._load_positions()
        labels: dict[str, str] = {}
        for ln in _read_lines(self.annotations_folder / "seq_actions_labels.txt", "FreeMan action labels"):
            name, label = ln.rsplit(",", 1)
            labels[name] = label
        for s in seqs:
            if s not in data:
                raise _missing_key("FreeMan sequence", s, data.keys(), self.data_file)
            if s not in labels:
                raise DataFormatError(f"{self.annotations_folder / 'seq_actions_labels.txt'}: no label for {s!r}")
        keep = [s for s in seqs if self.actions == "all" or labels[s] in self.actions]
        file2action = {k: v for k, v in labels.items() if k in set(keep)}  # label-file order -> class order
        self.idx_to_class = list(dict.fromkeys(file2action.values()))
        self.seq2action = file2action
        for s in keep:
            self.dict_indices[s] = self._add_clip(data[s], s, (file2action[s], s))

    def _prepare(self) -> None:
        if self.segments_path is not None:
            rows = read_named_segments(self.segments_path)
            self._read(list(dict.fromkeys(r.key[0] for r in rows)))
            segs = []
            for r in rows:
                if r.key[0] not in self.dict_indices:
                    raise DataFormatError(f"{self.segments_path}, row {r.row}: sequence {r.key[0]!r} filtered out by actions")
                segs.append((self.dict_indices[r.key[0]], *r.window(self.obs_length, self.pred_length)))
            self.segments = segs
            self.segment_metadata = [(self.seq2action[r.key[0]], r.key[0]) for r in rows]
        else:
            if self.annotations_folder is None:
                raise ConfigError("FreeManDataset needs annotations_folder (for <split>.txt)")
            seqs = _read_lines(self.annotations_folder / f"{self.split}.txt", f"FreeMan {self.split} list")
            if len(seqs) != len(set(seqs)):
                raise DataFormatError(f"{self.annotations_folder / f'{self.split}.txt'}: duplicated sequence names")
            self._read(seqs)
            self._windows_from_clips()


class ZeroShotAMASSDataset(MotionWindowDataset):
    """3DPW-style zero-shot data (``{split: {seq: [T, >=22, 3]}}``), truncated to the skeleton's joints.

    Metadata ``(seq_name, seq_name)``, class = sequence. With ``if_zero_shot`` and split ``test`` all splits of
    the npz are merged (official). CSV names missing from the npz are looked up as ``<name>_<actor>`` /
    ``<name>_actor<k>`` keys (multi-actor builds); the first such key is used, as the official single-actor data.
    """

    dataset_name = "3dpw"
    fps = 60
    metadata_class_idx = 0

    def __init__(self, *args: Any, if_zero_shot: bool = True, actions: str = "all", **kwargs: Any) -> None:
        # ``actions``: the official 3DPW config carries ``actions: "all"``; 3DPW has no actions, so only "all"
        # is accepted (a no-op) and anything else is refused rather than ignored
        if actions != "all":
            raise ConfigError(f"{type(self).__name__}: 3DPW has no actions; actions must be 'all', got {actions!r}")
        self.if_zero_shot = bool(if_zero_shot)
        self.dict_indices: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def _clips(self) -> dict[str, np.ndarray]:
        data = self._load_positions()
        if self.if_zero_shot and self.split == "test":
            return {name: seq for s in data for name, seq in data[s].items()}
        if self.split not in data:
            raise _missing_key("split", self.split, data.keys(), self.data_file)
        return dict(data[self.split])

    def _resolve(self, name: str, clips: dict[str, np.ndarray]) -> str:
        if name in clips:
            return name
        for cand in (f"{name}_0", f"{name}_actor0", f"{name}_a0"):
            if cand in clips:
                return cand
        raise _missing_key("sequence", name, clips.keys(), self.data_file)

    def _prepare(self) -> None:
        clips = self._clips()
        self.idx_to_class = list(clips.keys())
        for name, arr in clips.items():
            self.dict_indices[name] = self._add_clip(arr, name, (name, name))
        if self.segments_path is not None:
            rows = read_named_segments(self.segments_path)
            keys = [self._resolve(r.key[0], clips) for r in rows]
            self.segments = [(self.dict_indices[k], *r.window(self.obs_length, self.pred_length)) for k, r in zip(keys, rows)]
            self.segment_metadata = [(r.key[0], r.key[0]) if r.key[0] in clips else (k, k) for k, r in zip(keys, rows)]
            # classes = sequences in npz order (official); extra actor clips of a multi-actor build
            # ('<seq>_actor<k>') that no CSV row uses are loaded but are no class, so the list stays official
            used = {m[0] for m in self.segment_metadata}
            self.idx_to_class = [c for c in self.idx_to_class if c in used or not re.search(r"_actor\d+$", c)]
        else:
            self._windows_from_clips()


class D3PWZeroShotDataset(ZeroShotAMASSDataset):
    dataset_name = "3dpw"


class GenericMotionDataset(MotionWindowDataset):
    """Generic processed data (synthetic, BVH-derived): ``{split: {clip: [T, J, 3]}}`` or ``{clip: [T, J, 3]}``.

    * Clips of a split: ``positions_3d[split]``; for a flat dict, the names listed in ``<split>.txt`` (in the
      annotations or precomputed folder), or all clips if no list exists.
    * Windows: the CSV ``segments_path`` (``name,init,pred_init,pred_end[,class]``); for valid/test it defaults to
      ``segments_<split>.csv`` in the annotations or precomputed folder; otherwise all windows of the clips.
    * Classes: the CSV ``class`` column, else ``clip_labels.txt`` (``name,label`` lines), else the clip name.
      ``idx_to_class``: ``classes.txt`` (one per line) when present, else first appearance order.
      Metadata ``(class, clip_name)``, class = element 0.
    """

    fps = 60
    metadata_class_idx = 0

    def __init__(
        self,
        split: str,
        precomputed_folder: str | os.PathLike,
        skeleton: Any,
        obs_length: int,
        pred_length: int,
        *,
        dataset_name: str = "synthetic",
        fps: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.dataset_name = dataset_name
        if fps is not None:
            self.fps = int(fps)
        self.dict_indices: dict[str, int] = {}
        if not kwargs.get("segments_path") and split in ("valid", "test"):  # default: segments_<split>.csv
            for folder in (kwargs.get("annotations_folder"), precomputed_folder):
                if folder is not None and (Path(folder) / f"segments_{split}.csv").is_file():
                    kwargs["segments_path"] = Path(folder) / f"segments_{split}.csv"
                    break
        super().__init__(split, precomputed_folder, skeleton, obs_length, pred_length, **kwargs)

    def _side(self, name: str) -> Path | None:
        for folder in (self.annotations_folder, self.precomputed_folder):
            if folder is not None and (folder / name).is_file():
                return folder / name
        return None

    def _clips(self) -> dict[str, np.ndarray]:
        data = self._load_positions()
        nested = all(isinstance(v, dict) for v in data.values())
        if nested:
            if self.split not in data:
                raise _missing_key("split", self.split, data.keys(), self.data_file)
            return dict(data[self.split])
        lst = self._side(f"{self.split}.txt")
        if lst is None:
            return dict(data)
        names = _read_lines(lst, f"{self.split} list")
        for n in names:
            if n not in data:
                raise _missing_key(f"clip listed in {lst}", n, data.keys(), self.data_file)
        return {n: data[n] for n in names}

    def _prepare(self) -> None:
        clips = self._clips()
        labels: dict[str, str] = {}
        lab_file = self._side("clip_labels.txt")
        if lab_file is not None:
            for ln in _read_lines(lab_file, "clip labels"):
                name, label = ln.rsplit(",", 1)
                labels[name] = label
        rows: list[CsvSegment] = read_named_segments(self.segments_path) if self.segments_path is not None else []
        used = list(dict.fromkeys(r.key[0] for r in rows)) if rows else list(clips)
        for n in used:
            if n not in clips:
                raise _missing_key(f"clip of split '{self.split}' (from {self.segments_path})", n, clips.keys(), self.data_file)
            self.dict_indices[n] = self._add_clip(clips[n], n, (labels.get(n, n), n))
        if rows:
            self.segments = [(self.dict_indices[r.key[0]], *r.window(self.obs_length, self.pred_length)) for r in rows]
            self.segment_metadata = [(r.label or labels.get(r.key[0], r.key[0]), r.key[0]) for r in rows]
        else:
            self._windows_from_clips()
        cls_file = self._side("classes.txt")
        if cls_file is not None:
            self.idx_to_class = _read_lines(cls_file, "class list")
        else:
            source = self.segment_metadata if rows else self.clip_metadata
            self.idx_to_class = list(dict.fromkeys(m[0] for m in source))


DATASET_TYPES: dict[str, type[MotionWindowDataset]] = {
    "AMASSDataset": AMASSDataset,
    "H36MDataset": H36MDataset,
    "FreeManDataset": FreeManDataset,
    "ZeroShotAMASSDataset": ZeroShotAMASSDataset,
    "D3PWZeroShotDataset": D3PWZeroShotDataset,
    "GenericMotionDataset": GenericMotionDataset,
}
