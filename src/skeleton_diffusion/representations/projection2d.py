"""3D motion -> 2D motion as a camera sees it, for CrossDiff (the official ``prepare/project.py`` idea: the same
3D clip seen from views around the body, far pinhole camera, 2D trajectory relative to the first frame's root).

Convention (our data: metres, Z up): a view is an azimuth ``a`` (radians) about the vertical axis. The camera
sits at horizontal distance ``distance`` from the first frame's root, at ``height`` metres, at
``root0 + distance * (cos a, sin a, 0)``, and looks horizontally at ``(root0_x, root0_y, height)``
(H18's :func:`~.builders.projection.look_at_rotation`: camera x right, y down, z forward). Points are projected
with a distortion-free pinhole (:func:`~.builders.projection.project_pinhole`) whose focal length equals
``distance``, so a point at the camera's aiming depth keeps its metric size; the image y axis is flipped (2D "up"
is +y) and the first frame's root is moved to the 2D origin. The official setting (4 views 90° apart, a far
narrow-field camera) is ``azimuths=(0, π/2, π, 3π/2)`` with a large ``distance``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.representations.camera import look_at_rotation, project_pinhole

__all__ = ["OFFICIAL_AZIMUTHS", "view_camera", "project_motion", "random_azimuths"]

#: the official four views (front, side, back, side)
OFFICIAL_AZIMUTHS = (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)


def view_camera(azimuth: float, root0: np.ndarray, *, distance: float = 10.0, height: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(R [3,3] world->camera, centre [3])`` of the view at ``azimuth`` around ``root0 [3]`` (metres)."""
    root0 = np.asarray(root0, dtype=np.float64)
    if root0.shape != (3,):
        raise InputError(f"root0 must be a [3] position, got {root0.shape}")
    centre = np.array([root0[0] + distance * math.cos(azimuth), root0[1] + distance * math.sin(azimuth), height])
    aim = np.array([root0[0], root0[1], height])
    return look_at_rotation(centre, aim, np.array([0.0, 0.0, 1.0])), centre


def project_motion(motion: np.ndarray, azimuth: float, *, distance: float = 10.0, height: float = 1.0,
                   relative: bool = True) -> np.ndarray:
    """World motion ``[T, J, 3]`` metres (Z up) -> 2D motion ``[T, J, 2]`` (metric units at the aiming depth;
    +x right, +y up in the image). ``relative``: subtract the first frame's root (joint 0) 2D position."""
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 3 or m.shape[-1] != 3:
        raise InputError(f"motion must be [T, J, 3] metres, got {m.shape}")
    if distance <= 0:
        raise InputError(f"camera distance must be > 0, got {distance}")
    R, centre = view_camera(azimuth, m[0, 0], distance=distance, height=height)
    cam = (m - centre) @ R.T
    uv = project_pinhole(cam, float(distance)).astype(np.float64)
    uv[..., 1] = -uv[..., 1]
    if relative:
        uv = uv - uv[:1, :1]
    return uv.astype(np.float32)


def random_azimuths(rng: np.random.Generator, n: int, azimuths: Optional[Sequence[float]] = None) -> np.ndarray:
    """``n`` views: drawn from the list ``azimuths`` (e.g. :data:`OFFICIAL_AZIMUTHS`), or uniform in [0, 2π)
    when it is None."""
    if azimuths is None:
        return rng.uniform(0.0, 2 * math.pi, size=int(n))
    az = np.asarray(list(azimuths), dtype=np.float64)
    if az.size == 0:
        raise InputError("azimuths must list at least one view")
    return az[rng.integers(0, az.size, size=int(n))]
