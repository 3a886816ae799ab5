"""Cross-skeleton evaluation: a model trained on skeleton A predicts motion recorded on skeleton B.

A **joint map file** (``configs/joint_maps/*.yaml``) documents the correspondence::

    name: h36m17_to_amass22
    model_skeleton: amass          # skeleton the model was trained on (A)
    data_skeleton: h36m            # skeleton of the evaluation data (B)
    to_model:                      # EVERY model joint from data joints: one name, or a list (mean of those)
      GlobalRoot: GlobalRoot
      Spine1: [GlobalRoot, Torso]
      ...
    shared:                        # joints that are the same anatomical point (model joint: data joint);
      LHip: LHip                   # metrics are computed on these only (root excluded, hip-relative)
      ...

Protocol (:func:`evaluate_cross_skeleton`): each data test window (world space, metres) is resampled in time to the
model's frame rate, its observation is converted to the model's joints with ``to_model``, the model samples futures,
and predictions and ground truth are compared on the ``shared`` joints, each relative to its own root: ADE, FDE,
APD, MMADE/MMFDE (official definitions: L2 of the flattened pose of the shared joints, so values depend on how
many joints are shared and are not comparable with full-skeleton numbers) and ``MPJPE_best`` (mean per-joint error
of the best sample, metres). Joint definitions differ between skeletons (e.g. SMPL vs H36M hips), which adds a
constant offset to every error; compare methods under the same map, not with same-skeleton numbers.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError

__all__ = ["JointMap", "load_joint_map", "map_to_model", "resample_window", "evaluate_cross_skeleton"]

JOINT_MAP_DIR = Path(__file__).resolve().parents[4] / "configs" / "joint_maps"


@dataclass(frozen=True)
class JointMap:
    """Parsed joint map: ``to_model[k]`` = data-joint indices averaged for model joint ``k``; ``shared`` =
    ``(model index, data index)`` pairs (root excluded)."""

    name: str
    model_joints: tuple[str, ...]
    data_joints: tuple[str, ...]
    to_model: tuple[tuple[int, ...], ...]
    shared: tuple[tuple[int, int], ...]

    @property
    def shared_names(self) -> list[tuple[str, str]]:
        return [(self.model_joints[a], self.data_joints[b]) for a, b in self.shared]


def _skeleton(spec: Any, source: str):
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    try:
        return get_skeleton(spec)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_joint_map(spec: str | os.PathLike | Mapping, model_skeleton: Any = None, data_skeleton: Any = None
                   ) -> JointMap:
    """Parse a joint map (file path, a name in ``configs/joint_maps``, or a mapping). ``model_skeleton`` /
    ``data_skeleton`` (skeletons or names) override the file's; every name is checked against them."""
    import yaml

    if isinstance(spec, Mapping):
        d, src = dict(spec), "<joint map>"
    else:
        path = Path(spec)
        if not path.is_file() and (JOINT_MAP_DIR / f"{spec}.yaml").is_file():
            path = JOINT_MAP_DIR / f"{spec}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in JOINT_MAP_DIR.glob("*.yaml")) if JOINT_MAP_DIR.is_dir() else []
            raise ConfigError(f"joint map not found: '{spec}' (a file, or one of {known})")
        d, src = yaml.safe_load(path.read_text()) or {}, str(path)
    for key in ("to_model", "shared"):
        if not isinstance(d.get(key), Mapping) or not d[key]:
            raise DataFormatError(f"{src}: '{key}' must be a non-empty mapping (model joint: data joint)")
    sk_m = _skeleton(model_skeleton if model_skeleton is not None else d.get("model_skeleton"), src)
    sk_d = _skeleton(data_skeleton if data_skeleton is not None else d.get("data_skeleton"), src)
    mi = {n: i for i, n in enumerate(sk_m.joint_names)}
    di = {n: i for i, n in enumerate(sk_d.joint_names)}

    def data_idx(names: Any, model_joint: str) -> tuple[int, ...]:
        lst = [names] if isinstance(names, str) else list(names)
        bad = [n for n in lst if n not in di]
        if bad or not lst:
            raise DataFormatError(f"{src}: model joint {model_joint!r} maps to {bad or lst}, not joints of data "
                                  f"skeleton '{sk_d.name}' ({list(sk_d.joint_names)})")
        return tuple(di[n] for n in lst)

    unknown = [k for k in list(d["to_model"]) + list(d["shared"]) if k not in mi]
    if unknown:
        raise DataFormatError(f"{src}: {unknown} are not joints of model skeleton '{sk_m.name}' "
                              f"({list(sk_m.joint_names)})")
    missing = [n for n in sk_m.joint_names if n not in d["to_model"]]
    if missing:
        raise DataFormatError(f"{src}: to_model must give every joint of model skeleton '{sk_m.name}'; missing {missing}")
    to_model = tuple(data_idx(d["to_model"][n], n) for n in sk_m.joint_names)
    shared = tuple((mi[k], data_idx(v, k)[0]) for k, v in d["shared"].items() if mi[k] != 0)
    return JointMap(str(d.get("name", Path(str(spec)).stem if not isinstance(spec, Mapping) else "map")),
                    tuple(sk_m.joint_names), tuple(sk_d.joint_names), to_model, shared)


