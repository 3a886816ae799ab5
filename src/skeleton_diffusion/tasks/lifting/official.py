"""The official test protocols of converted DiffPose / DiffHPE runs (``eval.py task=lifting`` on a converted run).

A converted official lifter carries an :class:`OfficialLiftingProtocol` (attribute ``official_protocol``) that says
how its authors tested it; :func:`evaluate_official` runs it on the VideoPose3D Human3.6M files
(:func:`skeleton_diffusion.data.lifting_files.load_official_test_sequences`), test subjects S9 and S11:

* ``mode='frames'`` (frame-based DiffPose): every frame of every sequence, concatenated in the official order and
  lifted in batches of ``batch_size`` (1024); GMM 2D files: one kernel per joint drawn with
  ``RandomState(gmm_seed)`` (``PoseGenerator_gmm``); protocol #1/#2 per action with
  :func:`~skeleton_diffusion.metrics.lifting.official_action_errors` (mixed-batch P-MPJPE defect behind
  ``mixed_batch_p2``); N-MPJPE per frame;
* ``mode='sequences'`` (video-based DiffPose): one ``lift`` per sequence; per-action frame-weighted MPJPE,
  P-MPJPE, N-MPJPE (uncentred) and MPJVE;
* ``mode='windows'`` (DiffHPE): non-overlapping windows of ``frames`` (remainder dropped), the occlusion of
  ``miss_type`` drawn per window with one shared ``RandomState(seed)`` (the official generator), ``num_samples``
  hypotheses averaged; per-action MPJPE, P-MPJPE, N-MPJPE, MPJVE, Sag. sym (``Asymmetry``) and Seg. std
  (``BoneStd``, unbiased).

Action average (``action_average``): ``'all15'`` = the sum of the per-action means / 15 with absent actions
counting 0 (DiffPose's ``print_error``: an action-filtered run reports its error / 15), ``'present'`` = the mean
over the actions evaluated; ``'official'`` = the method's own (``OfficialLiftingProtocol.action_average``).
All errors in mm (MPJVE mm/frame).
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from skeleton_diffusion.checkpoints.format import read_meta, resolve_checkpoint
from skeleton_diffusion.data.gmm2d import diffpose_gmm_items
from skeleton_diffusion.data.lifting_files import load_official_test_sequences
from skeleton_diffusion.metrics.lifting import (
    H36M_ACTIONS,
    action_base_name,
    bone_asymmetry,
    bone_length_std,
    mpjpe,
    mpjve,
    n_mpjpe,
    official_action_errors,
    p_mpjpe,
)
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["ACTION_AVERAGES", "OfficialLiftingProtocol", "evaluate_official", "is_converted_official", "protocol_from_config",
           "run_official"]

ACTION_AVERAGES = ("official", "all15", "present")


@dataclass(frozen=True)
class OfficialLiftingProtocol:
    """How a method's authors tested it (see module docstring). ``occlusion_mask(miss_type, L, J, rate, rng)``
    -> ``[L, J]`` mask (``'noisy'``: ``(mask, noise [L, J, 2])``) is the method's occlusion generator;
    ``limbs`` / ``sides`` (left and right limb indices) feed Sag. sym and Seg. std (``windows`` mode)."""

    name: str
    mode: str                                  # frames | sequences | windows
    test_2d: str                               # file name inside the data folder
    num_samples: int = 1
    frames: int = 1
    batch_size: int = 1024
    action_average: str = "all15"              # all15 | present
    mixed_batch_p2: bool = False
    mpjpe_root: int | None = 0                 # protocol #1 root-centring (None: as predicted)
    n_mpjpe_root: int | None = None            # DiffPose's N-MPJPE does not centre
    gmm_seed: int = 19960903                   # np.random.seed of the official DiffPose runner
    miss_type: str = "no_miss"
    miss_rate: float | None = None
    miss_rates: Mapping[str, float] | None = None   # the official conf/data rate per miss_type
    noise_sigma: float = 5.0
    occlusion_mask: Callable[..., Any] | None = None
    limbs: Sequence[tuple[int, int]] | None = None
    sides: tuple[Sequence[int], Sequence[int]] | None = None
    cpu_generator: bool = False                # the lifter draws on the CPU (DiffHPE), else on its device


def protocol_from_config(proto: OfficialLiftingProtocol, opts: Mapping[str, Any]) -> OfficialLiftingProtocol:
    """``proto`` with the overrides of ``task.official`` (``test_2d``, ``num_samples``, ``batch_size``,
    ``action_average``, ``mixed_batch_p2``, ``miss_type``, ``miss_rate``, ``noise_sigma``); ``None`` keeps the
    method's official value."""
    avg = str(opts.get("action_average") or "official")
    if avg not in ACTION_AVERAGES:
        raise ConfigError(f"task.official.action_average must be one of {ACTION_AVERAGES}, got {avg!r}")
    changes: dict[str, Any] = {} if avg == "official" else {"action_average": avg}
    casts = {"test_2d": str, "num_samples": int, "batch_size": int, "mixed_batch_p2": bool, "miss_type": str,
             "miss_rate": float, "noise_sigma": float}
    for key, cast in casts.items():
        if opts.get(key) is not None:
            changes[key] = cast(opts[key])
    out = replace(proto, **changes)
    if out.miss_type != "no_miss" and out.occlusion_mask is None:
        raise ConfigError(f"task.official.miss_type={out.miss_type!r}: the {out.name} protocol has no occlusion "
                          "generator (only DiffHPE's official test draws occlusions); use miss_type=no_miss")
    return out


