"""BVH files: parsing (any hierarchy, any channel order, ``End Site`` leaves), forward kinematics, units and axes.

Pure functions of the file; the dataset builders (:mod:`skeleton_diffusion.data.builders.bvh`) and skeleton
derivation (:func:`skeleton_diffusion.skeletons.formats.files.skeleton_from_bvh`) both use them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError

UNITS = {"m": 1.0, "dm": 0.1, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45, "ft": 0.3048}
HUMAN_EXTENT_M = 1.7


# ------------------------------------------------------------------------------------------------------ parsing
@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    channel_start: int = 0
    is_end_site: bool = False


@dataclass
class BvhMotion:
    """A parsed BVH file. ``frames [F, C]`` raw channel values; ``frame_time`` seconds."""

    joints: list[BvhJoint]
    frame_time: float
    frames: np.ndarray
    source: str = "<memory>"

    @property
    def fps(self) -> float:
        """``1 / frame_time``, snapped to the nearest integer within 0.01 % ("Frame Time: .0083333" -> 120)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 1e-4 * fps else fps

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]


_VALID_CHANNELS = {f"{a}{kind}" for a in "XYZ" for kind in ("position", "rotation")}


def parse_bvh(source: str | Path, text: str | None = None) -> BvhMotion:
    """Parse a BVH file (or ``text``). Errors (:class:`DataFormatError`) name the file and the token, or the
    frame and channel, at fault: a truncated file, a malformed token, a NaN/inf value."""
    src = str(source)
    if text is None:
        path = Path(source)
        if not path.is_file():
            raise DatasetNotPreparedError(f"BVH file not found: '{path}'")
        text = path.read_text(errors="replace")
    try:
        return _parse_bvh_text(src, text)
    except (IndexError, ValueError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{src}: truncated or malformed BVH file ({type(exc).__name__}: {exc}); expected "
                              "HIERARCHY with balanced joint blocks, then MOTION, Frames:, Frame Time: and "
                              "the frame values") from None


