"""DeepMimic motion clips (shipped in the ``pybullet`` wheel) -> processed dataset on the native 15-joint humanoid.

Source: ``pybullet_data/data/motions/humanoid3d_*.txt`` (JSON ``{"Loop": "wrap"|"none", "Frames": [[...]]}``). Each
frame has 44 numbers: duration of the frame (s), root position (3, metres, Y up), root rotation (quaternion
``w, x, y, z``), then per joint of :data:`MOTION_JOINTS` a quaternion (spherical joints) or one angle in radians
about the joint axis (revolute knees and elbows). The model is ``pybullet_data/humanoid/humanoid.urdf`` (offsets
in the parent frame; pybullet loads it with ``globalScaling=0.25``, which :data:`URDF_SCALE` reproduces so that
bones are in metres, e.g. thigh 0.42 m).

Forward kinematics: ``R[j] = R[parent] @ R_origin_rpy[j] @ local[j]``, ``p[j] = p[parent] + R[parent] @ (s * offset[j])``;
then Y-up -> Z-up (``(x, y, z) -> (x, -z, y)``), resampling from the per-frame durations to ``fps``. Skeleton: the
URDF links without the fixed ``base`` (15 joints, root first). Looping clips (``"Loop": "wrap"``) can be repeated
``loop_repeats`` times (the horizontal root displacement of one cycle is accumulated) so that a 1.3 s walk cycle
yields windows; whole clips are held out for valid/test (no repeated cycle leaks across splits).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.data.builders.common import BuildSummary
from skeleton_diffusion.skeletons.formats.urdf_mjcf import Hierarchy, parse_urdf

__all__ = ["MOTION_JOINTS", "URDF_SCALE", "find_pybullet_data", "load_deepmimic_motion", "deepmimic_skeleton",
           "deepmimic_positions", "build_deepmimic_dataset", "DEFAULT_TEST_CLIPS", "DEFAULT_VALID_CLIPS"]

#: joints of the frame vector after the root, with their number of values (4 = quaternion w,x,y,z; 1 = angle)
MOTION_JOINTS: tuple[tuple[str, int], ...] = (
    ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4), ("right_shoulder", 4),
    ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1),
)
URDF_SCALE = 0.25
FRAME_SIZE = 1 + 3 + 4 + sum(n for _, n in MOTION_JOINTS)  # 44
DEFAULT_TEST_CLIPS = ("dance_b", "getup_faceup")
DEFAULT_VALID_CLIPS = ("punch",)


def find_pybullet_data() -> Path | None:
    """The ``pybullet_data`` folder of an installed ``pybullet`` wheel (importing only the data package), or None."""
    try:
        import pybullet_data  # type: ignore[import-not-found]
    except ImportError:
        return None
    p = Path(pybullet_data.getDataPath())
    return p if (p / "data" / "motions").is_dir() and (p / "humanoid" / "humanoid.urdf").is_file() else None


def load_deepmimic_motion(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """``(frames [F, 44] float64, loops)`` of a DeepMimic humanoid3d motion file; errors name the file."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a readable DeepMimic motion JSON ({exc})") from exc
    frames = np.asarray(d.get("Frames", []), dtype=np.float64) if isinstance(d, dict) else np.zeros(0)
    if frames.ndim != 2 or frames.shape[0] < 2 or frames.shape[1] != FRAME_SIZE:
        raise DataFormatError(f"{path}: expected 'Frames' as a list of >= 2 frames of {FRAME_SIZE} numbers "
                              f"(humanoid3d layout), found shape {frames.shape}")
    return frames, str(d.get("Loop", "none")).lower() == "wrap"