def _action_ids(sequences: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, int]]:
    names = [a for a in H36M_ACTIONS if any(action_base_name(s["action"]) == a for s in sequences)]
    extra = sorted({action_base_name(s["action"]) for s in sequences} - set(H36M_ACTIONS))
    if extra:
        raise ConfigError(f"actions {extra} are not Human3.6M test actions (expected names from {H36M_ACTIONS})")
    return list(H36M_ACTIONS), {a: i for i, a in enumerate(H36M_ACTIONS) if a in names}


def _aggregate(values: Mapping[str, list[tuple[int, float, float]]], average: str) -> dict[str, Any]:
    """``values[metric] = [(action id, sum, weight)]`` -> per-action weighted means (mm) and the averages."""
    per: dict[str, dict[str, float]] = {}
    avg: dict[str, float] = {}
    for metric, rows in values.items():
        sums, weights = np.zeros(len(H36M_ACTIONS)), np.zeros(len(H36M_ACTIONS))
        for a, s, w in rows:
            sums[a] += s
            weights[a] += w
        present = weights > 0
        means = np.where(present, sums / np.maximum(weights, 1e-12), 0.0)
        per[metric] = {H36M_ACTIONS[i]: float(means[i]) for i in np.flatnonzero(present)}
        denom = len(H36M_ACTIONS) if average == "all15" else max(1, int(present.sum()))
        avg[metric] = float(means.sum() / denom)
    return {"per_action": per, "metrics": avg}


def _frames(lifter: Any, proto: OfficialLiftingProtocol, sequences: Sequence[Mapping[str, Any]],
            device: torch.device, generator: torch.Generator) -> dict[str, Any]:
    pose3d = np.concatenate([s["pose_3d"] for s in sequences])
    actions = [s["action"] for s in sequences for _ in range(len(s["pose_3d"]))]
    if all(s.get("gmm") is not None for s in sequences):
        gmm = np.concatenate([s["gmm"] for s in sequences])
        rng = np.random.RandomState(proto.gmm_seed)
        inp = diffpose_gmm_items(pose3d, gmm, range(len(pose3d)), rng)["input_2d"]
    else:
        inp = np.concatenate([s["pose_2d"] for s in sequences])
    x, gt = torch.from_numpy(np.ascontiguousarray(inp)).float(), torch.from_numpy(pose3d).float()
    preds = []
    for start in range(0, len(x), proto.batch_size):
        hyp = lifter.lift(x[start:start + proto.batch_size].to(device), proto.num_samples, generator=generator)
        preds.append(hyp.float().mean(dim=1).cpu())
    pred = torch.cat(preds)
    official = official_action_errors(pred, gt, actions, proto.batch_size, mixed_batch_p2=proto.mixed_batch_p2,
                                      average_over_all_actions=proto.action_average == "all15",
                                      root=proto.mpjpe_root)
    ids = torch.tensor([H36M_ACTIONS.index(action_base_name(a)) for a in actions])
    nm = n_mpjpe(pred, gt, root=proto.n_mpjpe_root).double() * 1000.0
    rows = [(int(a), float(nm[ids == a].sum()), float((ids == a).sum())) for a in ids.unique()]
    out = _aggregate({"NMPJPE": rows}, proto.action_average)
    p1, p2 = official["per_action_p1"], official["per_action_p2"]
    present = sorted(set(ids.tolist()))
    out["per_action"]["MPJPE"] = {H36M_ACTIONS[i]: float(p1[i]) * 1000.0 for i in present}
    out["per_action"]["PMPJPE"] = {H36M_ACTIONS[i]: float(p2[i]) * 1000.0 for i in present}
    out["metrics"].update(MPJPE=float(official["p1_mm"]), PMPJPE=float(official["p2_mm"]))
    out["num_items"] = int(len(x))
    return out


