"""Shared plumbing for the plotting modules: array coercion, limb layout, colours, canvases and 3D views.

Everything renders through a bare :class:`matplotlib.figure.Figure` attached to an Agg canvas, never through
``pyplot``: no global figure state, no GUI backend, safe in worker processes and on headless machines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from skeleton_diffusion.utils.errors import InputError

# Colours (left side, right side / centre). Observation and ground truth use the official dark grey, the
# highlighted (closest-to-GT) sample the official red; other samples are blue.
OBS_COLORS = ("#8c8c8c", "#383838")
GT_COLORS = ("#8c8c8c", "#383838")
SAMPLE_COLORS = ("#7fb2e5", "#1f5fa8")
HIGHLIGHT_COLORS = ("#f08080", "#d22b2b")

LEFT, RIGHT, CENTRE = 0, 1, 2
_RIGHT_NAME = re.compile(r"^R[A-Z]|right", re.IGNORECASE)


def to_numpy(x: Any, what: str = "array") -> np.ndarray:
    """Torch tensor / numpy array / nested list -> float64 numpy array (detached, on CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: expected a numeric array, got {type(x).__name__} ({exc})") from exc
    return arr


def squeeze_leading(arr: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """Drop leading size-1 dims until ``arr.ndim == ndim``; raise :class:`InputError` if impossible."""
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim or arr.shape[-1] != 3:
        raise InputError(
            f"{what}: expected {ndim} dims ending in 3 (xyz), got shape {tuple(arr.shape)}"
        )
    return arr


def joint_sides(skeleton) -> np.ndarray:
    """Per joint (root included): LEFT (``skeleton.left_right`` is False), RIGHT (name 'R…'/'right…'), CENTRE."""
    sides = []
    for name, not_left in zip(skeleton.joint_names, skeleton.left_right):
        if not not_left:
            sides.append(LEFT)
        elif _RIGHT_NAME.search(name):
            sides.append(RIGHT)
        else:
            sides.append(CENTRE)
    return np.asarray(sides, dtype=np.int64)


@dataclass(frozen=True)
class Layout:
    """How to draw poses with ``num_points`` points: limb index pairs and each limb's side."""

    num_points: int
    limbs: np.ndarray  # [L, 2] int
    limb_sides: np.ndarray  # [L] LEFT/RIGHT/CENTRE
    point_sides: np.ndarray  # [num_points]
    names: tuple[str, ...]
    includes_root: bool


def layout_for(skeleton, num_points: int, what: str = "poses") -> Layout:
    """Limb layout for poses of ``num_points`` joints: ``N`` nodes (metric space, root dropped) use
    ``skeleton.node_limbs``; ``J`` joints (root included) use ``skeleton.limbs``."""
    sides_j = joint_sides(skeleton)
    if num_points == skeleton.num_nodes:
        limbs, pt_sides, names, root = skeleton.node_limbs, sides_j[1:], tuple(skeleton.node_names), False
    elif num_points == skeleton.num_joints:
        limbs, pt_sides, names, root = skeleton.limbs, sides_j, tuple(skeleton.joint_names), True
    else:
        raise InputError(
            f"{what}: {num_points} joints do not match skeleton '{skeleton.name}' which has "
            f"{skeleton.num_joints} joints with the root or {skeleton.num_nodes} without it "
            "(see docs/joint_orders.md for the expected joint order)"
        )
    limbs_arr = np.asarray(limbs, dtype=np.int64).reshape(-1, 2)
    a, b = pt_sides[limbs_arr[:, 0]], pt_sides[limbs_arr[:, 1]]
    limb_sides = np.where(a == b, a, np.where(a == CENTRE, b, np.where(b == CENTRE, a, CENTRE)))
    return Layout(num_points, limbs_arr, limb_sides, pt_sides, names, root)


def limb_colors(layout: Layout, colors: tuple[str, str]) -> list[str]:
    """One colour per limb: ``colors[0]`` for left limbs, ``colors[1]`` for right and centre limbs."""
    return [colors[0] if s == LEFT else colors[1] for s in layout.limb_sides]


def segments(pose: np.ndarray, layout: Layout) -> np.ndarray:
    """``pose [K, 3]`` -> limb segments ``[L, 2, 3]``."""
    return np.stack([pose[layout.limbs[:, 0]], pose[layout.limbs[:, 1]]], axis=1)


def to_metric_nodes(poses: np.ndarray) -> np.ndarray:
    """``[..., J, 3]`` with the root at index 0 -> ``[..., J-1, 3]`` root-centred per frame, root dropped."""
    return poses[..., 1:, :] - poses[..., :1, :]


_UP = {
    "z": np.eye(3),
    "-z": np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]),
    "y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "-y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
}


