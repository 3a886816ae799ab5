"""Human3.6M in the VideoPose3D layout (the files DiffPose and DiffHPE read) -> lifting sequences.

Files (numpy ``.npz`` holding pickled dicts):

* ``data_3d_h36m.npz``: key ``positions_3d``: ``{subject: {action: float32 [T, 32, 3]}}``, metres, world frame.
* ``data_2d_h36m_<detector>.npz`` (``gt``, ``cpn_ft_h36m_dbb``, ``detectron_ft_h36m``): key ``positions_2d``:
  ``{subject: {action: [4 cameras x float32 [T_c, 17, 2]]}}`` in **pixels**, and key ``metadata``:
  ``{'layout_name': 'h36m', 'num_joints': 17, 'keypoints_symmetry': [[left joints], [right joints]]}``.
  Detections may be a few frames longer than the mocap; they are cut to the mocap length (as VideoPose3D).

Lifting sequences: per (subject, action, camera), 3D in the camera frame of that camera, made root-relative
(joint 0 = pelvis at the origin), the 32 joints reduced to our 17-joint ``h36m`` skeleton
(:data:`H36M_32_TO_17`), and 2D normalised to the image width (``normalize_screen_coordinates``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError
from skeleton_diffusion.utils.io import atomic_path
from skeleton_diffusion.data.builders.h36m_cameras import NUM_CAMERAS, camera_parameters
from skeleton_diffusion.data.gmm2d import read_npz_object
from skeleton_diffusion.representations.camera import normalize_screen_coordinates, project_to_2d, world_to_camera

__all__ = [
    "H36M_32_TO_17", "TRAIN_SUBJECTS", "TEST_SUBJECTS", "KEYPOINTS_SYMMETRY", "DETECTORS",
    "load_videopose3d_3d", "load_videopose3d_2d", "write_videopose3d_3d", "write_videopose3d_2d",
    "lifting_sequences", "project_world_sequences",
]

#: Indices of the 32 mocap joints kept for the 17-joint skeleton (same order as ``get_skeleton('h36m')``).
H36M_32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
#: Left / right joints of the 17-joint layout (the 2D files' ``metadata['keypoints_symmetry']``).
KEYPOINTS_SYMMETRY = ((4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16))
DETECTORS = ("gt", "cpn_ft_h36m_dbb", "detectron_ft_h36m")


def _load_dict(path: Path, key: str) -> Any:
    """Member ``key`` (and ``metadata`` when present) of a VideoPose3D npz; the pickled dicts are read with the
    allow-listed unpickler of :func:`~skeleton_diffusion.data.gmm2d.read_npz_object` (never ``allow_pickle``)."""
    if not path.is_file():
        raise DataFormatError(f"'{path}' does not exist (expected a VideoPose3D-format file with key '{key}')")
    with np.load(path, allow_pickle=False) as f:
        names = list(f.files)
    if key not in names:
        raise DataFormatError(f"'{path}': expected key '{key}', found {names}")
    out = read_npz_object(path, key)
    meta = read_npz_object(path, "metadata") if "metadata" in names else None
    return out, meta


def load_videopose3d_3d(path: str | Path, num_joints: int = 32) -> dict[str, dict[str, np.ndarray]]:
    """``positions_3d`` of ``data_3d_h36m.npz`` -> ``{subject: {action: float32 [T, num_joints, 3]}}`` (checked)."""
    path = Path(path)
    data, _ = _load_dict(path, "positions_3d")
    if not isinstance(data, Mapping):
        raise DataFormatError(f"'{path}': 'positions_3d' must be a dict subject -> action -> array")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in data.items():
        out[str(subject)] = {}
        for action, arr in actions.items():
            arr = np.asarray(arr)
            if arr.ndim != 3 or arr.shape[1:] != (num_joints, 3):
                raise DataFormatError(f"'{path}': positions_3d[{subject}][{action}] has shape {arr.shape}, "
                                      f"expected [T, {num_joints}, 3]")
            out[str(subject)][str(action)] = arr.astype(np.float32)
    return out


def load_videopose3d_2d(path: str | Path) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, Any]]:
    """``data_2d_h36m_<det>.npz`` -> (``{subject: {action: [4 x float32 [T, 17, 2]]}}`` pixels, metadata)."""
    path = Path(path)
    data, meta = _load_dict(path, "positions_2d")
    if meta is None:
        raise DataFormatError(f"'{path}': missing key 'metadata' (layout_name, num_joints, keypoints_symmetry)")
    for key in ("layout_name", "num_joints", "keypoints_symmetry"):
        if key not in meta:
            raise DataFormatError(f"'{path}': metadata lacks '{key}' (found {sorted(meta)})")
    j = int(meta["num_joints"])
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in data.items():
        out[str(subject)] = {}
        for action, cams in actions.items():
            if len(cams) != NUM_CAMERAS:
                raise DataFormatError(f"'{path}': positions_2d[{subject}][{action}] has {len(cams)} cameras, "
                                      f"expected {NUM_CAMERAS}")
            arrs = []
            for c, arr in enumerate(cams):
                arr = np.asarray(arr)
                if arr.ndim != 3 or arr.shape[1] != j or arr.shape[2] < 2:
                    raise DataFormatError(f"'{path}': positions_2d[{subject}][{action}][{c}] has shape "
                                          f"{arr.shape}, expected [T, {j}, 2]")
                arrs.append(arr[..., :2].astype(np.float32))
            out[str(subject)][str(action)] = arrs
    return out, dict(meta)


def write_videopose3d_3d(path: str | Path, positions_3d: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Write ``data_3d_*.npz`` in the VideoPose3D layout (atomic)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, positions_3d={s: dict(a) for s, a in positions_3d.items()})
    return path


def write_videopose3d_2d(path: str | Path, positions_2d: Mapping[str, Mapping[str, list[np.ndarray]]],
                         metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``data_2d_h36m_<det>.npz`` (``positions_2d`` + ``metadata``) in the VideoPose3D layout (atomic)."""
    path = Path(path)
    meta = dict(metadata or {"layout_name": "h36m", "num_joints": 17,
                             "keypoints_symmetry": [list(KEYPOINTS_SYMMETRY[0]), list(KEYPOINTS_SYMMETRY[1])]})
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, positions_2d={s: {a: list(c) for a, c in acts.items()}
                                               for s, acts in positions_2d.items()}, metadata=meta)
    return path