def _sequence_metrics(pred: torch.Tensor, gt: torch.Tensor, proto: OfficialLiftingProtocol) -> dict[str, torch.Tensor]:
    """``pred, gt [N, T, J, 3]`` -> per-window sums over frames (mm) of each metric (MPJVE: per window mean x T)."""
    mm = 1000.0
    out = {"MPJPE": mpjpe(pred, gt, root=proto.mpjpe_root).sum(-1) * mm, "PMPJPE": p_mpjpe(pred, gt).sum(-1) * mm,
           "NMPJPE": n_mpjpe(pred, gt, root=proto.n_mpjpe_root).sum(-1) * mm}
    if pred.shape[1] > 1:
        out["MPJVE"] = mpjve(pred, gt, root=None) * mm * pred.shape[1]
    if proto.limbs is not None and pred.shape[1] > 1:
        limbs = list(proto.limbs)
        out["BoneStd"] = bone_length_std(pred, limbs, unbiased=True) * mm * pred.shape[1]
        if proto.sides is not None:
            pairs = list(zip(proto.sides[0], proto.sides[1]))
            out["Asymmetry"] = bone_asymmetry(pred, limbs, pairs).sum(-1) * mm
    return out


def _windows(lifter: Any, proto: OfficialLiftingProtocol, sequences: Sequence[Mapping[str, Any]],
             device: torch.device, generator: torch.Generator, seed: int) -> dict[str, Any]:
    rows: dict[str, list[tuple[int, float, float]]] = {}
    rng = np.random.RandomState(seed)
    rate = proto.miss_rate if proto.miss_rate is not None else (proto.miss_rates or {}).get(proto.miss_type, 0.0)
    n_items = 0
    for seq in sequences:
        x2d = torch.from_numpy(np.ascontiguousarray(seq["pose_2d"])).float()
        gt = torch.from_numpy(seq["pose_3d"]).float()
        a = H36M_ACTIONS.index(action_base_name(seq["action"]))
        if proto.mode == "windows":
            n = x2d.shape[0] // proto.frames
            if n == 0:
                continue
            x2d = x2d[: n * proto.frames].reshape(n, proto.frames, *x2d.shape[1:])
            gt = gt[: n * proto.frames].reshape(n, proto.frames, *gt.shape[1:])
        else:
            x2d, gt = x2d[None], gt[None]
        mask = None
        if proto.miss_type != "no_miss":
            masks = []
            for w in range(x2d.shape[0]):
                m = proto.occlusion_mask(proto.miss_type, x2d.shape[1], x2d.shape[2], rate, rng,
                                         noise_sigma=proto.noise_sigma)
                if isinstance(m, tuple):   # noisy: additive noise in normalised units, all joints visible
                    m, noise = m
                    x2d[w] = x2d[w] + torch.from_numpy(noise).float()
                masks.append(torch.from_numpy(np.asarray(m)).float())
            mask = torch.stack(masks)
        kwargs = {"generator": generator} if mask is None else {"generator": generator, "mask": mask.to(device)}
        hyp = lifter.lift(x2d.to(device), proto.num_samples, **kwargs)          # [N, S, T, J, 3]
        pred = hyp.float().mean(dim=1).cpu()
        for key, val in _sequence_metrics(pred, gt, proto).items():
            rows.setdefault(key, []).append((a, float(val.double().sum()), float(gt.shape[0] * gt.shape[1])))
        n_items += int(gt.shape[0])
    if not rows:
        raise ConfigError(f"no test window of {proto.frames} frames: every sequence is shorter")
    out = _aggregate(rows, proto.action_average)
    out["num_items"] = n_items
    return out


