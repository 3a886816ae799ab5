"""Headless skeleton animations: observation followed by predicted futures, written to GIF or MP4.

Rendering uses one matplotlib Agg figure for the whole clip: the static parts (axes, panes, titles) are drawn
once and every frame only restores that background and redraws one line collection per drawn skeleton
(blitting), so a 150-frame clip with several panels renders in about a second.

Main entry points:

* :func:`render_prediction_frames` -> ``uint8 [F, H, W, 3]`` with ``F = T_obs + T_pred``;
* :func:`animate_prediction` -> renders and writes ``out_path`` (``.gif`` always works; ``.mp4`` needs an
  ``ffmpeg`` executable and falls back to GIF with a warning when there is none);
* :func:`tensorboard_animation` -> ``uint8 tensor [1, F, 3, H, W]`` for ``SummaryWriter.add_video``, and
  :func:`add_video` which logs such a tensor as an animated GIF without needing ``moviepy``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mpl_toolkits.mplot3d.art3d import Line3DCollection

from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.utils.io import atomic_path
from skeleton_diffusion.viz._common import GT_COLORS, HIGHLIGHT_COLORS, OBS_COLORS, SAMPLE_COLORS, Layout, ade_per_sample, canvas_to_array, layout_for, limb_colors, new_figure, segments, setup_3d_axis, squeeze_leading, to_metric_nodes, to_numpy, to_plot_coords, view_box

Mode = Literal["side_by_side", "overlay"]

__all__ = [
    "PreparedMotion",
    "prepare_motion",
    "render_prediction_frames",
    "animate_prediction",
    "save_animation",
    "save_gif",
    "encode_gif",
    "save_mp4",
    "ffmpeg_executable",
    "frames_to_video_tensor",
    "tensorboard_animation",
    "add_video",
]


# ---------------------------------------------------------------------------------------------------------
# Input preparation
# ---------------------------------------------------------------------------------------------------------
@dataclass
class PreparedMotion:
    """Validated numpy arrays in one common space (plot coordinates) plus what to show.

    ``obs [T_o, K, 3]``, ``samples [S', T_p, K, 3]`` (only the shown samples, in display order),
    ``gt [T_p, K, 3] | None``; ``sample_ids`` are the original indices of the shown samples;
    ``highlight`` is the position in ``samples`` of the highlighted sample (or ``None``); ``ade`` holds the
    ADE of each shown sample to ``gt`` (data units) when ``gt`` is known.
    """

    obs: np.ndarray
    samples: np.ndarray
    gt: np.ndarray | None
    layout: Layout
    sample_ids: list[int]
    highlight: int | None
    ade: np.ndarray | None = field(default=None)


def prepare_motion(obs: Any, samples: Any, skeleton, *, gt: Any = None,
                   highlight: str | int | None = "closest_to_gt", max_samples: int | None = 6,
                   up: str = "z") -> PreparedMotion:
    """Check shapes, bring ``obs``/``samples``/``gt`` into one joint space and pick the samples to show.

    ``obs`` may have ``J`` joints (root included) while the samples have ``N`` nodes: it is then root-centred
    per frame and the root dropped (metric space). With ``J`` joints everywhere, world coordinates are kept,
    except that futures whose root sits at the origin make ``obs``/``gt`` root-centred per frame as well.
    ``highlight='closest_to_gt'`` marks the sample with the
    smallest ADE to ``gt`` (nothing if ``gt`` is None); an int marks that sample index; None marks nothing.
    The highlighted sample is always among the ``max_samples`` shown (first).
    """
    o = squeeze_leading(to_numpy(obs, "obs"), 3, "obs [T_obs, K, 3]")
    s = to_numpy(samples, "samples")
    if s.ndim == 3:  # a single future [T_p, K, 3]
        s = s[None]
    s = squeeze_leading(s, 4, "samples [S, T_pred, K, 3]")
    k = s.shape[2]
    if o.shape[1] != k:
        if o.shape[1] == skeleton.num_joints and k == skeleton.num_nodes:
            o = to_metric_nodes(o)
        else:
            raise InputError(
                f"obs has {o.shape[1]} joints but samples have {k}; for skeleton '{skeleton.name}' use "
                f"{skeleton.num_nodes} (root dropped) or {skeleton.num_joints} (root included) for both, or "
                f"obs with {skeleton.num_joints} and samples with {skeleton.num_nodes}"
            )
    layout = layout_for(skeleton, k, "samples")
    g = None
    if gt is not None:
        g = squeeze_leading(to_numpy(gt, "gt"), 3, "gt [T_pred, K, 3]")
        if g.shape[1] == skeleton.num_joints and k == skeleton.num_nodes:
            g = to_metric_nodes(g)
        if g.shape != s.shape[1:]:
            raise InputError(f"gt has shape {tuple(g.shape)}, expected {tuple(s.shape[1:])} like one sample")
    if layout.includes_root and np.allclose(s[..., 0, :], 0.0, atol=1e-6):
        # root-centred futures (root at the origin) with a world-space observation: centre obs/gt too
        o = o - o[:, :1]
        if g is not None:
            g = g - g[:, :1]

    n_s = s.shape[0]
    if isinstance(highlight, (int, np.integer)) and not isinstance(highlight, bool):
        if not 0 <= int(highlight) < n_s:
            raise InputError(f"highlight={highlight} is out of range for {n_s} samples")
        hl: int | None = int(highlight)
    elif highlight == "closest_to_gt":
        hl = int(np.argmin(ade_per_sample(s, g))) if g is not None else None
    elif highlight is None or highlight == "none":
        hl = None
    else:
        raise ValueError(f"highlight must be 'closest_to_gt', an int or None, got {highlight!r}")

    order = list(range(n_s))
    if hl is not None:
        order.remove(hl)
        order.insert(0, hl)
    if max_samples is not None:
        order = order[: max(1, int(max_samples))]
    shown = s[order]
    ade = ade_per_sample(shown, g) if g is not None else None
    return PreparedMotion(
        obs=to_plot_coords(o, up),
        samples=to_plot_coords(shown, up),
        gt=to_plot_coords(g, up) if g is not None else None,
        layout=layout,
        sample_ids=order,
        highlight=0 if hl is not None else None,
        ade=ade,
    )


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _Actor:
    """One skeleton drawn in one panel: per-frame poses (NaN rows = hidden), colours per phase."""

    coll: Line3DCollection
    poses: np.ndarray  # [F, K, 3]
    colors_obs: list[str]
    colors_pred: list[str]
    phase: int = -1


def _timeline(obs: np.ndarray, fut: np.ndarray | None, t_pred: int) -> np.ndarray:
    """Stack obs [T_o,K,3] and fut [T_p,K,3] (None -> hidden during the prediction phase)."""
    if fut is None:
        fut = np.full((t_pred,) + obs.shape[1:], np.nan)
    return np.concatenate([obs, fut], axis=0)


def _hidden(n: int, like: np.ndarray) -> np.ndarray:
    return np.full((n,) + like.shape[1:], np.nan)


def render_prediction_frames(obs: Any, samples: Any, skeleton, *, gt: Any = None,
                             mode: Mode = "side_by_side", highlight: str | int | None = "closest_to_gt",
                             max_samples: int | None = 6, up: str = "z", elev: float = 15.0,
                             azim: float = -60.0, panel_size: float = 2.2, dpi: int = 60,
                             ncols: int | None = None, show_axes: bool = True, linewidth: float = 2.0,
                             sample_alpha: float = 0.45, title: str | None = None,
                             stride: int = 1, obs_panel: bool = False, trail: int = 0,
                             trail_alpha: float = 0.22,
                             phase_labels: tuple[str, str] = ("observation", "prediction")) -> np.ndarray:
    """Render observation + futures to frames ``uint8 [F, H, W, 3]``, ``F = T_obs + T_pred`` (``stride`` 1).

    Args:
        obs: ``[T_obs, N, 3]`` (metric space) or ``[T_obs, J, 3]`` (root included), metres.
        samples: ``[S, T_pred, N, 3]`` (or ``J`` joints like ``obs``), metres.
        skeleton: a :class:`~skeleton_diffusion.skeletons.Skeleton`; limbs come from ``node_limbs`` for ``N``
            points and ``limbs`` for ``J`` points, colours from ``left_right``.
        gt: optional ground-truth future ``[T_pred, K, 3]``.
        mode: ``'side_by_side'`` — one panel per shown sample (plus a first "ground truth" panel with the
            closest sample overlaid when ``gt`` is given; every panel shows the observation first);
            ``'overlay'`` — a single panel with GT (grey), all samples (blue, translucent) and the
            highlighted sample (red).
        highlight: ``'closest_to_gt'`` (min ADE), a sample index, or None.
        max_samples: how many samples to show at most (the highlighted one first).
        up: which data axis points up (``'z'`` for AMASS/H36M/3DPW; ``'y'``, ``'-y'``, ``'-z'`` otherwise).
        stride: keep every ``stride``-th frame (both phases), for small TensorBoard clips.
        obs_panel: side-by-side without ``gt``: a first "observation" panel that plays the observation and then
            holds its last pose (grey), so each future can be compared with "no motion" next to it.
        trail: ghosting: also draw each skeleton as it was ``trail`` and ``trail // 2`` frames earlier (faded,
            ``trail_alpha``), so motion is visible in a single frame; 0 disables.
        phase_labels: the frame counter's words for the two phases (e.g. a caption for generated motion); two
            equal labels count the frames through both phases (``"<label> f/F"``).
    """
    if mode not in ("side_by_side", "overlay"):
        raise ValueError(f"mode must be 'side_by_side' or 'overlay', got {mode!r}")
    pm = prepare_motion(obs, samples, skeleton, gt=gt, highlight=highlight, max_samples=max_samples, up=up)
    t_obs, t_pred = pm.obs.shape[0], pm.samples.shape[1]
    n_frames = t_obs + t_pred
    lay = pm.layout
    n_limbs = len(lay.limbs)

    # ---- panels and actors ------------------------------------------------------------------------
    panels: list[tuple[str, list[tuple[np.ndarray, tuple[str, str], tuple[str, str], float, float]]]] = []
    # each actor spec: (timeline [F,K,3], obs colours, pred colours, linewidth, alpha)
    def sample_colors(i: int) -> tuple[str, str]:
        return HIGHLIGHT_COLORS if pm.highlight == i else SAMPLE_COLORS

    def sample_title(i: int) -> str:
        t = f"sample {pm.sample_ids[i]}"
        if pm.highlight == i:
            t += " (closest)" if highlight == "closest_to_gt" else " (highlighted)"
        if pm.ade is not None:
            t += f"\nADE {pm.ade[i]:.3f}"
        return t

    if mode == "side_by_side":
        if obs_panel and pm.gt is None:
            held = np.repeat(pm.obs[-1:], t_pred, axis=0)
            panels.append(("observation\n(then held still)", [(_timeline(pm.obs, held, t_pred), OBS_COLORS,
                                                                 OBS_COLORS, linewidth, 1.0)]))
        if pm.gt is not None:
            actors = [(_timeline(pm.obs, pm.gt, t_pred), OBS_COLORS, GT_COLORS, linewidth, 1.0)]
            if pm.highlight is not None:
                hl = np.concatenate([_hidden(t_obs, pm.obs), pm.samples[pm.highlight]], axis=0)
                actors.append((hl, HIGHLIGHT_COLORS, HIGHLIGHT_COLORS, linewidth * 0.8, 0.8))
            panels.append(("ground truth" + (" + closest" if pm.highlight is not None else ""), actors))
        for i in range(pm.samples.shape[0]):
            panels.append((sample_title(i), [(_timeline(pm.obs, pm.samples[i], t_pred), OBS_COLORS,
                                              sample_colors(i), linewidth, 1.0)]))
    else:
        actors = [(_timeline(pm.obs, pm.gt, t_pred), OBS_COLORS, GT_COLORS, linewidth, 1.0)]
        others = [i for i in range(pm.samples.shape[0]) if i != pm.highlight]
        for i in others:
            actors.append((np.concatenate([_hidden(t_obs, pm.obs), pm.samples[i]]), SAMPLE_COLORS,
                           SAMPLE_COLORS, linewidth * 0.7, sample_alpha))
        if pm.highlight is not None:
            actors.append((np.concatenate([_hidden(t_obs, pm.obs), pm.samples[pm.highlight]]),
                           HIGHLIGHT_COLORS, HIGHLIGHT_COLORS, linewidth, 1.0))
        t = f"{pm.samples.shape[0]} samples" + (" + ground truth" if pm.gt is not None else "")
        if pm.highlight is not None:
            t += f"\nred: sample {pm.sample_ids[pm.highlight]}"
            if pm.ade is not None:
                t += f" (ADE {pm.ade[pm.highlight]:.3f})"
        panels.append((t, actors))

    if trail > 0:  # ghosts first, so the current pose is drawn on top
        lags = sorted({int(trail), max(1, int(trail) // 2)}, reverse=True)
        panels = [(pt, [(np.concatenate([_hidden(lag, poses), poses[:-lag]]), c_o, c_p, lw * 0.7,
                         alpha * trail_alpha * (1.6 if lag < trail else 1.0))
                        for lag in lags for poses, c_o, c_p, lw, alpha in specs] + specs)
                  for pt, specs in panels]

    # ---- figure -----------------------------------------------------------------------------------
    n_panels = len(panels)
    if ncols is None:
        n_rows = int(np.ceil(n_panels / 4))
        ncols = int(np.ceil(n_panels / n_rows))
    cols = max(1, min(int(ncols), n_panels))
    rows = int(np.ceil(n_panels / cols))
    top = 0.45 if title else 0.2  # inches reserved above the panels for the title and frame label
    height = rows * panel_size + top
    fig, canvas = new_figure(cols * panel_size, height, dpi)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=1 - top / height, wspace=0.0, hspace=0.0)
    centre, half = view_box([pm.obs, pm.samples, pm.gt])
    built: list[tuple[Any, list[_Actor]]] = []
    for p, (ptitle, specs) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, p + 1, projection="3d")
        setup_3d_axis(ax, centre, half, elev=elev, azim=azim, title=ptitle, show_axes=show_axes,
                      fontsize=max(5.0, 7.5 * panel_size / 2.2))
        acts = []
        for poses, c_obs, c_pred, lw, alpha in specs:
            coll = Line3DCollection(np.zeros((n_limbs, 2, 3)), linewidths=lw, alpha=alpha, animated=True,
                                    capstyle="round")
            ax.add_collection3d(coll)
            acts.append(_Actor(coll, poses, limb_colors(lay, c_obs), limb_colors(lay, c_pred)))
        built.append((ax, acts))
    label = fig.text(0.5, 1 - 0.03 / height, "", ha="center", va="top", fontsize=7, animated=True)
    if title:
        fig.text(0.5, 1 - 0.02 / height, title, ha="center", va="top", fontsize=8)
        label.set_y(1 - 0.22 / height)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    frame_ids = list(range(0, t_obs, stride)) + list(range(t_obs, n_frames, stride))
    out = np.empty((len(frame_ids),) + canvas_to_array(canvas).shape, dtype=np.uint8)
    for f_out, f in enumerate(frame_ids):
        canvas.restore_region(background)
        phase = 0 if f < t_obs else 1
        for ax, acts in built:
            for a in acts:
                pose = a.poses[f]
                if not np.isfinite(pose).all():
                    continue
                if a.phase != phase:
                    a.coll.set_color(a.colors_obs if phase == 0 else a.colors_pred)
                    a.phase = phase
                a.coll.set_segments(segments(pose, lay))
                a.coll.do_3d_projection()
                ax.draw_artist(a.coll)
        if phase_labels[0] == phase_labels[1]:
            label.set_text(f"{phase_labels[0]} {f + 1}/{n_frames}")
        else:
            label.set_text(f"{phase_labels[0]} {f + 1}/{t_obs}" if phase == 0
                           else f"{phase_labels[1]} {f - t_obs + 1}/{t_pred}")
        fig.draw_artist(label)
        out[f_out] = canvas_to_array(canvas)
    return out


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------
def ffmpeg_executable() -> str | None:
    """Path of an ``ffmpeg`` executable: ``$PATH`` first, then the ``imageio-ffmpeg`` package; else None."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:  # optional dependency
        import imageio_ffmpeg  # type: ignore[import-not-found]

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed or no binary for this platform
        return None


