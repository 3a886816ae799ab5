"""Embedded procedural dataset ``synthetic``: human-like motion on the AMASS-22 skeleton, built in seconds.

What it is
    Joint positions from forward kinematics over joint angles on the AMASS/SMPL 22-joint layout (same joint
    order, root = pelvis at index 0), with adult bone lengths (femur 0.40 m x a per-clip scale in
    [0.94, 1.06], standing height about 1.7 m), Z-up, metres, 60 fps, pelvis at about 0.95 m when standing,
    feet kept on the ground (except in jumps). Each clip chains **action primitives** -- ``idle``, ``walk``,
    ``run``, ``turn_left``, ``turn_right``, ``crouch``, ``wave``, ``jump`` -- drawn from a Markov chain with
    random durations, speeds and amplitudes, cross-faded over 0.4 s. Because the next primitive is random,
    one observed past (e.g. standing still) is followed by genuinely different futures (walk away, wave,
    crouch, jump, turn), which gives non-trivial multimodal ground truth. Headings start on the four
    compass directions and turns are exactly 90 degrees, so similar poses recur across clips.

What it is not
    Not motion capture: no contacts beyond "lowest foot on the floor", no physics, no balance, no body
    shape beyond bone lengths, a handful of gaits. Metrics on it test the *pipeline* and give a sanity
    baseline; they say nothing about real-data performance.

Files written into ``out_dir`` (processed layout, everything the evaluation protocol needs):
``data_3d_synthetic.npz`` (``{split: {clip_name: float32 [T, 22, 3]}}``), ``segments_valid.csv`` /
``segments_test.csv`` (``name,init,pred_init,pred_end,class``; class = primitive active at the last observed
frame), ``classes.txt``, ``mmgt_test.txt``, ``mean_motion_test.txt``, ``mmapd_GT.csv``, ``synthetic_info.json``,
``frame_labels.npz`` (dominant primitive index per frame, for captions / action labels: ``synthetic_captions.py``),
``segments_test_long_term_pred.csv`` (the test windows that fit 0.5 s + 5 s, for ``if_long_term_test``).
Deterministic for a given seed (numpy ``default_rng``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.io import atomic_path, atomic_write
from skeleton_diffusion.data.mean_motion import write_mean_motion
from skeleton_diffusion.data.mmgt import compute_mmgt, compute_mmgt_apd, mmgt_summary, write_mmapd_csv, write_mmgt
from skeleton_diffusion.data.processed import save_processed
from skeleton_diffusion.data.segments import clip_windows, write_named_segments

__all__ = ["SyntheticConfig", "PRIMITIVES", "PARENTS", "REST_OFFSETS", "generate_clip", "build_synthetic_dataset"]

VERSION = 1
FPS = 60
FRAME_LABELS_FILE = "frame_labels.npz"  # {"<split>/<clip>": int8 [T] index into PRIMITIVES}
NUM_JOINTS = 22

#: AMASS-22 parents (pelvis root), identical to the official kinematic tree.
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# Rest pose (standing, arms hanging) offsets from the parent, body frame: x = body right, y = forward, z = up.
REST_OFFSETS = np.array(
    [
        [0.00, 0.00, 0.00],    # 0 pelvis (root)
        [-0.09, 0.00, -0.08],  # 1 LHip
        [0.09, 0.00, -0.08],   # 2 RHip
        [0.00, -0.01, 0.11],   # 3 Spine1
        [0.00, 0.00, -0.40],   # 4 LKnee  (femur)
        [0.00, 0.00, -0.40],   # 5 RKnee
        [0.00, 0.01, 0.13],    # 6 Spine3 (SMPL spine2)
        [0.00, -0.01, -0.40],  # 7 LAnkle (tibia)
        [0.00, -0.01, -0.40],  # 8 RAnkle
        [0.00, 0.00, 0.05],    # 9 Neck   (SMPL spine3)
        [0.00, 0.12, -0.05],   # 10 LFoot
        [0.00, 0.12, -0.05],   # 11 RFoot
        [0.00, -0.01, 0.20],   # 12 BMN   (SMPL neck)
        [-0.07, 0.00, 0.12],   # 13 LCollar
        [0.07, 0.00, 0.12],    # 14 RCollar
        [0.00, 0.03, 0.10],    # 15 Head
        [-0.11, -0.01, 0.03],  # 16 LShoulder
        [0.11, -0.01, 0.03],   # 17 RShoulder
        [-0.02, 0.00, -0.27],  # 18 LElbow (upper arm)
        [0.02, 0.00, -0.27],   # 19 RElbow
        [-0.01, 0.00, -0.25],  # 20 LWrist (forearm)
        [0.01, 0.00, -0.25],   # 21 RWrist
    ],
    dtype=np.float64,
)  # fmt: skip

PRIMITIVES = ("idle", "walk", "run", "turn_left", "turn_right", "crouch", "wave", "jump")

# Markov chain over primitives (rows sum to 1).
_TRANSITIONS = {
    "idle": {"walk": 0.3, "wave": 0.15, "crouch": 0.15, "jump": 0.15, "turn_left": 0.125, "turn_right": 0.125},
    "walk": {"walk": 0.1, "run": 0.2, "turn_left": 0.2, "turn_right": 0.2, "idle": 0.3},
    "run": {"walk": 0.45, "turn_left": 0.15, "turn_right": 0.15, "jump": 0.25},
    "turn_left": {"walk": 0.6, "run": 0.15, "idle": 0.25},
    "turn_right": {"walk": 0.6, "run": 0.15, "idle": 0.25},
    "crouch": {"idle": 0.6, "jump": 0.2, "walk": 0.2},
    "wave": {"idle": 0.6, "walk": 0.2, "crouch": 0.2},
    "jump": {"idle": 0.5, "walk": 0.3, "run": 0.2},
}
# Duration ranges in seconds; turns and jumps have fixed durations (exact 90 degree turns).
_DURATIONS = {
    "idle": (1.0, 2.5), "walk": (1.5, 3.0), "run": (1.0, 2.5), "turn_left": (1.0, 1.0), "turn_right": (1.0, 1.0),
    "crouch": (1.5, 3.0), "wave": (1.5, 3.0), "jump": (1.2, 1.2),
}  # fmt: skip
_GAIT_FREQ = {"walk": 0.9, "run": 1.4, "turn_left": 0.8, "turn_right": 0.8}  # stride cycles per second
_BLEND_S = 0.4
_FOOT_CLEARANCE = 0.03  # height of the lowest foot/ankle joint above the floor (m)


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes of the generated dataset. ``small()`` is a tiny variant for tests."""

    n_train: int = 120
    n_valid: int = 24
    n_test: int = 48
    clip_seconds: tuple[float, float] = (8.0, 12.0)
    obs_length: int = 30
    pred_length: int = 120
    window_stride: int = 60  # frames between consecutive valid/test windows
    multimodal_threshold: float = 0.4

    @classmethod
    def small(cls) -> "SyntheticConfig":
        return cls(n_train=6, n_valid=2, n_test=4, clip_seconds=(5.0, 6.0))