def to_plot_coords(x: np.ndarray, up: str = "z") -> np.ndarray:
    """Rotate data so that its ``up`` axis becomes the plot's vertical (a proper rotation, no mirroring)."""
    if up not in _UP:
        raise ValueError(f"up must be one of {sorted(_UP)}, got {up!r}")
    if up == "z":
        return x
    # new coords: rows of the matrix pick (x, y, z) of the plot from the data axes
    return x @ _UP[up].T


def view_box(arrays: Sequence[np.ndarray], margin: float = 1.1) -> tuple[np.ndarray, float]:
    """Centre ``[3]`` and half-width of a cube containing every finite point of ``arrays`` (equal aspect)."""
    pts = np.concatenate([a.reshape(-1, 3) for a in arrays if a is not None and a.size], axis=0)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return np.zeros(3), 1.0
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    half = float(max((hi - lo).max() / 2 * margin, 1e-3))
    return centre, half


def new_figure(width_in: float, height_in: float, dpi: float) -> tuple[Figure, FigureCanvasAgg]:
    """A pyplot-free figure with an Agg canvas."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    return fig, canvas


def setup_3d_axis(ax, centre: np.ndarray, half: float, *, elev: float, azim: float, title: str | None = None,
                  show_axes: bool = True, fontsize: float = 8, zoom: float = 1.15) -> None:
    """Equal-aspect cube view around ``centre``; the plot's z axis is vertical. The title is drawn inside
    the axes (top centre) so panels can be packed without gaps."""
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1), zoom=zoom)
    ax.view_init(elev=elev, azim=azim)
    if show_axes:
        ax.tick_params(labelsize=fontsize * 0.6, pad=0)
        ax.set_xlabel("x", fontsize=fontsize * 0.8, labelpad=-8)
        ax.set_ylabel("y", fontsize=fontsize * 0.8, labelpad=-8)
        ax.set_zlabel("z", fontsize=fontsize * 0.8, labelpad=-8)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_ticklabels([])
    else:
        ax.set_axis_off()
    if title:
        ax.text2D(0.5, 0.99, title, transform=ax.transAxes, ha="center", va="top", fontsize=fontsize)


def canvas_to_array(canvas: FigureCanvasAgg) -> np.ndarray:
    """Current canvas pixels as ``[H, W, 3]`` uint8 (a copy)."""
    buf = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(buf[..., :3])


def ade_per_sample(samples: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """ADE per sample as in the metrics: per frame the L2 norm of the whole flattened pose difference,
    averaged over time. ``samples [S, T, K, 3]``, ``gt [T, K, 3]`` -> ``[S]`` (same units as the input)."""
    diff = (samples - gt[None]).reshape(samples.shape[0], samples.shape[1], -1)
    return np.linalg.norm(diff, axis=-1).mean(axis=-1)


def closest_sample_index(samples: Any, gt: Any) -> int:
    """Index of the sample with the smallest ADE to ``gt`` (``samples [S, T, K, 3]``, ``gt [T, K, 3]``)."""
    s = squeeze_leading(to_numpy(samples, "samples"), 4, "samples")
    g = squeeze_leading(to_numpy(gt, "gt"), 3, "gt")
    if s.shape[1:] != g.shape:
        raise InputError(f"samples {tuple(s.shape)} and gt {tuple(g.shape)} disagree on [T, K, 3]")
    return int(np.argmin(ade_per_sample(s, g)))
