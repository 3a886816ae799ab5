"""Quick look without Blender: the fitted mesh (shaded triangles, matplotlib) beside the skeleton, as a GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skeleton_diffusion.utils.errors import InputError

__all__ = ["guess_up_axis", "render_mesh_frames", "render_mesh_gif"]

_MESH_RGB = np.array([0.55, 0.68, 0.85])
_LIGHT = np.array([0.3, -0.6, 0.75])


def guess_up_axis(joints: np.ndarray) -> str:
    """The data axis (``z``, ``-z``, ``y``, ``-y``) closest to the mean pelvis -> head direction."""
    d = (np.asarray(joints)[:, 15] - np.asarray(joints)[:, 0]).mean(0)
    axis = int(np.argmax(np.abs(d[1:]))) + 1  # y or z (the plot helpers rotate these)
    return ("-" if d[axis] < 0 else "") + "xyz"[axis]


def _shade(tris: np.ndarray) -> np.ndarray:
    """Per-triangle RGB: ambient + Lambert term of a fixed light (two-sided)."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lam = np.abs(n @ (_LIGHT / np.linalg.norm(_LIGHT)))
    return np.clip(_MESH_RGB[None] * (0.35 + 0.75 * lam[:, None]), 0, 1)


def render_mesh_frames(vertices: Any, faces: Any, joints: Any, *, up: str = "auto", stride: int = 1,
                       size_px: tuple[int, int] = (720, 360), elev: float = 12.0, azim: float = -70.0,
                       title: str | None = None) -> np.ndarray:
    """Frames ``uint8 [F, H, W, 3]``: mesh (left) and skeleton (right) for every ``stride``-th frame.
    ``vertices [T, V, 3]``, ``faces [F, 3]``, ``joints [T, 22, 3]`` metres; ``up`` = data up axis or ``auto``."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

    from skeleton_diffusion.skeletons import get_skeleton
    from skeleton_diffusion.viz._common import (GT_COLORS, canvas_to_array, layout_for, limb_colors, new_figure,
                                                segments, setup_3d_axis, to_plot_coords, view_box)

    verts, joints = np.asarray(vertices, dtype=np.float64), np.asarray(joints, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if verts.ndim != 3 or joints.ndim != 3 or len(verts) != len(joints):
        raise InputError(f"vertices {verts.shape} and joints {joints.shape} must be [T, V, 3] and [T, 22, 3]")
    up = guess_up_axis(joints) if up == "auto" else up
    verts, joints = to_plot_coords(verts, up), to_plot_coords(joints, up)
    layout = layout_for(get_skeleton("amass"), joints.shape[1], "joints")
    centre, half = view_box([verts, joints], margin=1.05)
    dpi = 100
    fig, canvas = new_figure(size_px[0] / dpi, size_px[1] / dpi, dpi)
    fig.subplots_adjust(0, 0, 1, 1, 0, 0)
    ax_m = fig.add_subplot(1, 2, 1, projection="3d")
    ax_s = fig.add_subplot(1, 2, 2, projection="3d")
    for ax, name in ((ax_m, "SMPL fit"), (ax_s, "joints")):
        setup_3d_axis(ax, centre, half, elev=elev, azim=azim, show_axes=False,
                      title=f"{title} — {name}" if title else name)
    mesh = Poly3DCollection(verts[0][faces], linewidths=0, edgecolors="none")
    ax_m.add_collection3d(mesh)
    bones = Line3DCollection(segments(joints[0], layout), colors=limb_colors(layout, GT_COLORS), linewidths=2.5)
    ax_s.add_collection3d(bones)
    label = fig.text(0.01, 0.01, "", fontsize=8)
    out = []
    for t in range(0, len(verts), max(1, int(stride))):
        tris = verts[t][faces]
        mesh.set_verts(tris)
        mesh.set_facecolor(_shade(tris))
        bones.set_segments(segments(joints[t], layout))
        label.set_text(f"frame {t}")
        canvas.draw()
        out.append(canvas_to_array(canvas))
    return np.stack(out)


def render_mesh_gif(out_path: str | Path, vertices: Any, faces: Any, joints: Any, *, fps: float = 20.0,
                    max_frames: int = 60, **kwargs: Any) -> Path:
    """Write the GIF of :func:`render_mesh_frames`; at most ``max_frames`` frames (evenly strided, timing kept)."""
    from skeleton_diffusion.viz.animation import save_gif

    n = len(np.asarray(joints))
    stride = max(1, int(np.ceil(n / max(1, int(max_frames)))))
    frames = render_mesh_frames(vertices, faces, joints, stride=stride, **kwargs)
    return save_gif(frames, Path(out_path).expanduser(), fps=float(fps) / stride)
