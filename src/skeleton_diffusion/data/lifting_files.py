"""The official lifting test data: Human3.6M in the VideoPose3D files, as DiffPose and DiffHPE read them.

* :func:`load_official_test_sequences`: ``data_3d_h36m.npz`` + one 2D file (plain VideoPose3D detections
  ``data_2d_h36m_<det>.npz`` or DiffPose's GMM file ``*_gmm.npz``) -> per (subject, action, camera) sequences in
  the official order (subject list order, then the 3D file's action order, then cameras 0..3);
* :func:`read_error_stats`: DiffHPE's anisotropic-noise statistics (``err_var`` / ``err_ave`` ``.npy``).

Everything is read without arbitrary unpickling (:func:`~skeleton_diffusion.data.gmm2d.read_npz_object`,
``np.load(allow_pickle=False)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.data.builders.h36m_cameras import NUM_CAMERAS, camera_parameters
from skeleton_diffusion.data.builders.videopose3d import (
    H36M_32_TO_17,
    TEST_SUBJECTS,
    load_videopose3d_2d,
    load_videopose3d_3d,
)
from skeleton_diffusion.data.gmm2d import load_diffpose_gmm
from skeleton_diffusion.representations.camera import normalize_screen_coordinates, world_to_camera
from skeleton_diffusion.utils.errors import DataFormatError, FileAccessError

__all__ = ["DATA_3D", "is_gmm_file", "load_official_test_sequences", "read_error_stats"]

DATA_3D = "data_3d_h36m.npz"


def is_gmm_file(name: str | Path) -> bool:
    """DiffPose's GMM 2D files end in ``_gmm.npz``."""
    return Path(name).name.endswith("_gmm.npz")


def load_official_test_sequences(data_dir: str | Path, test_2d: str, *, subjects: Sequence[str] = TEST_SUBJECTS,
                                 actions: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``data_dir/data_3d_h36m.npz`` + ``data_dir/<test_2d>`` -> list of sequences ``{'subject', 'action',
    'camera', 'pose_3d' [T, 17, 3] camera frame root-relative m, 'pose_2d' [T, 17, 2] screen-normalised,
    'gmm' [T, 17, K, 5] (means normalised) or None}``. 2D tracks are cut to the mocap length (as officially).
    ``actions`` keeps only the actions whose base name (text before a space) is listed."""
    data_dir = Path(data_dir).expanduser()
    path_3d, path_2d = data_dir / DATA_3D, data_dir / test_2d
    for p in (path_3d, path_2d):
        if not p.is_file():
            raise FileAccessError(f"cannot access '{p}': no such file (the official lifting test needs the "
                                  f"VideoPose3D files '{DATA_3D}' and '{test_2d}' in task.official.data_dir)")
    pos3d = load_videopose3d_3d(path_3d)
    lengths = {s: {a: [arr.shape[0]] * NUM_CAMERAS for a, arr in acts.items()} for s, acts in pos3d.items()}
    gmm = load_diffpose_gmm(path_2d, lengths=lengths) if is_gmm_file(test_2d) else None
    pos2d = None if gmm is not None else load_videopose3d_2d(path_2d)[0]
    keep = None if actions is None else {str(a) for a in actions}
    out: list[dict[str, Any]] = []
    for subject in subjects:
        if subject not in pos3d:
            raise DataFormatError(f"'{path_3d}': subject {subject} is missing (found {sorted(pos3d)})")
        src2d = gmm if gmm is not None else pos2d
        if subject not in src2d:
            raise DataFormatError(f"'{path_2d}': subject {subject} is missing (found {sorted(src2d)})")
        for action, world in pos3d[subject].items():
            if keep is not None and action.split(" ")[0] not in keep:
                continue
            if action not in src2d[subject]:
                raise DataFormatError(f"'{path_2d}': {subject}/{action} is missing")
            world17 = world[:, list(H36M_32_TO_17)] if world.shape[1] == 32 else world
            t = world17.shape[0]
            for c in range(NUM_CAMERAS):
                cam = camera_parameters(subject, c)
                pose = world_to_camera(world17, cam["orientation"], cam["translation"])
                pose = (pose - pose[:, :1]).astype(np.float32)
                if gmm is not None:
                    g = np.asarray(gmm[subject][action][c], dtype=np.float32)
                    if g.shape[1] != 17:
                        raise DataFormatError(f"'{path_2d}': {subject}/{action} camera {c} has {g.shape[1]} joints, "
                                              "expected 17")
                    kps = g[..., 0, 1:3] if g.shape[2] == 1 else None
                    out.append({"subject": subject, "action": action, "camera": c, "pose_3d": pose,
                                "pose_2d": kps, "gmm": g})
                    continue
                kps = src2d[subject][action][c]
                if kps.shape[0] < t:
                    raise DataFormatError(f"'{path_2d}': {subject}/{action} camera {c} has {kps.shape[0]} frames, "
                                          f"fewer than the mocap's {t}")
                kps = normalize_screen_coordinates(kps[:t], cam["res_w"], cam["res_h"]).astype(np.float32)
                out.append({"subject": subject, "action": action, "camera": c, "pose_3d": pose, "pose_2d": kps,
                            "gmm": None})
    if not out:
        raise DataFormatError(f"no test sequences in '{path_3d}' for subjects {list(subjects)}"
                              + (f" and actions {sorted(keep)}" if keep else ""))
    return out


def read_error_stats(path: str | Path, num_joints: int | None = None) -> Tensor:
    """A DiffHPE ``err_var`` / ``err_ave`` ``.npy`` file -> float32 ``[J, 3]`` tensor (``allow_pickle=False``):
    the per joint × coordinate variance / mean of the 2D-lifting error that shapes DiffHPE's anisotropic noise."""
    path = Path(path).expanduser()
    try:
        arr = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise FileAccessError(f"cannot access '{path}': {exc}") from exc
    except ValueError as exc:
        raise DataFormatError(f"'{path}' is not a plain numpy array file ({exc}); DiffHPE's err_var/err_ave files "
                              "are [J, 3] float arrays") from exc
    if arr.ndim == 1 and arr.size % 3 == 0:
        arr = arr.reshape(-1, 3)
    if arr.ndim != 2 or arr.shape[1] != 3 or (num_joints is not None and arr.shape[0] != num_joints):
        want = f"[{num_joints if num_joints is not None else 'J'}, 3]"
        raise DataFormatError(f"'{path}' holds an array of shape {arr.shape}; expected {want} per joint x "
                              "coordinate error statistics (DiffHPE err_var_path / err_ave_path)")
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise DataFormatError(f"'{path}' must hold finite floats, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)).float()