def _check_frames(frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise InputError(f"frames: expected uint8 [F, H, W, 3] with F >= 1, got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


def gif_durations_ms(n_frames: int, fps: float) -> list[int]:
    """Per-frame GIF delays (multiples of 10 ms) whose running sum tracks ``k * 1000 / fps``.

    Delays below 20 ms are raised to 20 ms because browsers and viewers slow shorter delays down to 100 ms;
    a 60 fps clip therefore plays at 50 fps as a GIF (use MP4 for exact timing)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    ends = np.round(np.arange(1, n_frames + 1) * 100.0 / fps).astype(np.int64)  # centiseconds
    d = np.diff(np.concatenate([[0], ends]))
    return [int(max(2, x)) * 10 for x in d]


def encode_gif(frames: Any, fps: float = 30.0, *, loop: int = 0, colors: int = 255) -> bytes:
    """Encode ``frames uint8 [F, H, W, 3]`` as an animated GIF (bytes).

    One palette (median cut over a montage of up to 12 frames spread over the clip, so observation and
    prediction colours are both covered) is shared by all frames; pixels unchanged from the previous frame
    are written as transparent, which makes clips with static axes several times smaller."""
    from PIL import Image

    arr = _check_frames(frames)
    n = arr.shape[0]
    colors = int(min(max(colors, 2), 255))  # index 255 is reserved for "unchanged" (transparent)
    pick = np.unique(np.linspace(0, n - 1, min(n, 12)).round().astype(int))
    palette_img = Image.fromarray(np.concatenate(list(arr[pick]), axis=0)).quantize(
        colors=colors, method=Image.Quantize.MEDIANCUT)
    palette = (palette_img.getpalette() + [0] * 768)[:768]
    images, prev = [], None
    for f in arr:
        idx = np.asarray(Image.fromarray(f).quantize(palette=palette_img, dither=Image.Dither.NONE))
        delta = idx.copy()
        if prev is not None:
            delta[idx == prev] = 255
        prev = idx
        im = Image.fromarray(delta, mode="P")
        im.putpalette(palette)
        images.append(im)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=gif_durations_ms(n, fps), loop=loop, transparency=255, disposal=1,
                   optimize=False)
    return buf.getvalue()


def _publish(tmp: Path) -> None:
    """Give a finished temporary file the usual permissions (mkstemp creates 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def save_gif(frames: Any, out_path: str | os.PathLike, fps: float = 30.0, *, loop: int = 0,
             colors: int = 255) -> Path:
    """Write ``frames uint8 [F, H, W, 3]`` as an animated GIF (see :func:`encode_gif`), atomically."""
    data = encode_gif(frames, fps, loop=loop, colors=colors)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
        _publish(tmp)
    return out_path


def save_mp4(frames: Any, out_path: str | os.PathLike, fps: float = 30.0, *, ffmpeg: str | None = None,
             crf: int = 20, timeout_s: float = 300.0) -> Path:
    """Write ``frames`` as H.264 MP4 by piping raw RGB to ``ffmpeg`` (atomically).

    Raises ``RuntimeError`` when no ffmpeg is available or ffmpeg fails (with its stderr)."""
    arr = _check_frames(frames)
    exe = ffmpeg or ffmpeg_executable()
    if exe is None:
        raise RuntimeError("no ffmpeg executable found (install ffmpeg or the imageio-ffmpeg package)")
    _, h, w, _ = arr.shape
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", f"{fps:g}", "-i", "-", "-an", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), str(tmp)]
        proc = subprocess.run(cmd, input=arr.tobytes(), capture_output=True, timeout=timeout_s, check=False)
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
        _publish(tmp)
    return out_path


def save_animation(frames: Any, out_path: str | os.PathLike, fps: float = 30.0) -> Path:
    """Write frames to ``out_path`` by suffix (``.gif`` or ``.mp4``); returns the path actually written.

    ``.mp4`` without a usable ffmpeg falls back to a GIF next to it (same stem) with a warning, never an
    exception, so a long evaluation does not die on a missing video encoder."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix == ".gif":
        return save_gif(frames, out_path, fps)
    if suffix in (".mp4", ".m4v", ".mov"):
        try:
            return save_mp4(frames, out_path, fps)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            gif = out_path.with_suffix(".gif")
            warnings.warn(f"could not write {out_path.name} ({exc}); wrote {gif.name} instead", stacklevel=2)
            return save_gif(frames, gif, fps)
    raise ValueError(f"unsupported animation format {out_path.suffix!r} for {out_path}; use .gif or .mp4")


def animate_prediction(obs: Any, samples: Any, skeleton, *, out_path: str | os.PathLike,
                       gt: Any = None, mode: Mode = "side_by_side",
                       highlight: str | int | None = "closest_to_gt", fps: float = 30.0,
                       max_samples: int | None = 6, **render_kwargs: Any) -> Path:
    """Render observation then samples (see :func:`render_prediction_frames`) and write GIF/MP4.

    ``fps`` is the playback rate (use the dataset's rate, e.g. 60 for AMASS, for real time). Returns the
    path written (a ``.gif`` beside ``out_path`` if an MP4 was asked for but no ffmpeg is available).

    Defaults for a readable file (override through ``render_kwargs``): an observation panel beside the futures
    (``obs_panel=True``), 20-frame ghost trails, 3-inch panels at 80 dpi (240 px per panel)."""
    for key, value in (("obs_panel", True), ("trail", 20), ("panel_size", 3.0), ("dpi", 80)):
        render_kwargs.setdefault(key, value)
    frames = render_prediction_frames(obs, samples, skeleton, gt=gt, mode=mode, highlight=highlight,
                                      max_samples=max_samples, **render_kwargs)
    return save_animation(frames, out_path, fps)


# ---------------------------------------------------------------------------------------------------------
# TensorBoard
# ---------------------------------------------------------------------------------------------------------
def frames_to_video_tensor(frames: Any):
    """``uint8 [F, H, W, 3]`` -> ``torch.uint8 [1, F, 3, H, W]`` (the layout of ``SummaryWriter.add_video``)."""
    import torch

    arr = _check_frames(frames)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))[None]


def tensorboard_animation(obs: Any, samples: Any, skeleton, *, gt: Any = None, max_samples: int = 3,
                          panel_size: float = 1.8, dpi: int = 50, stride: int = 2,
                          **render_kwargs: Any):
    """Small animation for TensorBoard: ``torch.uint8 [1, F, 3, H, W]`` (every ``stride``-th frame).

    Pass it to :func:`add_video` (works without ``moviepy``) or ``SummaryWriter.add_video``."""
    frames = render_prediction_frames(obs, samples, skeleton, gt=gt, max_samples=max_samples,
                                      panel_size=panel_size, dpi=dpi, stride=stride, **render_kwargs)
    return frames_to_video_tensor(frames)


def add_video(writer, tag: str, video: Any, global_step: int | None = None, fps: float = 15.0) -> None:
    """Log ``video [1, F, 3, H, W]`` (uint8, or float in [0, 1]) to a ``SummaryWriter`` as an animated GIF.

    Same summary as ``SummaryWriter.add_video`` (an image summary holding a GIF, shown animated in
    TensorBoard's Images tab) but encoded with Pillow, so ``moviepy`` is not needed."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    v = to_numpy(video, "video") if not (isinstance(video, np.ndarray) and video.dtype == np.uint8) else video
    if v.ndim == 5:
        if v.shape[0] != 1:
            raise InputError(f"add_video: expected one video [1, F, 3, H, W], got shape {tuple(v.shape)}")
        v = v[0]
    if v.ndim != 4 or v.shape[1] != 3:
        raise InputError(f"add_video: expected [1, F, 3, H, W], got shape {tuple(np.shape(video))}")
    frames = _check_frames(np.transpose(v, (0, 2, 3, 1)))
    gif = encode_gif(frames, fps)
    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=gif)
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    writer._get_file_writer().add_summary(summary, global_step)

