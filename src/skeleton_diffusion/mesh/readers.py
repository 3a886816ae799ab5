"""Read one joint sequence ``[T, 22, 3]`` (metres) from any motion file this package or the official code writes.

* ``predict`` output (``.npz``: ``pred [B, S, T, J, 3]``, ``obs [B, T_obs, J, 3]``): observation + sample
  (``part="all"``) or the sample alone (``part="pred"``);
* ``generate`` output (``.npz``: ``motion [B, S, T, J, 3]``): caption ``batch``, sample ``sample``;
* ``edit`` output (``.npz``: ``edited [S, T, J, 3]``): sample ``sample``;
* a plain ``[T, J, 3]`` array (``.npy``, or ``.npz`` key ``motion`` / its only array), e.g. CrossDiff's
  ``generate.py`` files ``<i>.npy`` / ``<i>_3dfrom2d.npy`` and the input of its ``fit_smpl.py``;
* MDM / CrossDiff ``results.npy`` (a pickled dict: ``motion [N, J, 3, T]``, ``lengths``, ``text``,
  ``num_samples``, ``num_repetitions``; also ``results.npz`` with ``arr_0``): row
  ``rep * num_samples + sample``, cut to its length. Read with an allow-listed unpickler, never ``allow_pickle``.

``J`` must be 22 (AMASS / HumanML3D order) or 52 (AMASS-MANO: the first 22 are used).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skeleton_diffusion.mesh.body_model import NUM_BODY_JOINTS
from skeleton_diffusion.mesh.safe_pickle import load_npy_object
from skeleton_diffusion.utils.errors import DataFormatError, InputError

__all__ = ["JointSequence", "load_joint_sequence", "OFFICIAL_FPS"]

OFFICIAL_FPS = 20.0  # HumanML3D frame rate of MDM / CrossDiff outputs
_SUPPORTED = ("our predict/generate/edit .npz (keys pred+obs, motion, edited), a plain [T, 22, 3] array in an "
              ".npy/.npz, or an MDM/CrossDiff results.npy (dict with 'motion' [N, 22, 3, T])")


@dataclass
class JointSequence:
    """``joints [T, 22, 3]`` metres, its frame rate (None if the file does not say), the file kind and a label."""

    joints: np.ndarray
    fps: float | None
    kind: str
    label: str


def _pick(arr: np.ndarray, index: int, axis_name: str, path: Path, key: str) -> np.ndarray:
    if not -arr.shape[0] <= index < arr.shape[0]:
        raise InputError(f"'{path}': {key} has {arr.shape[0]} {axis_name}s, --{axis_name} {index} is out of range")
    return arr[index]


def _body_joints(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[0] < 1:
        raise DataFormatError(f"'{path}': {key} must be [T, J, 3] joint positions, got shape {x.shape}")
    if x.shape[1] not in (NUM_BODY_JOINTS, 52):
        raise DataFormatError(
            f"'{path}': {key} has {x.shape[1]} joints; SMPL fitting needs the 22 AMASS/HumanML3D joints (first 22 "
            "SMPL joints, SMPL order, see docs/joint_orders.md) or the 52 AMASS-MANO joints")
    x = x[:, :NUM_BODY_JOINTS]
    if not np.isfinite(x).all():
        raise InputError(f"'{path}': {key} contains NaN or inf values")
    if np.abs(x).max() > 50:
        raise InputError(f"'{path}': {key} reaches {np.abs(x).max():.0f}; positions must be in metres "
                         "(divide millimetres by 1000, centimetres by 100)")
    return x.astype(np.float32)


def _fps(data: Any, default: float | None) -> float | None:
    try:
        return float(np.asarray(data["fps"]).reshape(-1)[0])
    except (KeyError, IndexError, ValueError, TypeError):
        return default


def _from_results_dict(d: dict, path: Path, sample: int, rep: int) -> JointSequence:
    if "motion" not in d:
        raise DataFormatError(f"'{path}' holds a dict with keys {sorted(map(str, d))}; expected {_SUPPORTED}")
    motion = np.asarray(d["motion"])
    if motion.ndim != 4 or motion.shape[2] != 3:
        raise DataFormatError(f"'{path}': 'motion' has shape {motion.shape}; the official layout is [N, J, 3, T] "
                              "joint positions (a rotation-representation file, nfeats 6, cannot be fitted)")
    num_samples = int(d.get("num_samples", motion.shape[0]))
    idx = int(rep) * num_samples + int(sample)
    if not (0 <= sample < num_samples and 0 <= idx < motion.shape[0]):
        raise InputError(f"'{path}': sample {sample}, repetition {rep} is row {idx}, but the file has "
                         f"{motion.shape[0]} rows ({num_samples} samples per repetition)")
    joints = motion[idx].transpose(2, 0, 1)
    lengths = d.get("lengths")
    if lengths is not None and len(np.asarray(lengths).reshape(-1)) > idx:
        joints = joints[: int(np.asarray(lengths).reshape(-1)[idx])]
    text = d.get("text")
    label = str(text[idx]) if isinstance(text, (list, tuple, np.ndarray)) and len(text) > idx else ""
    return JointSequence(_body_joints(joints, path, "motion"), OFFICIAL_FPS, "official-results",
                         label or f"sample {sample}, repetition {rep}")


def load_joint_sequence(path: str | Path, *, sample: int = 0, batch: int = 0, rep: int = 0,
                        part: str = "all") -> JointSequence:
    """Read one ``[T, 22, 3]`` sequence from ``path`` (any kind listed in the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"input file not found: '{path}' (expected {_SUPPORTED})")
    if part not in ("all", "pred"):
        raise InputError(f"part must be 'all' (observation + prediction) or 'pred', got {part!r}")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"PK"):
        try:
            npz = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DataFormatError(f"'{path}' is not a readable .npz ({exc}); expected {_SUPPORTED}") from None
        with npz:
            keys = list(npz.files)
            if keys == ["arr_0"] or ("arr_0" in keys and "motion" not in keys):
                with zipfile.ZipFile(path) as zf, zf.open("arr_0.npy") as member:
                    obj = load_npy_object(path, fh=member)
                if isinstance(obj, dict):
                    return _from_results_dict(obj, path, sample, rep)
                return JointSequence(_body_joints(obj, path, "arr_0"), None, "array", path.stem)
            fps = _fps(npz, None)
            if "pred" in keys:
                pred = _pick(_pick(npz["pred"], batch, "batch", path, "pred"), sample, "sample", path, "pred[b]")
                if part == "all" and "obs" in keys:
                    obs = _pick(npz["obs"], batch, "batch", path, "obs")
                    pred = np.concatenate([obs, pred], axis=0)
                return JointSequence(_body_joints(pred, path, "pred"), fps, "prediction",
                                     f"batch {batch}, sample {sample}")
            if "edited" in keys:
                edited = _pick(npz["edited"], sample, "sample", path, "edited")
                return JointSequence(_body_joints(edited, path, "edited"), fps, "edit", f"sample {sample}")
            if "motion" in keys and npz["motion"].ndim == 5:
                motion = _pick(_pick(npz["motion"], batch, "batch", path, "motion"), sample, "sample", path,
                               "motion[b]")
                label = f"caption {batch}, sample {sample}"
                if "captions" in keys and len(npz["captions"]) > batch:
                    label = f"{npz['captions'][batch]} (sample {sample})"
                return JointSequence(_body_joints(motion, path, "motion"), fps, "generation", label)
            if "motion" in keys or len(keys) == 1:
                key = "motion" if "motion" in keys else keys[0]
                return JointSequence(_body_joints(npz[key], path, key), fps, "array", path.stem)
            raise DataFormatError(f"'{path}' has arrays {keys}; expected {_SUPPORTED}")
    if not magic.startswith(b"\x93NUMPY"):
        raise DataFormatError(f"'{path}' is neither an .npy nor an .npz file; expected {_SUPPORTED}")
    obj = load_npy_object(path)
    if isinstance(obj, dict):
        return _from_results_dict(obj, path, sample, rep)
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        if obj.ndim == 4 and obj.shape[0] == 1:
            obj = obj[0]
        return JointSequence(_body_joints(obj, path, "array"), None, "array", path.stem)
    raise DataFormatError(f"'{path}' holds a {type(obj).__name__}; expected {_SUPPORTED}")
