"""Static pictures: key-frame grids of samples, matrix heat maps, labelled skeletons, figure -> array.

All functions return ``uint8 [H, W, 3]`` images (ready for ``SummaryWriter.add_image(..., dataformats='HWC')``)
and optionally write a PNG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.utils.io import atomic_path
from skeleton_diffusion.viz._common import GT_COLORS, HIGHLIGHT_COLORS, LEFT, OBS_COLORS, SAMPLE_COLORS, layout_for, limb_colors, new_figure, segments, setup_3d_axis, squeeze_leading, to_numpy, view_box
from skeleton_diffusion.viz.animation import _publish, prepare_motion

__all__ = [
    "figure_to_image",
    "save_png",
    "sample_grid_image",
    "sample_grid_png",
    "plot_matrix",
    "skeleton_figure",
    "image_to_tensor",
]


def figure_to_image(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure (any backend) and return its pixels as ``uint8 [H, W, 3]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def image_to_tensor(image: np.ndarray):
    """``uint8 [H, W, 3]`` -> ``torch.uint8 [3, H, W]`` (``SummaryWriter.add_image`` default layout)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))


def save_png(image: np.ndarray, out_path: str | os.PathLike) -> Path:
    """Write ``uint8 [H, W, 3]`` as PNG atomically (optimised, small files)."""
    from PIL import Image

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG", optimize=True)
        _publish(tmp)
    return out_path


def _draw_pose(ax, pose: np.ndarray, layout, colors: tuple[str, str], lw: float = 1.8, alpha: float = 1.0):
    coll = Line3DCollection(segments(pose, layout), colors=limb_colors(layout, colors), linewidths=lw,
                            alpha=alpha, capstyle="round")
    ax.add_collection3d(coll)
    return coll


def sample_grid_image(samples: Any, skeleton, *, obs: Any = None, gt: Any = None, n_keyframes: int = 6,
                      frame_indices: Sequence[int] | None = None,
                      highlight: str | int | None = "closest_to_gt", max_samples: int | None = 5,
                      up: str = "z", elev: float = 15.0, azim: float = -60.0, cell_size: float = 1.3,
                      dpi: int = 80, title: str | None = None) -> np.ndarray:
    """Grid of key frames: rows = (ground truth, if given) + samples, columns = prediction time steps.

    ``samples [S, T_pred, K, 3]`` metres; ``obs [T_obs, K|J, 3]`` adds a first column with the last observed
    pose; ``gt [T_pred, K, 3]``. Key frames are ``frame_indices`` or ``n_keyframes`` evenly spaced steps
    ending at the last one. The highlighted sample (closest to GT by ADE by default) is red and first.
    Returns ``uint8 [H, W, 3]``."""
    s_np = to_numpy(samples, "samples")
    if s_np.ndim == 3:
        s_np = s_np[None]
    s_np = squeeze_leading(s_np, 4, "samples [S, T_pred, K, 3]")
    t_pred = s_np.shape[1]
    obs_np = None if obs is None else to_numpy(obs, "obs")
    # prepare_motion needs an observation; a one-frame dummy copy of the first predicted pose is hidden.
    pm = prepare_motion(obs_np if obs_np is not None else s_np[0, :1], s_np, skeleton, gt=gt,
                        highlight=highlight, max_samples=max_samples, up=up)
    if frame_indices is None:
        k = max(1, min(int(n_keyframes), t_pred))
        frame_indices = np.unique(np.linspace(t_pred / k - 1, t_pred - 1, k).round().astype(int)).tolist()
    frames = [int(f) for f in frame_indices]
    for f in frames:
        if not -t_pred <= f < t_pred:
            raise InputError(f"frame index {f} is outside the prediction (T_pred={t_pred})")
    rows: list[tuple[str, np.ndarray, tuple[str, str]]] = []
    if pm.gt is not None:
        rows.append(("GT", pm.gt, GT_COLORS))
    for i in range(pm.samples.shape[0]):
        name = f"#{pm.sample_ids[i]}" + (" *" if pm.highlight == i else "")
        if pm.ade is not None:
            name += f"\n{pm.ade[i]:.3f}"
        rows.append((name, pm.samples[i], HIGHLIGHT_COLORS if pm.highlight == i else SAMPLE_COLORS))
    with_obs = obs_np is not None
    n_cols = len(frames) + int(with_obs)
    label_w = 0.45
    top = 0.25 + (0.2 if title else 0.0)
    width, height = n_cols * cell_size + label_w, len(rows) * cell_size + top
    fig, _ = new_figure(width, height, dpi)
    centre, half = view_box([pm.obs[-1:] if with_obs else None, pm.samples[:, frames], pm.gt])
    if title:
        fig.text(0.5, 1 - 0.03 / height, title, ha="center", va="top", fontsize=8)
    col_titles = (["last obs"] if with_obs else []) + [f"t+{f % t_pred + 1}" for f in frames]
    for r, (name, seq, colors) in enumerate(rows):
        y0 = 1 - (top + (r + 1) * cell_size) / height
        fig.text(0.02 / width * label_w, y0 + 0.5 * cell_size / height, name, ha="left", va="center",
                 fontsize=7, color=colors[1])
        for c in range(n_cols):
            ax = fig.add_axes((label_w / width + c * cell_size / width, y0, cell_size / width, cell_size / height),
                              projection="3d")
            setup_3d_axis(ax, centre, half, elev=elev, azim=azim, show_axes=False, zoom=1.3)
            if with_obs and c == 0:
                _draw_pose(ax, pm.obs[-1], pm.layout, OBS_COLORS)
            else:
                _draw_pose(ax, seq[frames[c - int(with_obs)]], pm.layout, colors)
            if r == 0:
                fig.text(ax.get_position().x0 + 0.5 * cell_size / width, 1 - (top - 0.02) / height,
                         col_titles[c], ha="center", va="bottom", fontsize=7)
    return figure_to_image(fig)