def map_to_model(x: np.ndarray, jmap: JointMap) -> np.ndarray:
    """``[..., J_data, 3]`` -> ``[..., J_model, 3]`` (each model joint = mean of its data joints)."""
    if x.shape[-2] != len(jmap.data_joints):
        raise DataFormatError(f"expected {len(jmap.data_joints)} data joints, got shape {x.shape}")
    return np.stack([x[..., list(idx), :].mean(axis=-2) for idx in jmap.to_model], axis=-2)


def resample_window(x: np.ndarray, src_fps: float, dst_fps: float, num_frames: int, start_s: float = 0.0) -> np.ndarray:
    """Linear resampling in time: frames at ``start_s + k / dst_fps`` (k < num_frames) of ``x [T, J, 3]`` sampled at
    ``src_fps`` (clamped to the window)."""
    if src_fps == dst_fps and start_s == 0.0:
        return x[:num_frames]
    t = start_s + np.arange(num_frames) / dst_fps
    pos = np.clip(t * src_fps, 0, len(x) - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (pos - i0)[:, None, None]
    return (1 - w) * x[i0] + w * x[i1]


def _metrics(pred: torch.Tensor, gt: torch.Tensor, mm: list[torch.Tensor] | None) -> dict[str, torch.Tensor]:
    from skeleton_diffusion.metrics.distance import ade, apd, fde, mmade, mmfde

    out = {"ADE": ade(pred, gt), "FDE": fde(pred, gt), "APD": apd(pred)}
    per_joint = torch.linalg.norm(pred - gt[:, None], dim=-1).mean(dim=(-1, -2))  # [B, S]
    out["MPJPE_best"] = per_joint.min(dim=1).values
    if mm is not None:
        out["MMADE"], out["MMFDE"] = mmade(pred, mm), mmfde(pred, mm)
    return out


def evaluate_cross_skeleton(
    predictor: Any,
    dataset: Any,
    jmap: JointMap,
    *,
    data_fps: float,
    num_samples: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    max_windows: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``predictor`` (``.predict(obs [B, T, J_A, 3] metres, num_samples, seed=)`` -> ``[B, S, T_pred, J_A,
    3]``, with ``.skeleton``, ``.obs_length``, ``.pred_length``, ``.fps``) on the test windows of ``dataset`` (a
    window dataset on skeleton B exposing ``window_world(i)`` and optionally ``mm_gt_indices``) through ``jmap``.
    Returns ``{'metrics': {name: mean}, 'num_windows', 'shared_joints', ...}`` (metres)."""
    if tuple(predictor.skeleton.joint_names) != jmap.model_joints:
        from skeleton_diffusion.skeletons.formats.files import describe_mismatch

        raise ConfigError(describe_mismatch("the model", predictor.skeleton, f"joint map '{jmap.name}'",
                                            list(jmap.model_joints)))
    if tuple(dataset.skeleton.joint_names) != jmap.data_joints:
        from skeleton_diffusion.skeletons.formats.files import describe_mismatch

        raise ConfigError(describe_mismatch("the dataset", dataset.skeleton, f"joint map '{jmap.name}'",
                                            list(jmap.data_joints)))
    t0 = time.time()
    fps_m = float(predictor.fps)
    n_obs, n_pred = int(predictor.obs_length), int(predictor.pred_length)
    obs_s = n_obs / fps_m
    m_idx = [a for a, _ in jmap.shared]
    d_idx = [b for _, b in jmap.shared]
    n = len(dataset.segments) if max_windows is None else min(len(dataset.segments), int(max_windows))
    sums: dict[str, float] = {}
    for start in range(0, n, batch_size):
        ids = range(start, min(n, start + batch_size))
        obs_b, gt_b = [], []
        for i in ids:
            o, f = dataset.window_world(i)
            w = np.concatenate([o, f], axis=0).astype(np.float64)
            need = (n_obs + n_pred - 1) / fps_m * data_fps + 1
            if len(w) < math.floor(need - 1e-6):
                raise ConfigError(f"data windows hold {len(w)} frames at {data_fps} fps but the model needs "
                                  f"{n_obs}+{n_pred} frames at {fps_m} fps; build/evaluate the data with a horizon "
                                  "of at least the model's")
            obs_b.append(map_to_model(resample_window(w, data_fps, fps_m, n_obs), jmap))
            fut = resample_window(w, data_fps, fps_m, n_pred, start_s=obs_s)
            gt_b.append(fut[:, d_idx] - fut[:, :1])
        pred = predictor.predict(np.stack(obs_b).astype(np.float32), num_samples=num_samples, seed=seed + start)
        pred = torch.as_tensor(np.asarray(pred), dtype=torch.float64)
        pred = pred[..., m_idx, :] - pred[..., :1, :]
        gt = torch.as_tensor(np.stack(gt_b), dtype=torch.float64)
        for k, v in _metrics(pred, gt, None).items():
            sums[k] = sums.get(k, 0.0) + float(v.sum())
    metrics = {k: v / n for k, v in sums.items()}
    return {"metrics": metrics, "num_windows": n, "num_samples": num_samples, "joint_map": jmap.name,
            "shared_joints": jmap.shared_names, "model_fps": fps_m, "data_fps": data_fps,
            "wall_time_s": time.time() - t0}