# ----------------------------------------------------------------------------------------------- rotations
def _rx(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """``[..., 3]`` radians (x = flexion, y = abduction, z = twist) -> ``[..., 3, 3]`` = Rz @ Ry @ Rx."""
    return _rz(angles[..., 2]) @ _ry(angles[..., 1]) @ _rx(angles[..., 0])


def forward_kinematics(local_rot: np.ndarray, root_pos: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``local_rot [T, J, 3, 3]`` (joint 0 = global root orientation), ``root_pos [T, 3]``, ``offsets [J, 3]``
    -> joint positions ``[T, J, 3]``. Parents precede children (AMASS order)."""
    t, j = local_rot.shape[:2]
    glob = np.empty_like(local_rot)
    pos = np.empty((t, j, 3), dtype=np.float64)
    glob[:, 0] = local_rot[:, 0]
    pos[:, 0] = root_pos
    for k in range(1, j):
        p = PARENTS[k]
        pos[:, k] = pos[:, p] + np.einsum("tab,b->ta", glob[:, p], offsets[k])
        glob[:, k] = glob[:, p] @ local_rot[:, k]
    return pos


# ----------------------------------------------------------------------------------------------- primitives
D = np.deg2rad


@dataclass
class _Seg:
    name: str
    start: int
    end: int  # exclusive
    amp: float
    speed: float
    freq: float
    side: int  # +1 / -1 (wave arm, random asymmetries)
    phase0: float


def _pose_idle(t: np.ndarray, g: np.ndarray, s: _Seg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(t)
    ang = np.zeros((n, NUM_JOINTS, 3))
    sway = np.sin(2 * np.pi * 0.25 * t + s.phase0)
    ang[:, 0, 1] = D(1.5) * sway * s.amp  # pelvis roll
    ang[:, 3, 0] = D(2.0) * np.sin(2 * np.pi * 0.3 * t + s.phase0)  # breathing
    ang[:, 16, 1], ang[:, 17, 1] = D(6), -D(6)
    ang[:, 18, 0] = ang[:, 19, 0] = D(10)
    ang[:, 1, 1], ang[:, 2, 1] = D(3) * s.side, -D(3) * s.side
    return ang, np.zeros(n), np.zeros(n)


def _pose_gait(t: np.ndarray, g: np.ndarray, s: _Seg, run: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(t)
    ang = np.zeros((n, NUM_JOINTS, 3))
    a = s.amp
    hip, knee, arm, elbow, lean = (40, 95, 35, 85, 12) if run else (25, 55, 18, 15, 3)
    phl, phr = g, g + np.pi
    for hipj, kneej, anklej, ph in ((1, 4, 7, phl), (2, 5, 8, phr)):
        ang[:, hipj, 0] = D(hip) * a * np.sin(ph)
        swing = np.clip(np.sin(ph + 0.9), 0, None)  # knee bends while the leg swings forward
        ang[:, kneej, 0] = -D(5 + knee * a * swing)
        ang[:, anklej, 0] = D(10) * np.sin(ph - 0.6)
    for shj, elj, ph in ((16, 18, phr), (17, 19, phl)):
        ang[:, shj, 0] = D(arm) * a * np.sin(ph)
        ang[:, elj, 0] = D(elbow + 8 * np.sin(ph))
    ang[:, 16, 1], ang[:, 17, 1] = D(8), -D(8)
    ang[:, 0, 2] = D(6 if run else 4) * np.sin(g)  # pelvis twist
    ang[:, 6, 2] = -D(8 if run else 5) * np.sin(g)  # counter-rotating thorax
    ang[:, 3, 0] = -D(lean)
    speed = np.full(n, (3.0 if run else 1.3) * s.speed)
    yaw = np.zeros(n)
    return ang, speed, yaw


def _pose_walk(t, g, s):
    return _pose_gait(t, g, s, run=False)


def _pose_run(t, g, s):
    return _pose_gait(t, g, s, run=True)


def _pose_turn(t, g, s, direction: int):
    ang, speed, yaw = _pose_gait(t, g, s, run=False)
    ang *= 0.7
    return ang, speed * 0.5, np.full(len(t), direction * np.pi / 2)  # exactly 90 deg over 1 s


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _pose_crouch(t, g, s):
    ang, _, _ = _pose_idle(t, g, s)
    dur = (s.end - s.start) / FPS
    k = _smoothstep(t / 0.5) * _smoothstep((dur - t) / 0.5) * s.amp  # go down, hold, come up
    ang[:, 1, 0] = ang[:, 2, 0] = D(85) * k
    ang[:, 4, 0] = ang[:, 5, 0] = -D(115) * k
    ang[:, 7, 0] = ang[:, 8, 0] = D(25) * k
    ang[:, 3, 0] += -D(25) * k
    ang[:, 16, 0] += D(45) * k
    ang[:, 17, 0] += D(45) * k
    ang[:, 0, 0] = -D(0) * k
    return ang, np.zeros(len(t)), np.zeros(len(t))


def _pose_wave(t, g, s):
    ang, _, _ = _pose_idle(t, g, s)
    dur = (s.end - s.start) / FPS
    k = _smoothstep(t / 0.4) * _smoothstep((dur - t) / 0.4)
    sh, el = (16, 18) if s.side > 0 else (17, 19)
    ang[:, sh, 1] = s.side * D(150) * k  # arm up sideways (left: +y rotation)
    ang[:, sh, 0] = D(15) * k
    ang[:, el, 1] = s.side * D(20 + 25 * np.sin(2 * np.pi * 1.6 * s.freq * t + s.phase0)) * k
    return ang, np.zeros(len(t)), np.zeros(len(t))


def _pose_jump(t, g, s):
    ang, _, _ = _pose_idle(t, g, s)
    # 0-0.35 s crouch, 0.35-0.45 push, 0.45-0.85 flight, 0.85-1.2 landing
    down = _smoothstep(t / 0.3) * (1 - _smoothstep((t - 0.35) / 0.1)) + _smoothstep((t - 0.85) / 0.1) * (
        1 - _smoothstep((t - 0.95) / 0.25)
    )
    down *= s.amp
    ang[:, 1, 0] = ang[:, 2, 0] = D(60) * down
    ang[:, 4, 0] = ang[:, 5, 0] = -D(85) * down
    ang[:, 7, 0] = ang[:, 8, 0] = D(20) * down
    ang[:, 3, 0] += -D(20) * down
    arms = _smoothstep((t - 0.3) / 0.15) * (1 - _smoothstep((t - 0.8) / 0.3))
    ang[:, 16, 0] += D(150) * arms
    ang[:, 17, 0] += D(150) * arms
    return ang, np.zeros(len(t)), np.zeros(len(t))


def _jump_height(t: np.ndarray, amp: float) -> np.ndarray:
    flight = 0.4
    tt = t - 0.45
    h = 4 * 0.25 * amp * (tt / flight) * (1 - tt / flight)  # parabola, apex 0.25 m * amp
    return np.where((tt > 0) & (tt < flight), h, 0.0)


_POSES: dict[str, Callable] = {
    "idle": _pose_idle,
    "walk": _pose_walk,
    "run": _pose_run,
    "turn_left": lambda t, g, s: _pose_turn(t, g, s, +1),
    "turn_right": lambda t, g, s: _pose_turn(t, g, s, -1),
    "crouch": _pose_crouch,
    "wave": _pose_wave,
    "jump": _pose_jump,
}


# ----------------------------------------------------------------------------------------------- clips
def _schedule(rng: np.random.Generator, n_frames: int) -> list[_Seg]:
    segs: list[_Seg] = []
    name = rng.choice(["idle", "walk", "idle", "run", "wave", "crouch"])
    start = 0
    while start < n_frames:
        lo, hi = _DURATIONS[name]
        dur = int(round(rng.uniform(lo, hi) * FPS))
        segs.append(_Seg(str(name), start, start + dur, amp=float(rng.uniform(0.85, 1.15)),
                         speed=float(rng.uniform(0.85, 1.15)), freq=float(rng.uniform(0.9, 1.1)),
                         side=int(rng.choice([-1, 1])), phase0=float(rng.uniform(0, 2 * np.pi))))  # fmt: skip
        start += dur
        nxt = _TRANSITIONS[name]
        name = rng.choice(list(nxt), p=np.array(list(nxt.values())) / sum(nxt.values()))
    return segs


def _weights(segs: list[_Seg], n_frames: int) -> np.ndarray:
    """Cross-fade weights ``[n_frames, len(segs)]``: linear ramps of ``_BLEND_S`` centred at the boundaries
    (so each segment's integral equals its duration and turns are exactly 90 degrees)."""
    f = np.arange(n_frames) + 0.5
    half = _BLEND_S * FPS / 2
    w = np.zeros((n_frames, len(segs)))
    for i, s in enumerate(segs):
        up = np.ones(n_frames) if i == 0 else np.clip((f - (s.start - half)) / (2 * half), 0, 1)
        down = np.ones(n_frames) if i == len(segs) - 1 else np.clip(((s.end + half) - f) / (2 * half), 0, 1)
        w[:, i] = np.minimum(up, down)
    return w / w.sum(axis=1, keepdims=True)


def generate_clip(rng: np.random.Generator, n_frames: int) -> tuple[np.ndarray, list[str]]:
    """One clip: positions ``float32 [n_frames, 22, 3]`` and the dominant primitive name per frame."""
    segs = _schedule(rng, n_frames)
    w = _weights(segs, n_frames)
    # global gait phase from the blended stride frequency
    freq = sum(w[:, i] * _GAIT_FREQ.get(s.name, 0.9) * s.freq for i, s in enumerate(segs))
    gait = rng.uniform(0, 2 * np.pi) + np.cumsum(2 * np.pi * freq / FPS)
    ang = np.zeros((n_frames, NUM_JOINTS, 3))
    speed = np.zeros(n_frames)
    yaw_rate = np.zeros(n_frames)
    jump_h = np.zeros(n_frames)
    for i, s in enumerate(segs):
        idx = np.flatnonzero(w[:, i] > 0)
        if len(idx) == 0:
            continue
        t_local = (idx - s.start) / FPS
        a, v, y = _POSES[s.name](t_local, gait[idx], s)
        wi = w[idx, i]
        ang[idx] += wi[:, None, None] * a
        speed[idx] += wi * v
        yaw_rate[idx] += wi * y
        if s.name == "jump":
            jump_h[idx] += wi * _jump_height(t_local, s.amp)
    # slow individual posture drift (smooth, small)
    for j in (3, 6, 12, 16, 17):
        for ax in (0, 1):
            fr, ph = rng.uniform(0.05, 0.2), rng.uniform(0, 2 * np.pi)
            ang[:, j, ax] += D(2.0) * np.sin(2 * np.pi * fr * np.arange(n_frames) / FPS + ph)
    heading = D(90.0) * rng.integers(0, 4) + D(rng.normal(0, 4.0)) + np.cumsum(yaw_rate) / FPS
    local = euler_to_matrix(ang)
    local[:, 0] = _rz(heading) @ local[:, 0]
    scale = rng.uniform(0.94, 1.06)
    offsets = REST_OFFSETS * scale
    pos = forward_kinematics(local, np.zeros((n_frames, 3)), offsets)
    ground = pos[:, [7, 8, 10, 11], 2].min(axis=1)
    root = np.zeros((n_frames, 3))
    fwd = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)  # body +y rotated by heading
    root[:, :2] = rng.uniform(-2, 2, size=2) + np.cumsum(fwd * speed[:, None] / FPS, axis=0)
    root[:, 2] = _FOOT_CLEARANCE - ground + jump_h
    pos = pos + root[:, None, :]
    labels = [segs[k].name for k in w.argmax(axis=1)]
    return pos.astype(np.float32), labels


def _windows(
    name: str, length: int, labels: list[str], cfg: SyntheticConfig
) -> list[tuple[str, int, int, int, str]]:
    rows = []
    for init in clip_windows(length, cfg.obs_length, cfg.pred_length, cfg.window_stride):
        pred_init = init + cfg.obs_length
        rows.append((name, init, pred_init, init + cfg.obs_length + cfg.pred_length - 1, labels[pred_init - 1]))
    return rows


def build_synthetic_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    small: bool = False,
    force: bool = False,
    verbose: bool = True,
) -> dict:
    """Generate the dataset into ``out_dir`` (see module doc). Skips if complete unless ``force``.

    Returns a summary dict (clips, frames, windows per split, MMGT statistics, seconds).
    """
    t0 = time.time()
    out = Path(out_dir)
    cfg = config or (SyntheticConfig.small() if small else SyntheticConfig())
    info_path = out / "synthetic_info.json"
    npz_path = out / "data_3d_synthetic.npz"
    if not force and info_path.is_file() and npz_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("seed") == seed and info.get("config") == _cfg_dict(cfg) and info.get("version") == VERSION:
            if verbose:
                print(f"synthetic dataset already present in {out} (use --force to rebuild)")
            lt = _write_long_term(out, cfg)  # datasets built before the long-term CSV existed get it here
            if lt["written"] and verbose:
                print(f"wrote {lt['num_segments']} long-term test windows -> {lt['path']}")
            info["skipped"] = True
            return info
    rng = np.random.default_rng(seed)
    positions: dict[str, dict[str, np.ndarray]] = {}
    rows: dict[str, list] = {}
    frame_labels: dict[str, np.ndarray] = {}  # "<split>/<clip>" -> dominant primitive index per frame
    counts = {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}
    for split, n in counts.items():
        positions[split] = {}
        rows[split] = []
        for c in range(n):
            n_frames = int(round(rng.uniform(*cfg.clip_seconds) * FPS))
            pos, labels = generate_clip(rng, n_frames)
            name = f"{split}_{c:04d}"
            positions[split][name] = pos
            frame_labels[f"{split}/{name}"] = np.array([PRIMITIVES.index(x) for x in labels], dtype=np.int8)
            rows[split].extend(_windows(name, n_frames, labels, cfg))
    out.mkdir(parents=True, exist_ok=True)
    save_processed(npz_path, positions, num_joints=NUM_JOINTS, joint_names=list(get_skeleton("amass").joint_names))
    with atomic_path(out / FRAME_LABELS_FILE) as tmp:  # per-frame primitive labels (captions, action labels)
        np.savez_compressed(tmp, **frame_labels)
    write_named_segments(out / "segments_valid.csv", rows["valid"])
    write_named_segments(out / "segments_test.csv", rows["test"])
    with atomic_write(out / "classes.txt", "w") as fh:
        fh.write("\n".join(PRIMITIVES))
    long_term = _write_long_term(out, cfg, force=True)  # segments_test_long_term_pred.csv (0.5 s -> 5 s)

    # side files from the test windows (metric space)
    test_clips = positions["test"]
    last_obs = np.stack([test_clips[r[0]][r[2] - 1] for r in rows["test"]])
    last_obs = last_obs[:, 1:] - last_obs[:, :1]
    futures = np.stack([test_clips[r[0]][r[2] : r[3] + 1] for r in rows["test"]])
    futures = futures[:, :, 1:] - futures[:, :, :1]
    mmgt = compute_mmgt(last_obs, cfg.multimodal_threshold)
    write_mmgt(out / "mmgt_test.txt", mmgt)
    from skeleton_diffusion.data.mean_motion import compute_mean_motion

    refs, freqs = compute_mean_motion(list(futures), [r[4] for r in rows["test"]], PRIMITIVES)
    write_mean_motion(out / "mean_motion_test.txt", PRIMITIVES, refs, freqs)
    write_mmapd_csv(out / "mmapd_GT.csv", compute_mmgt_apd(futures, mmgt))

    train_frames = sum(len(v) for v in positions["train"].values())
    summary = {
        "version": VERSION,
        "seed": seed,
        "config": _cfg_dict(cfg),
        "fps": FPS,
        "num_joints": NUM_JOINTS,
        "clips": {k: len(v) for k, v in positions.items()},
        "frames": {k: int(sum(len(a) for a in v.values())) for k, v in positions.items()},
        "windows": {
            "train_all": int(sum(max(0, len(a) - cfg.obs_length - cfg.pred_length) for a in positions["train"].values())),
            "valid": len(rows["valid"]),
            "test": len(rows["test"]),
            "test_long_term": int(long_term.get("num_segments", 0)),
        },
        "mmgt": mmgt_summary(mmgt),
        "test_class_counts": {c: sum(r[4] == c for r in rows["test"]) for c in PRIMITIVES},
        "train_frames": train_frames,
    }
    summary["seconds"] = round(time.time() - t0, 2)
    with atomic_write(info_path, "w") as fh:
        json.dump(summary, fh, indent=2)
    if verbose:
        m = summary["mmgt"]
        print(
            f"synthetic dataset -> {out}: clips {summary['clips']}, frames {summary['frames']}, windows "
            f"{summary['windows']}, MMGT mean size {m['mean_size']:.2f} (singletons {m['singletons']}/"
            f"{m['num_segments']}), {summary['seconds']} s"
        )
    return summary


def _write_long_term(out: Path, cfg: SyntheticConfig, force: bool = False) -> dict:
    """``segments_test_long_term_pred.csv`` from ``segments_test.csv``: the test windows whose
    ``obs_length + 2.5 * pred_length`` frames fit in their clip (see :mod:`..long_term`)."""
    from skeleton_diffusion.utils.errors import DataFormatError
    from skeleton_diffusion.data.long_term import write_long_term_segments

    try:
        return write_long_term_segments(out, dataset_name="synthetic", fps=FPS, history_sec=cfg.obs_length / FPS,
                                        horizon_sec=cfg.pred_length / FPS, force=force)
    except DataFormatError as exc:  # clips too short for any long-term window (custom configs): no file
        print(f"warning: no long-term test windows written ({exc})")
        return {"written": False, "num_segments": 0}


def _cfg_dict(cfg: SyntheticConfig) -> dict:
    d = dict(cfg.__dict__)
    d["clip_seconds"] = list(d["clip_seconds"])
    return d