def sample_grid_png(samples: Any, skeleton, out_path: str | os.PathLike, **kwargs: Any) -> Path:
    """:func:`sample_grid_image` written to ``out_path`` (PNG). Returns the path."""
    return save_png(sample_grid_image(samples, skeleton, **kwargs), out_path)


def plot_matrix(M: Any, names: Sequence[str] | None = None, title: str = "", out_path: str | os.PathLike | None = None,
                *, cmap: str = "viridis", annotate: bool | None = None, dpi: int = 100,
                cell_inches: float = 0.28) -> np.ndarray:
    """Heat map of a square matrix (e.g. a skeleton's adjacency, reachability or the diffusion Σ_N).

    ``M [N, N]``; ``names`` label rows and columns (length N); values are printed in the cells when
    ``annotate`` (default: N <= 24). Returns ``uint8 [H, W, 3]`` and writes a PNG if ``out_path`` is given."""
    m = to_numpy(M, "matrix")
    if m.ndim != 2:
        raise InputError(f"plot_matrix: expected a 2-D matrix, got shape {tuple(m.shape)}")
    n_r, n_c = m.shape
    if names is not None and (len(names) != n_r or (n_r == n_c and len(names) != n_c)):
        raise InputError(f"plot_matrix: {len(names)} names for a {n_r}x{n_c} matrix")
    annotate = (max(n_r, n_c) <= 24) if annotate is None else annotate
    side = max(3.0, cell_inches * max(n_r, n_c) + 1.6)
    fig, _ = new_figure(side + 0.8, side + (0.3 if title else 0.0), dpi)
    ax = fig.add_axes((1.3 / (side + 0.8), 1.3 / (side + 0.3), (side - 1.5) / (side + 0.8),
                       (side - 1.5) / (side + 0.3)))
    im = ax.imshow(m, cmap=cmap, interpolation="nearest")
    cax = fig.add_axes((ax.get_position().x1 + 0.02, ax.get_position().y0, 0.03, ax.get_position().height))
    fig.colorbar(im, cax=cax)
    cax.tick_params(labelsize=7)
    fs = max(4.0, min(8.0, 200.0 / max(n_r, n_c)))
    if names is not None:
        ax.set_xticks(range(n_c))
        ax.set_yticks(range(n_r))
        ax.set_xticklabels(names, rotation=90, fontsize=fs)
        ax.set_yticklabels(names, fontsize=fs)
    else:
        ax.tick_params(labelsize=fs)
    if annotate:
        finite = m[np.isfinite(m)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(n_r):
            for j in range(n_c):
                v = m[i, j]
                if v != 0:
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=fs * 0.8,
                            color="black" if v > mid else "white")
    if title:
        fig.text(0.5, 1 - 0.05 / (side + 0.3), title, ha="center", va="top", fontsize=9)
    img = figure_to_image(fig)
    if out_path is not None:
        save_png(img, out_path)
    return img


