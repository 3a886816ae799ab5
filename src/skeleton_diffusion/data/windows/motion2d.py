"""2D motion data for CrossDiff: paired 3D+2D windows (3D windows projected on the fly) and a 2D-only clip format
with its loader (e.g. poses from a video pose estimator, as the official UCF101/ViTPose data).

**2D-only format** — a folder of ``<clip>.npz`` files, each with

* ``keypoints``: float ``[T, J, 2]`` in the same joint order as the 3D skeleton, +y up, metric-ish units
  (as :func:`~.projection2d.project_motion` writes them; any consistent scale works, the loader makes the
  first frame's root the origin);
* ``text``: a caption (string) or an array of captions;
* optional ``fps`` (float).

:func:`write_motion2d_clip` writes one (atomically); :func:`project_generation_dataset` turns any 3D generation
dataset (synthetic with captions, BVH imports, HumanML3D) into such a folder (the projection builder).

Batches (:func:`collate_motion2d`) extend :func:`~.generation.collate_generation`'s dict with
``joints2d [B, T, J, 2]`` and ``has3d [B]`` bool (False for 2D-only clips, whose ``motion`` is zeros).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from skeleton_diffusion.utils.errors import DataFormatError, InputError
from skeleton_diffusion.representations.projection2d import project_motion, random_azimuths

__all__ = ["PairedProjectionDataset", "Motion2DDataset", "collate_motion2d", "write_motion2d_clip",
           "project_generation_dataset"]


class PairedProjectionDataset(Dataset):
    """A 3D generation dataset whose items also carry ``joints2d [T, J, 2]``: the window seen from a view drawn
    per item (from ``azimuths``, or uniform around the body when None) by the global torch RNG."""

    def __init__(self, base: Any, *, azimuths: Optional[Sequence[float]] = None, distance: float = 10.0,
                 height: float = 1.0) -> None:
        self.base, self.distance, self.height = base, float(distance), float(height)
        self.azimuths = None if azimuths is None else [float(a) for a in azimuths]
        self.texts, self.num_frames, self.fps = base.texts, base.num_frames, base.fps
        self.num_joints = int(base.num_joints)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        it = dict(self.base[idx])
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        az = float(random_azimuths(np.random.default_rng(seed), 1, self.azimuths)[0])
        it["joints2d"] = torch.from_numpy(project_motion(it["motion"].numpy(), az, distance=self.distance,
                                                         height=self.height))
        it["has3d"] = True
        return it


class Motion2DDataset(Dataset):
    """2D-only clips of a folder (see module doc) cut/padded to ``num_frames``-frame items with ``has3d=False``."""

    def __init__(self, folder: str | Path, *, num_frames: int, num_joints: int, stride: Optional[int] = None,
                 max_clips: Optional[int] = None) -> None:
        self.folder = Path(folder).expanduser()
        files = sorted(self.folder.glob("*.npz"))
        if not files:
            raise DataFormatError(f"2D motion folder '{self.folder}' has no .npz clips (expected <clip>.npz with "
                                  "keypoints [T, J, 2] and text)")
        self.num_frames, self.num_joints = int(num_frames), int(num_joints)
        stride = int(stride or num_frames)
        self.clips: list[np.ndarray] = []
        self.texts: list[list[str]] = []
        self.windows: list[tuple[int, int, int]] = []
        for f in files[: max_clips or None]:
            kp, caps = _read_clip(f, self.num_joints)
            ci = len(self.clips)
            self.clips.append(kp)
            self.texts.append(caps)
            for s in range(0, max(1, kp.shape[0] - self.num_frames + 1), stride):
                self.windows.append((ci, s, min(self.num_frames, kp.shape[0] - s)))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        ci, s, n = self.windows[idx]
        kp = self.clips[ci][s:s + n]
        kp = kp - kp[:1, :1]
        out = np.zeros((self.num_frames, self.num_joints, 2), dtype=np.float32)
        out[:n] = kp
        out[n:] = kp[-1:]
        caps = self.texts[ci]
        text = caps[int(torch.randint(0, len(caps), (1,)).item())]
        return {"motion": torch.zeros(self.num_frames, self.num_joints, 3), "length": n, "action": 0,
                "text": text, "joints2d": torch.from_numpy(out), "has3d": False}


def _read_clip(path: Path, num_joints: int) -> tuple[np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "keypoints" not in z or "text" not in z:
                raise DataFormatError(f"2D clip '{path}' must contain keys 'keypoints' and 'text'; "
                                      f"found {sorted(z.files)}")
            kp = np.asarray(z["keypoints"], dtype=np.float32)
            text = z["text"]
    except DataFormatError:
        raise
    except Exception as e:  # zip/pickle/format errors
        raise DataFormatError(f"cannot read 2D clip '{path}': {e}") from e
    if kp.ndim != 3 or kp.shape[1] != num_joints or kp.shape[2] != 2 or kp.shape[0] < 2:
        raise DataFormatError(f"2D clip '{path}': 'keypoints' must be [T>=2, {num_joints}, 2], got {kp.shape}")
    if not np.isfinite(kp).all():
        raise DataFormatError(f"2D clip '{path}': 'keypoints' has NaN/inf values")
    caps = [str(t) for t in np.atleast_1d(text).tolist() if str(t).strip()]
    if not caps:
        raise DataFormatError(f"2D clip '{path}': 'text' is empty")
    return kp, caps


def collate_motion2d(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Items of :class:`PairedProjectionDataset` / :class:`Motion2DDataset` -> batch dict (module doc)."""
    from skeleton_diffusion.data.windows.generation import collate_generation

    batch = collate_generation(items)
    batch["joints2d"] = torch.stack([it["joints2d"] for it in items])
    batch["has3d"] = torch.tensor([bool(it.get("has3d", True)) for it in items], dtype=torch.bool)
    return batch


def write_motion2d_clip(path: str | Path, keypoints: np.ndarray, text: str | Sequence[str],
                        fps: Optional[float] = None) -> Path:
    """Write one 2D-only clip ``keypoints [T, J, 2]`` + caption(s) as ``path`` (.npz, atomic)."""
    from skeleton_diffusion.utils.io import atomic_write

    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[-1] != 2:
        raise InputError(f"keypoints must be [T, J, 2], got {kp.shape}")
    arrays: dict[str, Any] = {"keypoints": kp, "text": np.asarray([text] if isinstance(text, str) else list(text))}
    if fps is not None:
        arrays["fps"] = np.float32(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def project_generation_dataset(ds: Any, out_dir: str | Path, *, indices: Optional[Sequence[int]] = None,
                               azimuths: Optional[Sequence[float]] = None, distance: float = 10.0,
                               height: float = 1.0, seed: int = 0) -> list[Path]:
    """Projection builder: write windows ``indices`` (default all) of a 3D generation dataset as 2D-only clips in
    ``out_dir`` (one random view each, from ``azimuths`` or uniform; seeded), keeping their captions."""
    rng = np.random.default_rng(int(seed))
    idx = list(range(len(ds))) if indices is None else [int(i) for i in indices]
    az = random_azimuths(rng, len(idx), azimuths)
    paths = []
    for k, (i, a) in enumerate(zip(idx, az)):
        it = ds[i]
        n = int(it["length"])
        kp = project_motion(it["motion"].numpy()[:n], float(a), distance=distance, height=height)
        paths.append(write_motion2d_clip(Path(out_dir) / f"clip_{i:06d}.npz", kp, list(ds.texts[i]),
                                         fps=float(getattr(ds, "fps", math.nan))))
    return paths
