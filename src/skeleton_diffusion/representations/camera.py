"""3D -> 2D camera geometry for the lifting task (pure numpy functions).

Conventions (VideoPose3D's, which DiffPose and DiffHPE read):

* quaternions are ``(w, x, y, z)``; a camera's ``orientation`` rotates camera coordinates into world
  coordinates and ``translation`` is the camera centre in world coordinates (metres);
* camera frame: x right, y down, z forward (depth > 0 in front of the camera);
* 2D keypoints are normalised to the image width: ``[0, w] -> [-1, 1]``, y scaled by the same factor
  (:func:`normalize_screen_coordinates`), so a normalised focal length is ``f_px / w * 2``.
"""

from __future__ import annotations

import numpy as np

from skeleton_diffusion.utils.errors import InputError

__all__ = [
    "qrot", "qinverse", "quaternion_to_matrix", "world_to_camera", "camera_to_world", "project_to_2d",
    "project_pinhole", "normalize_screen_coordinates", "image_coordinates", "look_at_rotation",
    "sample_pinhole_cameras",
]


def _check_last(x: np.ndarray, n: int, name: str) -> None:
    if x.shape[-1] != n:
        raise InputError(f"{name} must have {n} values in its last axis, got shape {tuple(x.shape)}")


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v [..., 3]`` by unit quaternions ``q [..., 4]`` (w, x, y, z; broadcast)."""
    q, v = np.asarray(q, dtype=np.float64), np.asarray(v, dtype=np.float64)
    _check_last(q, 4, "q")
    _check_last(v, 3, "v")
    w, u = q[..., :1], q[..., 1:]
    uv = np.cross(np.broadcast_to(u, v.shape), v)
    uuv = np.cross(np.broadcast_to(u, v.shape), uv)
    return v + 2.0 * (w * uv + uuv)


def qinverse(q: np.ndarray) -> np.ndarray:
    """Inverse of unit quaternions ``[..., 4]`` (the conjugate)."""
    q = np.asarray(q, dtype=np.float64)
    _check_last(q, 4, "q")
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[..., 3, 3]`` of unit quaternions ``[..., 4]`` (w, x, y, z)."""
    q = np.asarray(q, dtype=np.float64)
    eye = np.eye(3)
    return np.stack([qrot(q, eye[i]) for i in range(3)], axis=-1)


def world_to_camera(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """World points ``x [..., 3]`` (metres) -> camera frame ``[..., 3]``: ``R(q)^T (x - t)``; keeps float32."""
    out = qrot(qinverse(orientation), np.asarray(x, dtype=np.float64) - np.asarray(translation, dtype=np.float64))
    return out.astype(np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float32)


def camera_to_world(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_camera`."""
    out = qrot(orientation, x) + np.asarray(translation, dtype=np.float64)
    return out.astype(np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float32)


def project_to_2d(x: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """Human3.6M camera model: camera-frame points ``x [..., 3]`` -> image points ``[..., 2]``.

    ``intrinsic [9] = (fx, fy, cx, cy, k1, k2, k3, p1, p2)``: with normalised intrinsics (as
    :func:`~skeleton_diffusion.data.builders.h36m_cameras.camera_parameters` returns) the result is in
    normalised screen coordinates. Normalised image-plane coordinates ``x/z`` are clipped to [-1, 1] (as the
    reference implementation) before radial (k1 r² + k2 r⁴ + k3 r⁶) and tangential distortion."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(intrinsic, dtype=np.float64)
    _check_last(x, 3, "points")
    if k.shape != (9,):
        raise InputError(f"intrinsic must be [9] (fx, fy, cx, cy, k1, k2, k3, p1, p2), got {tuple(k.shape)}")
    f, c, rad, tan = k[:2], k[2:4], k[4:7], k[7:]
    xx = np.clip(x[..., :2] / x[..., 2:], -1.0, 1.0)
    r2 = np.sum(xx ** 2, axis=-1, keepdims=True)
    radial = 1.0 + rad[0] * r2 + rad[1] * r2 ** 2 + rad[2] * r2 ** 3
    tangential = np.sum(tan * xx, axis=-1, keepdims=True)
    return (f * (xx * (radial + tangential) + tan * r2) + c).astype(np.float32)


def project_pinhole(x: np.ndarray, focal: np.ndarray | float, center: np.ndarray | float = 0.0) -> np.ndarray:
    """Distortion-free pinhole projection ``f * (x/z, y/z) + c`` of camera-frame points ``[..., 3]`` -> ``[..., 2]``."""
    x = np.asarray(x, dtype=np.float64)
    _check_last(x, 3, "points")
    if np.any(x[..., 2] <= 1e-6):
        raise InputError("points behind (or on) the camera plane: every depth x[..., 2] must be > 0")
    return (np.asarray(focal) * x[..., :2] / x[..., 2:] + np.asarray(center)).astype(np.float32)


def normalize_screen_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels ``[..., 2]`` -> width-normalised coordinates: ``[0, w] -> [-1, 1]``, aspect ratio kept."""
    x = np.asarray(x)
    _check_last(x, 2, "keypoints")
    return (x / w * 2 - np.array([1.0, h / w])).astype(np.float32)


def image_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates` (normalised -> pixels)."""
    x = np.asarray(x)
    _check_last(x, 2, "keypoints")
    return ((x + np.array([1.0, h / w])) * w / 2).astype(np.float32)


def look_at_rotation(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World->camera rotation ``[3, 3]`` (rows = camera x right, y down, z forward) of a camera at ``position``
    looking at ``target`` with world ``up`` direction."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))  # right = forward x up (right-handed, y down)
    if np.linalg.norm(x) < 1e-8:
        raise InputError("camera looks along the up axis; cannot build a look-at rotation")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def sample_pinhole_cameras(rng: np.random.Generator, n: int, target: np.ndarray, *, up_axis: int = 2,
                           distance: tuple[float, float] = (4.0, 6.0), height: tuple[float, float] = (0.8, 2.0),
                           focal_px: tuple[float, float] = (1100.0, 1200.0), res: int = 1000
                           ) -> list[dict[str, np.ndarray | float | int]]:
    """``n`` random H36M-like cameras around ``target [3]`` (world, metres): azimuth uniform, distance and camera
    height (above the floor along ``up_axis``) uniform in the given ranges, square ``res`` px images, principal
    point at the centre. Returns dicts with ``R [3,3]`` (world->camera), ``t [3]`` (camera centre),
    ``focal`` (normalised, ``f_px / res * 2``), ``focal_px``, ``res_w``, ``res_h``."""
    up = np.zeros(3)
    up[up_axis] = 1.0
    horiz = [a for a in range(3) if a != up_axis]
    cams = []
    for _ in range(int(n)):
        az = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(*distance)
        pos = np.array(target, dtype=np.float64).copy()
        pos[horiz[0]] += d * np.cos(az)
        pos[horiz[1]] += d * np.sin(az)
        pos[up_axis] = rng.uniform(*height)
        aim = np.array(target, dtype=np.float64).copy()
        f_px = rng.uniform(*focal_px)
        cams.append({"R": look_at_rotation(pos, aim, up), "t": pos, "focal": f_px / res * 2, "focal_px": f_px,
                     "res_w": res, "res_h": res})
    return cams