def _urdf(data_dir: Path) -> Hierarchy:
    h = parse_urdf(data_dir / "humanoid" / "humanoid.urdf")
    if h.names[0] == "base":  # the fixed world link: drop it, "root" becomes the skeleton root
        keep = list(range(1, len(h.names)))
        h = Hierarchy(h.name, [h.names[i] for i in keep], [max(-1, h.parents[i] - 1) for i in keep],
                      h.offsets[keep], h.rpy[keep], [h.joint_type[i] for i in keep],
                      h.axis[keep] if h.axis is not None else None)
    missing = [n for n, _ in MOTION_JOINTS if n not in h.names]
    if missing or h.names[0] != "root":
        raise DataFormatError(f"{data_dir}/humanoid/humanoid.urdf: expected root link 'root' and links "
                              f"{[n for n, _ in MOTION_JOINTS]}; missing {missing}")
    return h


def deepmimic_skeleton(data_dir: str | os.PathLike):
    """The native 15-joint skeleton (``deepmimic_humanoid``) from the URDF next to the motions."""
    from skeleton_diffusion.skeletons.skeleton import Skeleton

    h = _urdf(Path(data_dir))
    return Skeleton.from_hierarchy("deepmimic_humanoid", h.names, h.parents,
                                   description="DeepMimic humanoid3d (pybullet_data/humanoid/humanoid.urdf)")


def deepmimic_positions(frames: np.ndarray, h: Hierarchy, *, scale: float = URDF_SCALE) -> np.ndarray:
    """Forward kinematics: ``[F, J, 3]`` metres in the file's Y-up frame, joints in ``h.names`` order."""
    num = frames.shape[0]
    local: dict[str, np.ndarray] = {}
    col = 8
    for name, n in MOTION_JOINTS:
        v = frames[:, col : col + n]
        col += n
        if n == 4:
            local[name] = Rotation.from_quat(v[:, [1, 2, 3, 0]]).as_matrix()  # file: w, x, y, z
        else:
            j = h.names.index(name) if name in h.names else -1
            axis = np.array([0.0, 0.0, 1.0])  # the humanoid's knees and elbows turn about z
            if j >= 0 and h.axis is not None and np.linalg.norm(h.axis[j]) > 0:
                axis = h.axis[j]
            local[name] = Rotation.from_rotvec(v[:, :1] * (axis / np.linalg.norm(axis))[None]).as_matrix()
    pos = np.zeros((num, len(h.names), 3))
    rot = np.zeros((num, len(h.names), 3, 3))
    pos[:, 0] = frames[:, 1:4]
    rot[:, 0] = Rotation.from_quat(frames[:, [5, 6, 7, 4]]).as_matrix()
    for j in range(1, len(h.names)):
        p = h.parents[j]
        r_origin = Rotation.from_euler("xyz", h.rpy[j]).as_matrix()
        pos[:, j] = pos[:, p] + np.einsum("fab,b->fa", rot[:, p], scale * h.offsets[j])
        loc = local.get(h.names[j], np.broadcast_to(np.eye(3), (num, 3, 3)))
        rot[:, j] = rot[:, p] @ r_origin @ loc
    return pos


def _resample_times(pos: np.ndarray, durations: np.ndarray, fps: float) -> np.ndarray:
    t = np.concatenate([[0.0], np.cumsum(durations[:-1])])
    out_t = np.arange(0.0, t[-1] + 1e-9, 1.0 / fps)
    flat = pos.reshape(len(pos), -1)
    res = np.stack([np.interp(out_t, t, flat[:, k]) for k in range(flat.shape[1])], axis=-1)
    return res.reshape(len(out_t), *pos.shape[1:])


def clip_positions(path: str | os.PathLike, h: Hierarchy, *, fps: float = 30, loop_repeats: int = 1,
                   scale: float = URDF_SCALE) -> np.ndarray:
    """One motion file -> ``float32 [T, 15, 3]`` metres, Z up, at ``fps`` (looping clips repeated)."""
    frames, loops = load_deepmimic_motion(path)
    pos = deepmimic_positions(frames, h, scale=scale)
    durations = frames[:, 0].copy()
    if loops and loop_repeats > 1:  # last frame == first pose of the next cycle: drop it between cycles
        cycle, shift = pos[:-1], pos[-1, 0] - pos[0, 0]
        shift[1] = 0.0  # only the horizontal (x, z in Y-up) displacement accumulates
        pos = np.concatenate([cycle + k * shift for k in range(loop_repeats)] + [pos[-1:] + (loop_repeats - 1) * shift])
        durations = np.concatenate([durations[:-1]] * loop_repeats + [durations[-1:]])
    pos = _resample_times(pos, durations, fps)
    pos = np.stack([pos[..., 0], -pos[..., 2], pos[..., 1]], axis=-1)  # Y up -> Z up
    return pos.astype(np.float32)