def _sequence(pose3d_cam: np.ndarray, pose2d: np.ndarray, subject: str, action: str, camera: int) -> dict[str, Any]:
    pose3d_cam = pose3d_cam - pose3d_cam[:, :1]  # root-relative
    return {"pose_3d": pose3d_cam.astype(np.float32), "pose_2d": pose2d.astype(np.float32), "subject": subject,
            "action": action, "camera": int(camera)}


def lifting_sequences(positions_3d: Mapping[str, Mapping[str, np.ndarray]],
                      positions_2d: Mapping[str, Mapping[str, list[np.ndarray]]],
                      subjects: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """VideoPose3D 3D (``[T, 32, 3]`` world) + 2D (pixels) -> per (subject, action, camera) lifting sequences
    ``{'pose_3d': [T, 17, 3] camera frame root-relative m, 'pose_2d': [T, 17, 2] normalised, subject, action,
    camera}``. Every 3D (subject, action) must have 2D for all 4 cameras, at least as long as the mocap."""
    out = []
    for subject in (subjects or positions_3d.keys()):
        if subject not in positions_3d:
            raise DataFormatError(f"subject {subject} is missing from the 3D file")
        if subject not in positions_2d:
            raise DataFormatError(f"subject {subject} is missing from the 2D detections file")
        for action, world in positions_3d[subject].items():
            if action not in positions_2d[subject]:
                raise DataFormatError(f"action {action!r} of subject {subject} is missing from the 2D detections")
            world17 = world[:, list(H36M_32_TO_17)] if world.shape[1] == 32 else world
            for c in range(NUM_CAMERAS):
                cam = camera_parameters(subject, c)
                kps = positions_2d[subject][action][c]
                if kps.shape[0] < world17.shape[0]:
                    raise DataFormatError(f"2D of {subject}/{action}/camera {c} has {kps.shape[0]} frames, fewer "
                                          f"than the mocap's {world17.shape[0]}")
                kps = normalize_screen_coordinates(kps[: world17.shape[0]], cam["res_w"], cam["res_h"])
                pose_cam = world_to_camera(world17, cam["orientation"], cam["translation"])
                out.append(_sequence(pose_cam, kps, subject, action, c))
    return out


def project_world_sequences(positions_3d: Mapping[str, Mapping[str, np.ndarray]],
                            subjects: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Our processed H36M (``{subject: {action: [T, 17, 3]}}`` world metres, or the 32-joint file) -> lifting
    sequences whose 2D is the projection through the published cameras (distortion included): the ``gt`` 2D."""
    out = []
    for subject in (subjects or positions_3d.keys()):
        for action, world in positions_3d[subject].items():
            world17 = world[:, list(H36M_32_TO_17)] if world.shape[1] == 32 else np.asarray(world)
            if world17.shape[1] != 17:
                raise DataFormatError(f"{subject}/{action}: expected 17 or 32 joints, got {world17.shape}")
            for c in range(NUM_CAMERAS):
                cam = camera_parameters(subject, c)
                pose_cam = world_to_camera(world17, cam["orientation"], cam["translation"])
                kps = project_to_2d(pose_cam, cam["intrinsic"])
                out.append(_sequence(pose_cam, kps, subject, action, c))
    return out
