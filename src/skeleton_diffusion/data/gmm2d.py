"""DiffPose's 2D Gaussian-mixture keypoint files (``data_2d_h36m_{gt,cpn_ft_h36m_dbb}_gmm.npz``).

Layout (VideoPose3D style): the npz member ``positions_2d`` is a 0-d object array holding
``{subject: {action: [array [T, J, K, 5] per camera]}}``; the last axis is (weight, u, v, var_u, var_v) of the K
kernels of each joint, u, v in pixels. The official loader (``create_2d_data``) screen-normalises **only the
means** (``[..., 1:3]``); the variances stay in the file's units and scale the u, v noise of training
(``PoseGenerator_gmm``: per joint one kernel drawn with probabilities = the weights; noise scale
``[var_u, var_v, 1, 1, 1]``).

The object array is read with an allow-listed unpickler (numpy arrays, dtypes, dicts, lists, strings and numbers
only), never with ``np.load(allow_pickle=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from skeleton_diffusion.data.safe_npz import read_npz_object
from skeleton_diffusion.utils.errors import DataFormatError

__all__ = [
    "read_npz_object", "load_gmm_2d", "normalize_gmm_means", "load_diffpose_gmm", "sample_gmm_kernels",
    "diffpose_gmm_items",
]

def load_gmm_2d(path: str | Path) -> dict[str, dict[str, list[np.ndarray]]]:
    """Raw GMM file -> ``{subject: {action: [float32 [T, J, K, 5] per camera]}}`` (u, v and variances in pixels)."""
    data = read_npz_object(path, "positions_2d")
    if not isinstance(data, Mapping):
        raise DataFormatError(f"{path}: 'positions_2d' must hold a dict subject -> action -> cameras, "
                              f"got {type(data).__name__}")
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in data.items():
        out[str(subject)] = {}
        for action, cams in actions.items():
            arrs = [np.asarray(c) for c in cams]
            for i, a in enumerate(arrs):
                if a.ndim != 4 or a.shape[-1] != 5:
                    raise DataFormatError(f"{path}: {subject}/{action} camera {i} has shape {a.shape}; expected "
                                          "[T, J, K, 5] = (weight, u, v, var_u, var_v) per kernel")
            out[str(subject)][str(action)] = arrs
    return out


def normalize_gmm_means(gmm: np.ndarray, res_w: int, res_h: int) -> np.ndarray:
    """Copy of ``gmm [..., 5]`` with u, v mapped to the official screen range (``x / w * 2 - [1, h / w]``);
    weights and variances unchanged (official ``create_2d_data``)."""
    out = np.array(gmm, copy=True)
    out[..., 1:3] = out[..., 1:3] / res_w * 2 - np.array([1.0, res_h / res_w], dtype=out.dtype)
    return out


def load_diffpose_gmm(path: str | Path, lengths: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
                      resolutions: Mapping[str, Sequence[tuple[int, int]]] | None = None
                      ) -> dict[str, dict[str, list[np.ndarray]]]:
    """GMM file -> normalised means (official ``create_2d_data``). ``lengths[subject][action][cam]`` (the 3D
    frame counts) truncates longer 2D tracks; ``resolutions[subject][cam] = (w, h)`` defaults to the published
    H36M camera resolutions."""
    from skeleton_diffusion.data.builders.h36m_cameras import camera_parameters

    raw = load_gmm_2d(path)
    for subject, actions in raw.items():
        for action, cams in actions.items():
            for c, arr in enumerate(cams):
                if lengths is not None and subject in lengths and action in lengths[subject]:
                    n = int(lengths[subject][action][c])
                    if arr.shape[0] < n:
                        raise DataFormatError(f"{path}: {subject}/{action} camera {c} has {arr.shape[0]} frames, "
                                              f"fewer than the {n} of the 3D data")
                    arr = arr[:n]
                if resolutions is not None:
                    w, h = resolutions[subject][c]
                else:
                    p = camera_parameters(subject, c)
                    w, h = int(p["res_w"]), int(p["res_h"])
                cams[c] = normalize_gmm_means(arr, w, h)
    return raw


def sample_gmm_kernels(gmm: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """One kernel per joint of ``gmm [J, K, 5]``, drawn with the weights as probabilities, in the official order
    (``rng.choice(K, 1, p=weights)`` joint by joint) -> ``[J, 5]`` float64."""
    gmm = np.asarray(gmm)
    if gmm.ndim != 3 or gmm.shape[-1] != 5:
        raise DataFormatError(f"a GMM frame must be [J, K, 5], got {gmm.shape}")
    out = np.zeros((gmm.shape[0], gmm.shape[2]))
    for j in range(gmm.shape[0]):
        out[j] = gmm[j, rng.choice(gmm.shape[1], 1, p=gmm[j, :, 0]).item()]
    return out


def diffpose_gmm_items(poses_3d: np.ndarray, gmm: np.ndarray, indices: Sequence[int],
                       rng: np.random.RandomState) -> dict[str, np.ndarray]:
    """Official ``PoseGenerator_gmm`` items at ``indices`` (drawn in that order) from the concatenated camera-frame
    ``poses_3d [N, J, 3]`` (metres, not centred) and normalised ``gmm [N, J, K, 5]`` -> float32
    ``uvxyz [n, J, 5]``, ``noise_scale [n, J, 5]``, ``input_2d [n, J, 2]``, ``target_3d [n, J, 3]`` (root-relative)."""
    if poses_3d.shape[0] != gmm.shape[0]:
        raise DataFormatError(f"3D poses ({poses_3d.shape[0]} frames) and GMM 2D ({gmm.shape[0]}) differ in length")
    centred = poses_3d - poses_3d[:, :1, :]
    items: dict[str, list[np.ndarray]] = {"uvxyz": [], "noise_scale": [], "input_2d": [], "target_3d": []}
    for i in indices:
        k = sample_gmm_kernels(gmm[i], rng)
        items["uvxyz"].append(np.concatenate([k[:, 1:3], centred[i]], axis=1))
        items["noise_scale"].append(np.concatenate([k[:, 3:], np.ones(centred[i].shape)], axis=1))
        items["input_2d"].append(k[:, 1:3])
        items["target_3d"].append(centred[i])
    return {key: np.stack(v).astype(np.float32) for key, v in items.items()}