def build_deepmimic_dataset(
    name: str = "DeepMimic",
    *,
    data_root: str | Path = "datasets",
    pybullet_data_dir: str | os.PathLike | None = None,
    fps: int = 30,
    obs_seconds: float = 0.5,
    pred_seconds: float = 1.0,
    loop_repeats: int = 3,
    test_clips: Sequence[str] = DEFAULT_TEST_CLIPS,
    valid_clips: Sequence[str] = DEFAULT_VALID_CLIPS,
    side_files: bool = True,
) -> BuildSummary:
    """All ``humanoid3d_*.txt`` clips -> ``<data_root>/processed/<name>/hmp`` (whole clips held out for valid and
    test; labels = clip names; see :func:`~.native_skeleton.write_native_dataset`)."""
    from skeleton_diffusion.data.builders.native_skeleton import write_native_dataset

    data_dir = Path(pybullet_data_dir) if pybullet_data_dir else find_pybullet_data()
    if data_dir is None or not (data_dir / "data" / "motions").is_dir():
        raise DatasetNotPreparedError(
            "DeepMimic motions not found: install the pybullet wheel (`pip install pybullet`, ~100 MB, a binary wheel "
            "for CPython 3.8-3.12 on x86-64 Linux) or pass --pybullet-data <folder holding data/motions and humanoid/>")
    files = sorted((data_dir / "data" / "motions").glob("humanoid3d_*.txt"))
    if not files:
        raise DatasetNotPreparedError(f"no humanoid3d_*.txt motion files under '{data_dir / 'data' / 'motions'}'")
    h = _urdf(data_dir)
    sk = deepmimic_skeleton(data_dir)
    processed_dir = Path(data_root) / "processed" / name / "hmp"
    summary = BuildSummary(name, output=str(processed_dir / f"data_3d_{name.lower()}.npz"))
    positions: dict[str, dict[str, np.ndarray]] = {"train": {}, "valid": {}, "test": {}}
    for f in files:
        summary.sequences_read += 1
        clip = f.stem.removeprefix("humanoid3d_")
        try:
            arr = clip_positions(f, h, fps=fps, loop_repeats=loop_repeats)
        except DataFormatError as exc:
            summary.skip(str(f), f"unreadable: {exc}")
            continue
        split = "test" if clip in test_clips else "valid" if clip in valid_clips else "train"
        positions[split][clip] = arr
    for split in ("valid", "test"):
        if not positions[split]:
            raise DataFormatError(f"no {split} clip found among {[f.stem for f in files]} (asked for "
                                  f"{list(test_clips if split == 'test' else valid_clips)})")
    obs, pred = int(round(obs_seconds * fps)), int(round(pred_seconds * fps))
    labels = {c: c for v in positions.values() for c in v}
    write_native_dataset(processed_dir, name, positions, sk, labels, summary, fps=fps, obs=obs, pred=pred,
                         side_files=side_files)
    seconds = sum(len(a) for v in positions.values() for a in v.values()) / fps
    summary.notes.append(f"{summary.clips_written} clips, {seconds:.1f} s of motion at {fps} fps "
                         f"(looping clips x{loop_repeats}); windows {obs}+{pred} frames "
                         f"(use task.history_sec={obs_seconds} task.prediction_horizon_sec={pred_seconds})")
    return summary


def bone_lengths(positions: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Mean length of each bone ``[J-1]`` (metres) over frames, for checks."""
    p = np.asarray(parents)
    idx = np.arange(1, len(p))
    return np.linalg.norm(positions[:, idx] - positions[:, p[idx]], axis=-1).mean(0)