def evaluate_official(lifter: Any, proto: OfficialLiftingProtocol, sequences: Sequence[Mapping[str, Any]], *,
                      seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Run ``proto`` with ``lifter`` (``lift(keypoints_2d, num_samples, generator=..., [mask=...])``) on the
    official test ``sequences`` -> ``{'metrics': {MPJPE, PMPJPE, NMPJPE, (MPJVE, SagSym, SegStd)} mm,
    'per_action': {metric: {action: mm}}, 'protocol': ..., ...}``."""
    if proto.mode not in ("frames", "sequences", "windows"):
        raise ConfigError(f"unknown official protocol mode {proto.mode!r}")
    if proto.action_average not in ("all15", "present"):
        raise ConfigError(f"action_average must be 'all15' or 'present', got {proto.action_average!r}")
    _action_ids(sequences)
    device = torch.device(device)
    generator = torch.Generator(device="cpu" if proto.cpu_generator else device).manual_seed(int(seed))
    torch.manual_seed(int(seed))
    t0 = time.time()
    with torch.no_grad():
        if proto.mode == "frames":
            res = _frames(lifter, proto, sequences, device, generator)
        else:
            res = _windows(lifter, proto, sequences, device, generator, int(seed))
    settings = {k: v for k, v in proto.__dict__.items()
                if isinstance(v, (str, int, float, bool, type(None)))}
    return {**res, "protocol": settings, "num_sequences": len(sequences), "num_samples": proto.num_samples,
            "stats_mode": f"official_{proto.name}", "seed": int(seed), "wall_time_s": time.time() - t0}


def is_converted_official(path: str | Path) -> bool:
    """A run converted from the authors' files (``convert --method diffpose|diffhpe``): lifting ``meta`` of a
    DiffPose / DiffHPE checkpoint without our training config."""
    meta = read_meta(path)
    return meta.get("stage") == "lifting" and meta.get("method") in ("diffpose", "diffhpe") and "config" not in meta


def run_official(cfg: Any, load_lifter: Callable[..., Any]) -> dict[str, Any]:
    """``eval.py task=lifting checkpoint_path=<converted run> task.official.data_dir=<VideoPose3D files>``:
    the official protocol of the run's method; writes ``results.json/.csv/.md`` (per-action values under
    ``extra.per_action``) into ``results_path`` or ``<run>/eval/h36m_official_<protocol>_<miss_type>/``."""
    from skeleton_diffusion.tasks.results import write_results

    opts = dict((cfg.get("task") or {}).get("official") or {})
    if not opts.get("data_dir"):
        raise ConfigError("a converted official run is evaluated on the VideoPose3D H36M files: pass "
                          "task.official.data_dir=<folder with data_3d_h36m.npz and the 2D file>")
    device = resolve_device(cfg.get("device", "auto"))
    lifter = load_lifter(cfg.checkpoint_path, device)
    proto = getattr(lifter, "official_protocol", None)
    if not isinstance(proto, OfficialLiftingProtocol):
        raise ConfigError(f"'{cfg.checkpoint_path}' loads a {type(lifter).__name__}, which declares no official "
                          "test protocol (attribute official_protocol)")
    proto = protocol_from_config(proto, opts)
    subjects = [str(s) for s in (opts.get("subjects") or ("S9", "S11"))]
    actions = [str(a) for a in opts["actions"]] if opts.get("actions") else None
    sequences = load_official_test_sequences(opts["data_dir"], proto.test_2d, subjects=subjects, actions=actions)
    res = evaluate_official(lifter, proto, sequences, seed=int(cfg.get("seed", 0)), device=device)
    ckpt_path = resolve_checkpoint(cfg.checkpoint_path)
    if cfg.get("results_path"):
        p = Path(str(cfg.results_path))
        out_dir = p.parent if p.suffix == ".json" else p
    else:
        run = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
        out_dir = run / "eval" / f"h36m_official_{proto.name}_{proto.miss_type}"
    extra = {"method": proto.name.split("_")[0], "protocol": res["protocol"], "per_action": res["per_action"],
             "data_dir": str(opts["data_dir"]), "subjects": subjects, "actions": actions}
    summary = {"metrics": res["metrics"], "num_windows": res["num_items"], "num_samples": res["num_samples"],
               "stats_mode": res["stats_mode"], "seed": res["seed"], "wall_time_s": res["wall_time_s"]}
    paths = write_results(out_dir, summary, dataset="h36m_videopose3d", checkpoint=str(ckpt_path),
                          seeds=[res["seed"]], extra=extra, print_table=bool(cfg.get("progress", True)))
    m = res["metrics"]
    print(f"{proto.name} ({proto.miss_type}): protocol #1 {m['MPJPE']:.1f} mm, protocol #2 {m['PMPJPE']:.1f} mm "
          f"(action average: {proto.action_average}); results written to {out_dir}/")
    return {"paths": {k: str(v) for k, v in paths.items()}, "runs": [res]}