def _front_basis(pose_j: np.ndarray, skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(image-right, image-up) unit vectors for a front view of a Z-up pose with the root first: the
    person's left points to the image's right (we look at the person's face)."""
    names = [n.lower() for n in skeleton.joint_names]
    li = next((i for i, n in enumerate(names) if n in ("lhip", "left_hip")), None)
    ri = next((i for i, n in enumerate(names) if n in ("rhip", "right_hip")), None)
    up = np.array([0.0, 0.0, 1.0])
    left = pose_j[li] - pose_j[ri] if li is not None and ri is not None else np.array([1.0, 0.0, 0.0])
    left = left - left.dot(up) * up
    left = left / max(np.linalg.norm(left), 1e-9)
    return left, up


def skeleton_figure(skeleton, pose: Any, out_path: str | os.PathLike | None = None, *,
                    title: str | None = None, zoom_joints: Sequence[Sequence[int]] = (),
                    zoom_titles: Sequence[str] = (), dpi: int = 90, list_names: bool = True) -> np.ndarray:
    """Front view of one pose ``[J, 3]`` (root included, Z-up, metres) with every joint's index drawn next to
    it, optional zoomed panels (``zoom_joints``: lists of joint indices, e.g. a hand whose first entry is the
    wrist, which also stays in the main panel) and the list
    ``index: name`` beside it. Left-side limbs are light, right/centre limbs dark. Returns ``uint8 [H, W, 3]``."""
    p = squeeze_leading(to_numpy(pose, "pose"), 2, "pose [J, 3]")
    lay = layout_for(skeleton, p.shape[0], "pose")
    if not lay.includes_root:
        p = np.concatenate([np.zeros((1, 3)), p], axis=0)
        lay = layout_for(skeleton, p.shape[0], "pose")
    right, up = _front_basis(p, skeleton)
    uv = np.stack([p @ right, p @ up], axis=-1)  # [J, 2]
    n_j = len(uv)
    n_list_cols = 1 if n_j <= 26 else 2
    list_w = 1.9 * n_list_cols if list_names else 0.0
    body_w, body_h = 3.6, 4.4
    zoom_w = 2.4 * len(zoom_joints)
    W, H = body_w + zoom_w + list_w, body_h + 0.5
    fig, _ = new_figure(W, H, dpi)
    if title:
        fig.text(0.5, 1 - 0.05 / H, title, ha="center", va="top", fontsize=10)

    def panel(x0: float, w: float, joints: Sequence[int], ptitle: str | None, fs: float,
              both_ends: bool) -> None:
        ax = fig.add_axes((x0 / W, 0.02, w / W, body_h / H))
        ax.set_aspect("equal")
        ax.set_axis_off()
        sel = set(joints)
        segs, cols = [], []
        for (a, b), side in zip(lay.limbs, lay.limb_sides):
            if (a in sel and b in sel) if both_ends else (a in sel or b in sel):
                segs.append(uv[[a, b]])
                cols.append(OBS_COLORS[0] if side == LEFT else "#1f5fa8")
        ax.add_collection(LineCollection(segs, colors=cols, linewidths=2.0, capstyle="round"))
        pts = uv[list(joints)]
        ax.scatter(pts[:, 0], pts[:, 1], s=10, c="#d22b2b", zorder=3)
        span = np.ptp(pts, axis=0).max() if len(pts) > 1 else 0.1
        off = 0.024 * max(span, 0.05)
        for j in joints:
            ax.annotate(str(j), uv[j], xytext=(3, 2), textcoords="offset points", fontsize=fs,
                        color="black" if lay.point_sides[j] != LEFT else "#555555")
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.08 * max(span, 0.05) + off
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        if ptitle:
            ax.text(0.5, 1.0, ptitle, transform=ax.transAxes, ha="center", va="bottom", fontsize=8)

    # joints shown only in a zoom panel (the first joint of each zoom list, e.g. the wrist, stays in the body)
    zoomed = {j for z in zoom_joints for j in list(z)[1:]}
    body = [j for j in range(n_j) if j not in zoomed]
    panel(0.1, body_w - 0.2, body, "front view (the person faces you)", 7, both_ends=False)
    x = body_w
    for k, joints in enumerate(zoom_joints):
        panel(x + 0.1, 2.2, list(joints), zoom_titles[k] if k < len(zoom_titles) else None, 6.5, both_ends=True)
        x += 2.4
    if list_names:
        per_col = int(np.ceil(n_j / n_list_cols))
        for c in range(n_list_cols):
            lines = [f"{j:>2}: {skeleton.joint_names[j]}" for j in range(c * per_col, min(n_j, (c + 1) * per_col))]
            fig.text((x + 0.1 + 1.9 * c) / W, 1 - 0.6 / H, "\n".join(lines), ha="left", va="top",
                     fontsize=6.5 if n_j > 26 else 7.5, family="monospace", linespacing=1.25)
    img = figure_to_image(fig)
    if out_path is not None:
        save_png(img, out_path)
    return img