def _parse_bvh_text(src: str, text: str) -> BvhMotion:
    head, sep, motion = re.split(r"\b(MOTION)\b", text, maxsplit=1) if "MOTION" in text else (text, "", "")
    if not sep:
        raise DataFormatError(f"{src}: no MOTION section")
    tokens = head.replace("{", " { ").replace("}", " } ").split()
    if not tokens or tokens[0].upper() != "HIERARCHY":
        raise DataFormatError(f"{src}: file must start with HIERARCHY, found {tokens[:1]}")
    joints: list[BvhJoint] = []
    stack: list[int] = []
    pending: BvhJoint | None = None
    n_channels = 0
    i = 1

    def expect_floats(k: int) -> np.ndarray:
        nonlocal i
        try:
            vals = np.array([float(t) for t in tokens[i : i + k]], dtype=np.float64)
        except ValueError as exc:
            raise DataFormatError(f"{src}: expected {k} numbers after token {i}, found {tokens[i:i + k]}") from exc
        if vals.shape[0] != k:
            raise DataFormatError(f"{src}: truncated hierarchy")
        i += k
        return vals

    while i < len(tokens):
        tok = tokens[i]
        up = tok.upper()
        if up in ("ROOT", "JOINT"):
            parent = stack[-1] if (up == "JOINT" and stack) else -1
            if up == "JOINT" and not stack:
                raise DataFormatError(f"{src}: JOINT {tokens[i + 1]} outside of a ROOT block")
            pending = BvhJoint(tokens[i + 1], parent, np.zeros(3))
            i += 2
        elif up == "END":
            pending = BvhJoint(f"{joints[stack[-1]].name}_End", stack[-1], np.zeros(3), is_end_site=True)
            i += 2  # "End Site"
        elif tok == "{":
            if pending is None:
                raise DataFormatError(f"{src}: unexpected '{{' at token {i}")
            joints.append(pending)
            stack.append(len(joints) - 1)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise DataFormatError(f"{src}: unbalanced '}}' at token {i}")
            stack.pop()
            i += 1
        elif up == "OFFSET":
            i += 1
            joints[stack[-1]].offset = expect_floats(3)
        elif up == "CHANNELS":
            count = int(tokens[i + 1])
            names = tokens[i + 2 : i + 2 + count]
            bad = [c for c in names if c not in _VALID_CHANNELS]
            if bad or len(names) != count:
                raise DataFormatError(f"{src}: bad CHANNELS for joint {joints[stack[-1]].name}: {names}")
            joint = joints[stack[-1]]
            joint.channels, joint.channel_start = list(names), n_channels
            n_channels += count
            i += 2 + count
        else:
            raise DataFormatError(f"{src}: unexpected token {tok!r} in HIERARCHY")
    if stack:
        raise DataFormatError(f"{src}: unclosed joint block(s) at end of HIERARCHY")
    if not joints:
        raise DataFormatError(f"{src}: no joints in HIERARCHY")

    m_frames = re.search(r"Frames:\s*(\d+)", motion)
    m_time = re.search(r"Frame\s+Time:\s*([0-9.eE+-]+)", motion)
    if not m_frames or not m_time:
        raise DataFormatError(f"{src}: MOTION section lacks 'Frames:' or 'Frame Time:'")
    num_frames, frame_time = int(m_frames.group(1)), float(m_time.group(1))
    if frame_time <= 0:
        raise DataFormatError(f"{src}: Frame Time must be positive, found {frame_time}")
    body = motion[m_time.end():]
    tokens = body.split()
    try:
        values = np.array(tokens, dtype=np.float64) if tokens else np.zeros(0)
    except ValueError:
        k = next(k for k, t in enumerate(tokens) if not _is_float(t))
        raise DataFormatError(f"{src}: MOTION value {k} ({tokens[k]!r}, frame {k // max(n_channels, 1)}) is not a "
                              "number") from None
    if n_channels == 0 or values.size < num_frames * n_channels:
        raise DataFormatError(
            f"{src}: expected {num_frames} frames x {n_channels} channels = {num_frames * n_channels} values, "
            f"found {values.size}"
        )
    frames = values[: num_frames * n_channels].reshape(num_frames, n_channels)
    bad = np.argwhere(~np.isfinite(frames))
    if bad.size:
        f, c = (int(v) for v in bad[0])
        joint = next(jt for jt in joints if jt.channel_start <= c < jt.channel_start + len(jt.channels))
        raise DataFormatError(
            f"{src}: non-finite value {frames[f, c]} at frame {f}, channel {c} ({joint.name} "
            f"{joint.channels[c - joint.channel_start]}); {len(bad)} non-finite value(s) in all. Every channel "
            "value must be a finite number: fix or cut the frames (or drop the file) and rebuild")
    return BvhMotion(joints, frame_time, frames, src)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def resample_weights(num_frames: int, src_fps: float, dst_fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``(i0, i1, w)`` so that output frame ``k`` (time ``k / dst_fps``) is ``(1-w) x[i0] + w x[i1]``.

    An integer ratio (120 -> 60 Hz) is plain decimation (``w = 0``); otherwise every time ``k / dst_fps`` inside
    the clip is kept (1e-3 frame tolerance: "Frame Time" is written with ~7 digits, 1/30 -> 0.0333333)."""
    if dst_fps <= 0 or src_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {src_fps} -> {dst_fps}")
    ratio = src_fps / dst_fps
    if abs(ratio - round(ratio)) < 1e-3 and round(ratio) >= 1:
        i0 = np.arange(0, num_frames, int(round(ratio)))
        return i0, i0, np.zeros(len(i0))
    duration = (num_frames - 1) / src_fps
    times = np.arange(0, int(math.floor(duration * dst_fps + 1e-3)) + 1) / dst_fps
    src_pos = times * src_fps
    i0 = np.clip(np.floor(src_pos).astype(int), 0, num_frames - 1)
    i1 = np.clip(i0 + 1, 0, num_frames - 1)
    return i0, i1, np.clip(src_pos - i0, 0.0, 1.0)


def _slerp(rot: Rotation, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> Rotation:
    """Per-frame spherical interpolation ``R[i0] * exp(w * log(R[i0]^-1 R[i1]))`` (shortest arc)."""
    r0 = rot[i0]
    delta = (r0.inv() * rot[i1]).as_rotvec()
    return r0 * Rotation.from_rotvec(delta * w[:, None])


def bvh_forward_kinematics(motion: BvhMotion, fps: float | None = None) -> np.ndarray:
    """Global joint positions ``[F, J, 3]`` in file units and axes (End Sites included).

    ``fps``: resample to this rate first, **in the channels**: each joint's rotation is interpolated by quaternion
    slerp and its translation (root position channels) linearly, then forward kinematics runs on the resampled
    frames, so every output frame is a rigid pose with the file's bone lengths (interpolating positions instead
    shortens limbs on the in-between frames)."""
    num_frames = motion.frames.shape[0]
    if fps is not None and num_frames > 0:
        i0, i1, w = resample_weights(num_frames, motion.fps, fps)
    else:
        i0 = i1 = np.arange(num_frames)
        w = np.zeros(num_frames)
    out_frames = len(i0)
    positions = np.zeros((out_frames, len(motion.joints), 3))
    rotations: list[np.ndarray] = []
    for j, joint in enumerate(motion.joints):
        cols = {c: motion.frames[:, joint.channel_start + k] for k, c in enumerate(joint.channels)}
        trans = np.repeat(joint.offset[None], num_frames, axis=0)
        for axis, name in enumerate("XYZ"):
            if f"{name}position" in cols:
                trans[:, axis] = cols[f"{name}position"]
        trans = (1 - w)[:, None] * trans[i0] + w[:, None] * trans[i1]
        rot_channels = [c for c in joint.channels if c.endswith("rotation")]
        if rot_channels:
            seq = "".join(c[0] for c in rot_channels)
            angles = np.stack([cols[c] for c in rot_channels], axis=-1)
            local = _slerp(Rotation.from_euler(seq.upper(), angles, degrees=True), i0, i1, w).as_matrix()
        else:
            local = np.broadcast_to(np.eye(3), (out_frames, 3, 3))
        if joint.parent < 0:
            positions[:, j] = trans
            rotations.append(np.asarray(local))
        else:
            p = joint.parent
            positions[:, j] = positions[:, p] + np.einsum("fab,fb->fa", rotations[p], trans)
            rotations.append(rotations[p] @ local)
    return positions


def leading_rest_frames(motion: BvhMotion, tol_deg: float = 1.0, fps: float | None = None) -> int:
    """Number of leading frames in the rest pose (T-pose of most rigs): every non-root rotation channel within
    ``tol_deg`` of zero. ``fps``: counted in frames at that rate (the frames before the end of the rest pose).
    0 when the rest pose does not lead or fills the whole clip."""
    cols = [jt.channel_start + k for jt in motion.joints if jt.parent >= 0
            for k, c in enumerate(jt.channels) if c.endswith("rotation")]
    if not cols or motion.frames.shape[0] == 0:
        return 0
    rest = np.all(np.abs(motion.frames[:, cols]) < tol_deg, axis=1)
    n = int(np.argmin(rest)) if not rest.all() else 0
    if n == 0 or fps is None:
        return n
    return int(math.ceil(n * fps / motion.fps - 1e-6))


def rest_pose(motion: BvhMotion) -> np.ndarray:
    """Joint positions ``[J, 3]`` of the hierarchy with zero rotations and offsets only (file units)."""
    pos = np.zeros((len(motion.joints), 3))
    for j, joint in enumerate(motion.joints):
        pos[j] = joint.offset + (pos[joint.parent] if joint.parent >= 0 else 0.0)
    return pos


def resolve_unit(unit: str | float, motion: BvhMotion) -> float:
    """Metres per file unit (see module doc; ``auto`` picks the candidate closest to a 1.7 m body extent)."""
    if isinstance(unit, (int, float)):
        return float(unit)
    if unit in UNITS:
        return UNITS[unit]
    if unit != "auto":
        try:
            return float(unit)
        except ValueError as exc:
            raise ValueError(f"unknown unit {unit!r}; use one of {sorted(UNITS)}, 'auto' or a number") from exc
    rest = rest_pose(motion)
    extent = float((rest.max(0) - rest.min(0)).max())
    if extent <= 0:
        raise DataFormatError(f"{motion.source}: degenerate rest pose, cannot infer units (pass --unit)")
    return min(UNITS.values(), key=lambda s: abs(math.log(extent * s / HUMAN_EXTENT_M)))


def to_z_up(positions: np.ndarray, up: str) -> np.ndarray:
    if up == "z":
        return positions
    if up == "y":
        return np.stack([positions[..., 0], -positions[..., 2], positions[..., 1]], axis=-1)
    raise ValueError(f"up must be 'y' or 'z', got {up!r}")



def native_hierarchy(motion: Any) -> tuple[list[str], list[int], list[int]]:
    """The file's own joints without ``End Site`` leaves: ``(names, parents, indices into motion.joints)``."""
    keep = [j for j, joint in enumerate(motion.joints) if not joint.is_end_site]
    new = {j: i for i, j in enumerate(keep)}
    roots = [j for j in keep if motion.joints[j].parent < 0]
    if len(roots) != 1 or keep[0] != roots[0]:
        raise DataFormatError(f"{motion.source}: --skeleton native needs exactly one ROOT, found "
                              f"{[motion.joints[j].name for j in roots]}")
    parents = [new[motion.joints[j].parent] if motion.joints[j].parent >= 0 else -1 for j in keep]
    return [motion.joints[j].name for j in keep], parents, keep
