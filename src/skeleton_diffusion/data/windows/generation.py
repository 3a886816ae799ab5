"""Datasets for motion *generation* (text- and action-conditioned), with one batch format for all methods.

Motion representation for generation (unlike prediction, the **root trajectory is kept**):
joint positions ``[T, J, 3]`` in metres, the dataset's up axis (Z for AMASS/synthetic), in a canonical frame
per window: the root (pelvis) of frame 0 is moved to the origin in the ground plane (its height is kept) and
the window is rotated about the up axis so that the body faces +Y at frame 0 (facing = up x (right hip - left
hip + right shoulder - left shoulder)). :func:`canonicalize_motion` does this.

Batch (``collate_generation``): ``{"motion": FloatTensor [B, T, J, 3], "mask": BoolTensor [B, T] (valid frames),
"length": LongTensor [B], "action": LongTensor [B], "text": list[str]}``.

Synthetic dataset: windows of ``num_frames`` frames (default 120 = 2 s at 60 fps) every ``stride`` frames of
each clip of the split (``train`` / ``valid`` / ``test``), action = primitive covering most frames, text =
caption of the primitive sequence (:mod:`.builders.synthetic_captions`).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError
from skeleton_diffusion.data.processed import load_processed_cached, processed_path

__all__ = [
    "canonicalize_motion",
    "GenerationDataset",
    "build_synthetic_generation_dataset",
    "build_generation_dataset",
    "collate_generation",
]

_AMASS_FACING_JOINTS = (1, 2, 16, 17)  # LHip, RHip, LShoulder, RShoulder


def canonicalize_motion(
    motion: np.ndarray, facing_joints: Sequence[int] = _AMASS_FACING_JOINTS, up_axis: int = 2
) -> np.ndarray:
    """``motion [T, J, 3]`` (metres) -> same motion with the frame-0 root at the ground-plane origin and the body
    facing +Y (Z-up; for ``up_axis=1`` the facing is +Z, as in HumanML3D) at frame 0. Heights are unchanged."""
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 3 or m.shape[-1] != 3:
        raise DataFormatError(f"motion must be [T, J, 3]; got {m.shape}.")
    lh, rh, ls, rs = facing_joints
    plane = [a for a in range(3) if a != up_axis]
    across = (m[0, rh] - m[0, lh]) + (m[0, rs] - m[0, ls])
    up = np.zeros(3)
    up[up_axis] = 1.0
    fwd = np.cross(up, across)
    fwd[up_axis] = 0.0
    norm = np.linalg.norm(fwd)
    if norm < 1e-8:
        raise DataFormatError("cannot find the facing direction: hips and shoulders are collinear with the up axis.")
    fwd /= norm
    # target facing: +Y for Z-up, +Z for Y-up (the second ground-plane axis)
    a0, a1 = plane
    angle = np.arctan2(fwd[a0], fwd[a1])  # rotate by +angle about up maps fwd onto the a1 axis
    c, s = np.cos(angle), np.sin(angle)
    out = m.copy()
    out[..., plane] -= m[0, 0, plane]
    x, y = out[..., a0].copy(), out[..., a1].copy()
    out[..., a0] = c * x - s * y  # a rotation inside the ground plane (up axis fixed, det +1)
    out[..., a1] = s * x + c * y
    return out.astype(np.float32)


class GenerationDataset(Dataset):
    """Fixed windows of motion with an action label and a caption per window (see module doc).

    Args:
        clips: list of clip arrays ``[T_c, J, 3]`` (metres).
        windows: ``[(clip index, start frame, length)]``; ``length <= num_frames`` (shorter ones are padded).
        actions: action index per window; texts: caption(s) per window (a list of captions -> one is chosen,
            at random in training (``random_caption=True``) or the first one).
        num_frames: padded window length ``T``.
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        windows: Sequence[tuple[int, int, int]],
        actions: Sequence[int],
        texts: Sequence[str | Sequence[str]],
        num_frames: int,
        *,
        action_names: Sequence[str],
        fps: float,
        skeleton_name: str,
        facing_joints: Sequence[int] = _AMASS_FACING_JOINTS,
        up_axis: int = 2,
        random_caption: bool = False,
    ) -> None:
        if not (len(windows) == len(actions) == len(texts)):
            raise DataFormatError(
                f"windows/actions/texts differ in length: {len(windows)}/{len(actions)}/{len(texts)}.")
        self.clips = list(clips)
        self.windows = [tuple(int(v) for v in w) for w in windows]
        self.actions = [int(a) for a in actions]
        self.texts = [[t] if isinstance(t, str) else list(t) for t in texts]
        self.num_frames = int(num_frames)
        self.action_names = tuple(action_names)
        self.fps = float(fps)
        self.skeleton_name = skeleton_name
        self.num_joints = int(self.clips[0].shape[1]) if self.clips else 0
        self.facing_joints, self.up_axis = tuple(facing_joints), int(up_axis)
        self.random_caption = random_caption
        for c, s, n in self.windows:
            if n > self.num_frames or s + n > len(self.clips[c]):
                raise DataFormatError(f"window (clip {c}, start {s}, length {n}) exceeds its clip or num_frames.")

    def __len__(self) -> int:
        return len(self.windows)

    def motion(self, idx: int) -> np.ndarray:
        """Canonical motion of window ``idx``: float32 ``[length, J, 3]`` (unpadded)."""
        c, s, n = self.windows[idx]
        return canonicalize_motion(self.clips[c][s : s + n], self.facing_joints, self.up_axis)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        m = self.motion(idx)
        n = m.shape[0]
        out = np.zeros((self.num_frames,) + m.shape[1:], dtype=np.float32)
        out[:n] = m
        if n < self.num_frames:
            out[n:] = m[-1]  # pad by repeating the last pose (masked out anyway)
        caps = self.texts[idx]
        text = caps[np.random.randint(len(caps))] if self.random_caption and len(caps) > 1 else caps[0]
        return {"motion": torch.from_numpy(out), "length": n, "action": self.actions[idx], "text": text}

    def mean_std(self, max_windows: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-(joint, axis) mean and std ``[J, 3]`` over the valid frames of (up to ``max_windows``) windows."""
        idx = np.linspace(0, len(self) - 1, min(len(self), max_windows)).astype(int)
        frames = np.concatenate([self.motion(int(i)) for i in idx]).astype(np.float64)
        return torch.from_numpy(frames.mean(0)).float(), torch.from_numpy(frames.std(0) + 1e-6).float()


def collate_generation(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """List of dataset items -> batch dict (see module doc)."""
    motion = torch.stack([it["motion"] for it in items])
    length = torch.tensor([int(it["length"]) for it in items], dtype=torch.long)
    mask = torch.arange(motion.shape[1])[None, :] < length[:, None]
    return {
        "motion": motion,
        "mask": mask,
        "length": length,
        "action": torch.tensor([int(it["action"]) for it in items], dtype=torch.long),
        "text": [str(it["text"]) for it in items],
    }


def build_synthetic_generation_dataset(
    folder: str | Path,
    split: str,
    *,
    num_frames: int = 120,
    stride: int = 60,
    caption_seed: int = 0,
    min_caption_frames: int = 12,
    max_windows: int | None = None,
) -> GenerationDataset:
    """Generation windows of the synthetic dataset in ``folder`` (``data_3d_synthetic.npz`` + frame labels)."""
    from skeleton_diffusion.data.builders.synthetic_captions import ACTION_NAMES, load_frame_labels, primitive_runs, caption_from_runs
    from skeleton_diffusion.data.builders.synthetic_captions import window_action

    folder = Path(folder)
    positions = load_processed_cached(processed_path(folder, "synthetic"))
    if split not in positions:
        raise ConfigError(f"split '{split}' is not in {processed_path(folder, 'synthetic')}; has {sorted(positions)}.")
    labels = load_frame_labels(folder, positions)
    clips, windows, actions, texts = [], [], [], []
    for name in sorted(positions[split]):
        clip = np.asarray(positions[split][name])
        lab = labels.get(f"{split}/{name}")
        if lab is None or len(lab) != len(clip):
            raise DataFormatError(f"frame labels of '{split}/{name}' missing or of wrong length in '{folder}'.")
        ci = len(clips)
        clips.append(clip)
        for start in range(0, len(clip) - num_frames + 1, stride):
            win = lab[start : start + num_frames]
            seed = zlib.crc32(f"{caption_seed}/{split}/{name}/{start}".encode())
            windows.append((ci, start, num_frames))
            actions.append(window_action(win, len(ACTION_NAMES)))
            texts.append(caption_from_runs(primitive_runs(win), np.random.default_rng(seed), min_caption_frames))
    if max_windows is not None and len(windows) > max_windows:
        keep = np.linspace(0, len(windows) - 1, max_windows).astype(int)
        windows, actions, texts = [windows[i] for i in keep], [actions[i] for i in keep], [texts[i] for i in keep]
    if not windows:
        raise DataFormatError(f"no {num_frames}-frame window in split '{split}' of '{folder}'.")
    return GenerationDataset(clips, windows, actions, texts, num_frames, action_names=ACTION_NAMES, fps=60,
                             skeleton_name="amass")  # fmt: skip


def build_generation_dataset(
    dataset_cfg: Any, split: str, *, dataset_main_path: str | Path = "./datasets", num_frames: int | None = None,
    stride: int | None = None, max_windows: int | None = None, caption_seed: int = 0, condition: str | None = None,
) -> GenerationDataset:
    """Generation dataset from a ``configs/dataset/<name>.yaml`` node (``synthetic`` or ``humanml3d``).

    Paths in the node are relative to ``dataset_main_path``. ``num_frames``/``stride`` default to the node's
    ``generation`` section, else synthetic 120 frames, stride 30 (train) / 60 (valid, test). Every item
    carries both conditions (``action`` and ``text``), so ``condition`` (text | action | past) is accepted for
    symmetry and only checked."""
    if condition not in (None, "text", "action", "past"):
        raise ConfigError(f"condition must be text, action or past; got {condition!r}.")
    name = str(dataset_cfg.get("dataset_name"))
    gen = dataset_cfg.get("generation") or {}
    folder = Path(str(dataset_cfg.get("precomputed_folder", "")))
    if not folder.is_absolute():
        folder = Path(dataset_main_path) / folder
    if name == "synthetic":
        return build_synthetic_generation_dataset(
            folder, split, num_frames=int(num_frames or gen.get("num_frames", 120)),
            stride=int(stride or gen.get("stride", 30 if split == "train" else 60)), caption_seed=caption_seed,
            max_windows=max_windows,
        )  # fmt: skip
    if name == "humanml3d":
        return build_humanml3d_generation_dataset(
            folder, split, max_frames=int(num_frames or gen.get("max_frames", 196)),
            min_frames=int(gen.get("min_frames", 40)), max_windows=max_windows,
        )  # fmt: skip
    raise ConfigError(f"dataset={name} has no generation data (text/action); use dataset=synthetic or humanml3d.")


def build_humanml3d_generation_dataset(
    folder: str | Path, split: str, *, max_frames: int = 196, min_frames: int = 40, max_windows: int | None = None
):
    """:class:`~skeleton_diffusion.data.windows.generation.GenerationDataset` of a HumanML3D split: positions recovered
    from the features (metres, Y up), the first ``max_frames`` frames of each entry, all its captions
    (one drawn at random per item in training), action label 0 (HumanML3D has none). The features stay
    available as ``ds.features`` (list of ``[T, 263]``)."""
    from skeleton_diffusion.data.builders.humanml3d import HUMANML3D_FPS, load_humanml3d_split
    from skeleton_diffusion.representations.humanml3d import recover_from_ric

    split_name = {"valid": "val"}.get(split, split)
    entries = load_humanml3d_split(folder, split_name, min_frames=min_frames)
    if max_windows is not None and len(entries) > max_windows:
        entries = [entries[i] for i in np.linspace(0, len(entries) - 1, max_windows).astype(int)]
    if not entries:
        raise DataFormatError(f"no HumanML3D motion of {min_frames}..199 frames with captions in split '{split}' "
                              f"of '{folder}'.")  # fmt: skip
    clips = [recover_from_ric(e.features.astype(np.float64)).numpy().astype(np.float32) for e in entries]
    windows = [(i, 0, min(len(c), max_frames)) for i, c in enumerate(clips)]
    ds = GenerationDataset(clips, windows, [0] * len(entries), [[t.caption for t in e.texts] for e in entries],
                           max_frames, action_names=("none",), fps=HUMANML3D_FPS, skeleton_name="amass",
                           up_axis=1, random_caption=split_name == "train")  # fmt: skip
    ds.features = [e.features for e in entries]  # type: ignore[attr-defined]
    ds.names = [e.name for e in entries]  # type: ignore[attr-defined]
    return ds
