"""Real-format BVH writer for the mocap-import tests (issue 27): a 22-joint, 30 fps, centimetre, Y-up rig."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# (name, parent, offset in cm): a LAFAN1-like hierarchy (every AMASS-22 bone is one parent -> child bone)
TREE = [
    ("Hips", None, (0, 90, 0)), ("LeftUpLeg", "Hips", (10, -5, 0)), ("LeftLeg", "LeftUpLeg", (0, -42, 0)),
    ("LeftFoot", "LeftLeg", (0, -40, 0)), ("LeftToe", "LeftFoot", (0, -5, 12)),
    ("RightUpLeg", "Hips", (-10, -5, 0)), ("RightLeg", "RightUpLeg", (0, -42, 0)),
    ("RightFoot", "RightLeg", (0, -40, 0)), ("RightToe", "RightFoot", (0, -5, 12)),
    ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 12, 0)), ("Spine2", "Spine1", (0, 12, 0)),
    ("Neck", "Spine2", (0, 16, 0)), ("Head", "Neck", (0, 10, 0)),
    ("LeftShoulder", "Spine2", (5, 12, 0)), ("LeftArm", "LeftShoulder", (12, 0, 0)),
    ("LeftForeArm", "LeftArm", (27, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine2", (-5, 12, 0)), ("RightArm", "RightShoulder", (-12, 0, 0)),
    ("RightForeArm", "RightArm", (-27, 0, 0)), ("RightHand", "RightForeArm", (-25, 0, 0)),
]
HELPER = ("LeftHandHelper", "LeftHand", (0, 0, 0))  # a zero-length helper joint, as real rigs have


def bvh_text(frames: int, *, seed: int = 0, fps: float = 30, helper: bool = False, amplitude: float = 40.0,
             tpose_frames: int = 0) -> str:
    """A BVH file: root ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, joints
    ``Zrotation Xrotation Yrotation``, End Sites at the leaves; smooth large rotations (degrees)."""
    tree = TREE + ([HELPER] if helper else [])
    children: dict = {}
    for name, parent, _ in tree:
        children.setdefault(parent, []).append(name)
    offsets = {n: o for n, _, o in tree}
    lines = ["HIERARCHY"]

    def emit(name: str, depth: int, root: bool = False) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(pad + "\tOFFSET " + " ".join(f"{v:.6f}" for v in offsets[name]))
        chans = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if root else "3 Zrotation Xrotation Yrotation"
        lines.append(pad + "\tCHANNELS " + chans)
        kids = children.get(name, [])
        for k in kids:
            emit(k, depth + 1)
        if not kids:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0 5 0", pad + "\t}"])
        lines.append(pad + "}")

    emit("Hips", 0, root=True)
    rng = np.random.default_rng(seed)
    n_ch = 6 + 3 * (len(tree) - 1)
    t = np.arange(frames)[:, None] / fps
    freq, phase = rng.uniform(0.5, 2.0, (1, n_ch)), rng.uniform(0, 2 * np.pi, (1, n_ch))
    data = amplitude * np.sin(2 * np.pi * freq * t + phase)
    data[:, 0] = 100 * t[:, 0]  # walks along X at 1 m/s
    data[:, 1], data[:, 2] = 90 + 3 * np.sin(4 * t[:, 0]), 0
    if tpose_frames:
        data[:tpose_frames, 3:] = 0.0
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1 / fps:.7f}"]
    lines += [" ".join(f"{v:.4f}" for v in row) for row in data]
    return "\n".join(lines) + "\n"


def write_bvh(path: Path, frames: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bvh_text(frames, **kw))
    return path


def bone_lengths(arr: np.ndarray, parents) -> np.ndarray:
    """``[T, J-1]`` lengths of every parent -> child bone."""
    return np.stack([np.linalg.norm(arr[:, j] - arr[:, p], axis=-1) for j, p in enumerate(parents) if p >= 0], -1)
