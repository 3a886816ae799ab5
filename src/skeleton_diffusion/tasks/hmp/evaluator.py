"""Chunked evaluation loop over a test DataLoader (spec data_eval §6.0, §6.13, §6.14).

``evaluate(predict_fn, loader, skeleton, pose_box_size)`` runs the predictor batch by batch, maps
predictions, targets and multimodal GT to metric space (x ``pose_box_size``), computes the per-item metrics
of the batch and adds them to running sums. Only per-item scalars and CMD motion curves ``[n, T-1]`` are
kept, so memory does not grow with the number of predictions (unless ``store_output`` is set, in which
case predictions are streamed to disk batch by batch).

Semantics of the official ``MetricStorer`` family, which this follows:

* per-item metrics: unweighted mean over every item of the set (independent of the batch size);
  accumulated here in float64 (the official storer sums float32 arrays);
* CMD: per-item motion curves are collected over the set and resolved per class at the end
  (:func:`~skeleton_diffusion.metrics.resolve_cmd`);
* APDE: ``|APD_b - gt_APD_b|`` averaged over the items whose ``gt_APD`` is not 0. Items are matched to the
  ``mmapd_GT.csv`` rows by ``extra['segment_idx']`` when the batch has it (robust to shuffling and subsets),
  else by a running index in loader order (the official behaviour);
* FID: classifier features of all GT and predictions, one Frechet distance at the end.

Sharded evaluation (``ignite.distributed``, N processes): every process evaluates its own windows (see
:func:`shard_indices`: each window exactly once) and :func:`evaluate` reduces what the metrics need, so every
process returns the result of the whole set: per-item metric sums and the item count (sums), APDE's error sum and
count (sums), and for CMD each class's summed motion curve and item count (sums; CMD is resolved from the class
means at the end, exactly as for one process). FID and ``return_per_item`` are refused with more than one process.
"""

from __future__ import annotations

import inspect
import math
import random
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, InputError
from skeleton_diffusion.utils.io import atomic_path
from skeleton_diffusion.metrics import METRIC_ORDER, PER_ITEM_METRICS, metrics_for_mode, per_item_metrics
from skeleton_diffusion.metrics.distance import apde_per_item
from skeleton_diffusion.metrics.cmd import motion_for_cmd, resolve_cmd
from skeleton_diffusion.tasks.sharding import (
    all_reduce_np,
    cmd_class_sums,
    cmd_from_class_sums,
    dist_world,
    shard_indices,
)

__all__ = ["evaluate", "aggregate_seeds", "PredictionWriter", "resolve_metric_names", "load_mmapd_gt",
           "shard_indices"]

PredictFn = Callable[..., torch.Tensor]


def resolve_metric_names(
    stats_mode: str,
    metrics: Sequence[str] | None,
    *,
    have_cmd: bool,
    have_apde: bool,
    have_fid: bool,
) -> list[str]:
    """Metric names to compute: ``metrics`` if given (validated), else the stats mode's per-item metrics plus
    CMD / APDE / FID when their inputs are available. Returned in :data:`METRIC_ORDER`."""
    if metrics is None:
        names = list(metrics_for_mode(stats_mode))
        names += ["CMD"] * have_cmd + ["APDE"] * have_apde + ["FID"] * have_fid
    else:
        names = list(metrics)
        unknown = [m for m in names if m not in METRIC_ORDER]
        if unknown:
            raise ConfigError(f"unknown metric(s) {unknown}; known: {', '.join(METRIC_ORDER)}.")
        if "CMD" in names and not have_cmd:
            raise ConfigError("CMD requested but mean_motion_per_class was not given (mean_motion_test.txt).")
        if "APDE" in names and not have_apde:
            raise ConfigError("APDE requested but mmapd_gt was not given (mmapd_GT.csv column gt_APD).")
        if "FID" in names and not have_fid:
            raise ConfigError("FID requested but no fid_classifier was given (see evaluation.fid).")
    return [m for m in METRIC_ORDER if m in names]


class PredictionWriter:
    """Streams arrays batch by batch into an ``.npz`` file with constant memory.

    Each key's rows are appended to a raw temporary file; :meth:`close` writes the ``.npz`` (a zip of
    ``.npy`` members, loadable with ``np.load``) atomically and removes the temporaries.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix != ".npz":
            self.path = self.path.with_suffix(".npz")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, Any] = {}
        self._meta: dict[str, tuple[np.dtype, tuple[int, ...], int]] = {}
        self._static: dict[str, np.ndarray] = {}

    def append(self, key: str, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows)
        if key not in self._files:
            tmp = self.path.with_name(f".{self.path.stem}.{key}.part")
            self._files[key] = open(tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
            self._meta[key] = (rows.dtype, rows.shape[1:], 0)
        dtype, tail, n = self._meta[key]
        if rows.dtype != dtype or rows.shape[1:] != tail:
            raise DataFormatError(f"stored '{key}' rows changed from {dtype}{tail} to {rows.dtype}{rows.shape[1:]}.")
        self._files[key].write(rows.tobytes())
        self._meta[key] = (dtype, tail, n + rows.shape[0])

    def set(self, key: str, value: Any) -> None:
        """Store a small array written as is (e.g. ``pose_box_size``)."""
        self._static[key] = np.asarray(value)

    def close(self) -> Path:
        with atomic_path(self.path) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, fh in self._files.items():
                    fh.close()
                    dtype, tail, n = self._meta[key]
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                  "shape": (n, *tail)}  # fmt: skip
                        np.lib.format.write_array_header_2_0(member, header)
                        with open(fh.name, "rb") as src:
                            while chunk := src.read(1 << 24):
                                member.write(chunk)
                    Path(fh.name).unlink()
                for key, value in self._static.items():
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, value, allow_pickle=False)
        self._files.clear()
        return self.path

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
            Path(fh.name).unlink(missing_ok=True)
        self._files.clear()


def load_mmapd_gt(path: str | Path) -> np.ndarray:
    """Read ``mmapd_GT.csv`` (columns ``id,gt_APD``; BeLFusion / official format) -> ``gt_APD`` ``[n]`` float64
    ordered by ``id`` (0 = no multimodal GT; those rows are skipped by APDE)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"mmapd_GT file not found: '{path}' (expected columns id,gt_APD).")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "gt_APD" not in reader.fieldnames:
            raise DataFormatError(f"'{path}' has columns {reader.fieldnames}; expected 'id,gt_APD'.")
        rows = [(int(r[reader.fieldnames[0]]), float(r["gt_APD"])) for r in reader]
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([r[1] for r in rows], dtype=np.float64)
    order = np.argsort(ids, kind="stable")
    if not np.array_equal(ids[order], np.arange(len(ids))):
        raise DataFormatError(f"'{path}': ids must be 0..{len(ids) - 1} without gaps or duplicates.")
    return values[order]


def _wants(predict_fn: PredictFn, name: str) -> bool:
    if getattr(predict_fn, f"requires_{name}", False):
        return True
    try:
        params = inspect.signature(predict_fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(
    predict_fn: PredictFn,
    loader: Iterable,
    skeleton: Any,
    pose_box_size: float,
    *,
    stats_mode: str = "probabilistic",
    num_samples: int = 50,
    mean_motion_per_class: Sequence[float] | None = None,
    mmapd_gt: Sequence[float] | np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    fid_classifier: torch.nn.Module | None = None,
    store_output: str | Path | None = None,
    seed: int | None = None,
    exact_apd: bool = True,
    return_per_item: bool = False,
    max_batches: int | None = None,
    distributed: bool = False,
) -> dict[str, Any]:
    """Evaluate a predictor on a test loader.

    Args:
        predict_fn: ``predict_fn(obs [B, T_obs, N, 3] input space, num_samples) -> [B, S, T_pred, N, 3]``
            input space. S may differ from ``num_samples`` (e.g. 1 for a deterministic baseline). A predictor
            that accepts a ``future`` or ``extra`` keyword (or sets ``requires_future``/``requires_extra``)
            receives the batch's future / extra dict too (GT oracle, long-term protocols).
        loader: yields ``(obs, fut, extra)`` batches (see COMMON "Batch format"), input space; ``extra``
            may hold ``mm_gt`` (list of ``[n_i, T_pred, N, 3]``), ``class_idx``, ``segment_idx``.
        skeleton: object with ``node_limbs`` and ``limb_angles_idx`` (``skeleton_diffusion.skeletons``).
        pose_box_size: input -> metric scale (metres).
        stats_mode: ``deterministic`` | ``probabilistic`` (adds MMADE/MMFDE) | ``probabilistic_orig``.
        mean_motion_per_class: CMD references aligned with the dataset's ``idx_to_class``; ``None`` -> no CMD.
        mmapd_gt: ``gt_APD`` per dataset row (0 = no multimodal GT); ``None`` -> no APDE.
        metrics: explicit list of official metric names (default: everything the mode and inputs allow).
        device: where prediction inputs and metrics live (``'auto'``: CUDA if available).
        progress: show a tqdm bar.
        fid_classifier: :class:`~skeleton_diffusion.metrics.fid.ClassifierForFID` -> FID (H36M only).
        store_output: ``.npz`` path; streams ``pred [n, S, T, N, 3]``, ``gt``, ``obs`` (metric space, metres),
            ``segment_idx``/``class_idx`` when present, and ``pose_box_size``.
        seed: when given, python/numpy/torch are seeded once before the loop (official ``set_seed`` at the
            start of the evaluation epoch).
        exact_apd: ``False`` reproduces the official float32 ``cdist`` matrix-product path bit for bit.
        return_per_item: also return ``per_item`` ``{name: np.ndarray [n]}`` (and ``cmd_motion``).
        max_batches: stop after this many batches (smoke tests).
        distributed: ``True``: this is one shard of a sharded evaluation; every process of the (initialised)
            process group must call :func:`evaluate` with ``loader`` yielding only its own windows (e.g. a
            ``Subset`` of :func:`shard_indices`); the metrics are reduced over all processes and every process
            returns the whole set's result. ``False`` (default): this process's loader only, no communication.
        A predictor with a ``seed`` keyword receives ``seed`` (per-window noise streams, see ``eval.py``
        ``noise_seeding``).
    Returns:
        ``{'metrics': {name: float}, 'num_windows': n, 'num_samples': S, 'stats_mode', 'wall_time_s',
        'predict_time_s', 'ms_per_batch' (time inside predict_fn), 'seed', 'pose_box_size'}`` (+ ``per_item``).
        Metric units: see :mod:`.metrics`.
    """
    dev = resolve_device(device)
    try:
        pbs = float(pose_box_size)
    except (TypeError, ValueError):
        pbs = float("nan")
    if not (math.isfinite(pbs) and pbs > 0):
        raise ConfigError(f"pose_box_size must be a positive number (metres); got {pose_box_size!r}.")
    pose_box_size = pbs
    refs = None if mean_motion_per_class is None else np.asarray(mean_motion_per_class, dtype=np.float64)
    apd_ref = None if mmapd_gt is None else np.asarray(mmapd_gt, dtype=np.float64).reshape(-1)
    names = resolve_metric_names(
        stats_mode, metrics, have_cmd=refs is not None, have_apde=apd_ref is not None,
        have_fid=fid_classifier is not None,
    )  # fmt: skip
    item_names = [m for m in names if m in PER_ITEM_METRICS]
    need_apd = "APD" in item_names or "APDE" in names
    batch_names = item_names + (["APD"] if need_apd and "APD" not in item_names else [])
    need_mm = any(m in ("MMADE", "MMFDE") for m in names)
    limbs, angles = list(skeleton.node_limbs), [list(c) for c in skeleton.limb_angles_idx]
    pass_future, pass_extra = _wants(predict_fn, "future"), _wants(predict_fn, "extra")
    pass_seed = _wants(predict_fn, "seed")
    world = dist_world(distributed)
    if world > 1 and (fid_classifier is not None or return_per_item):
        raise ConfigError("FID and return_per_item are not supported in a sharded evaluation (nproc_per_node > 1); "
                          "evaluate them in one process.")

    fid_acc = None
    if "FID" in names:
        from skeleton_diffusion.metrics.fid import FIDAccumulator

        fid_acc = FIDAccumulator(fid_classifier)
    writer = PredictionWriter(store_output) if store_output is not None else None
    if seed is not None:
        _seed_all(seed)

    sums = {m: 0.0 for m in item_names}
    per_item: dict[str, list[np.ndarray]] = {m: [] for m in batch_names}
    cmd_motion: list[np.ndarray] = []
    cmd_class: list[np.ndarray] = []
    apde_sum, apde_count, running_row = 0.0, 0, 0
    n_items, n_samples_seen = 0, None
    predict_time, n_batches = 0.0, 0
    t_start = time.perf_counter()

    iterator = loader
    if progress and world > 1:
        progress = torch.distributed.get_rank() == 0
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(loader, desc="evaluate", unit="batch", total=_safe_len(loader, max_batches))
    try:
        for b_idx, batch in enumerate(iterator):
            if max_batches is not None and b_idx >= max_batches:
                break
            obs, fut, extra = _unpack(batch)
            obs, fut = obs.to(dev, torch.float32), fut.to(dev, torch.float32)
            kwargs = {}
            if pass_future:
                kwargs["future"] = fut
            if pass_extra:
                kwargs["extra"] = extra
            if pass_seed:
                kwargs["seed"] = seed
            t_pred = time.perf_counter()
            pred = predict_fn(obs, num_samples, **kwargs)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            predict_time += time.perf_counter() - t_pred
            n_batches += 1
            pred = _check_prediction(pred, obs, fut).to(dev, torch.float32)
            n_samples_seen = pred.shape[1] if n_samples_seen is None else n_samples_seen
            bsz = pred.shape[0]

            pred_m, fut_m = pred * pose_box_size, fut * pose_box_size
            mm_m = None
            if need_mm:
                if "mm_gt" not in extra or extra["mm_gt"] is None:
                    raise DataFormatError(
                        "MMADE/MMFDE need extra['mm_gt'] in every batch; build the test set with multimodal GT "
                        "(stats_mode=probabilistic) or use stats_mode=deterministic."
                    )
                mm_m = [g.to(dev, torch.float32) * pose_box_size for g in extra["mm_gt"]]
            vals = per_item_metrics(batch_names, pred_m, fut_m, mm_gt=mm_m, limbs=limbs,
                                    limb_angles_idx=angles, exact_apd=exact_apd)  # fmt: skip
            for m in item_names:
                sums[m] += float(vals[m].double().sum())
            if return_per_item:
                for m in batch_names:
                    per_item[m].append(vals[m].float().cpu().numpy())

            if "CMD" in names:
                if "class_idx" not in extra:
                    raise DataFormatError("CMD needs extra['class_idx'] (index into the dataset's idx_to_class).")
                cmd_motion.append(motion_for_cmd(pred_m).cpu().numpy())
                cmd_class.append(torch.as_tensor(extra["class_idx"]).cpu().numpy().astype(np.int64))
            if "APDE" in names:
                rows = _apde_rows(extra, running_row, bsz, apd_ref.shape[0])
                running_row += bsz
                err = apde_per_item(vals["APD"].cpu(), torch.from_numpy(apd_ref[rows])).numpy()
                apde_sum += float(np.nansum(err))
                apde_count += int((~np.isnan(err)).sum())
            if fid_acc is not None:
                fid_acc.update(pred_m, fut_m)
            if writer is not None:
                writer.append("pred", pred_m.cpu().numpy())
                writer.append("gt", fut_m.cpu().numpy())
                writer.append("obs", (obs * pose_box_size).cpu().numpy())
                for key in ("segment_idx", "class_idx"):
                    if key in extra:
                        writer.append(key, torch.as_tensor(extra[key]).cpu().numpy().astype(np.int64))
            n_items += bsz
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if progress:
            iterator.close()  # type: ignore[union-attr]

    if world > 1:  # sufficient statistics of every shard -> the whole set's metrics on every process
        if "CMD" in names:
            cmd_sums, cmd_counts = cmd_class_sums(cmd_motion, cmd_class, refs.shape[0])
            cmd_sums, cmd_counts = all_reduce_np(cmd_sums), all_reduce_np(cmd_counts)
        red = all_reduce_np(np.array([sums[m] for m in item_names] + [n_items, apde_sum, apde_count], dtype=np.float64))
        sums = {m: float(red[i]) for i, m in enumerate(item_names)}
        n_items, apde_sum, apde_count = int(round(red[-3])), float(red[-2]), int(round(red[-1]))
        n_samples_seen = int(all_reduce_np(np.array([n_samples_seen or 0]), "MAX")[0]) or None
        predict_time = float(all_reduce_np(np.array([predict_time]), "MAX")[0])
    if n_items == 0:
        raise DataFormatError("the evaluation loader yielded no batch; nothing to evaluate.")
    results: dict[str, float] = {m: sums[m] / n_items for m in item_names}
    if "CMD" in names:
        if world > 1:
            results["CMD"] = cmd_from_class_sums(cmd_sums, cmd_counts, refs)
        else:
            results["CMD"] = resolve_cmd(np.concatenate(cmd_motion), np.concatenate(cmd_class), refs)
    if "APDE" in names:
        results["APDE"] = apde_sum / apde_count if apde_count else float("nan")
        if max_batches is None and n_items != apd_ref.shape[0]:
            warnings.warn(
                f"APDE: evaluated {n_items} windows but mmapd_GT has {apd_ref.shape[0]} rows; the reference file "
                "may belong to another test set.",
                stacklevel=2,
            )
    if fid_acc is not None:
        results["FID"] = fid_acc.compute()
    results = {m: results[m] for m in METRIC_ORDER if m in results}
    out: dict[str, Any] = {
        "metrics": results,
        "num_windows": n_items,
        "num_samples": int(n_samples_seen),
        "stats_mode": stats_mode,
        "pose_box_size": float(pose_box_size),
        "seed": seed,
        "wall_time_s": time.perf_counter() - t_start,
        "predict_time_s": predict_time,
        "ms_per_batch": 1000.0 * predict_time / max(1, n_batches),
        "world_size": world,
    }
    if writer is not None:
        writer.set("pose_box_size", np.float64(pose_box_size))
        out["output_path"] = str(writer.close())
    if return_per_item:
        out["per_item"] = {m: np.concatenate(v) for m, v in per_item.items()}
        if cmd_motion:
            out["cmd_motion"] = np.concatenate(cmd_motion)
    return out


def _safe_len(loader: Iterable, max_batches: int | None) -> int | None:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return max_batches
    return n if max_batches is None else min(n, max_batches)


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor, Mapping[str, Any]]:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise DataFormatError(f"a batch must be (obs, fut, extra); got {type(batch).__name__} of length "
                              f"{len(batch) if hasattr(batch, '__len__') else '?'}.")  # fmt: skip
    obs, fut = batch[0], batch[1]
    extra = batch[2] if len(batch) == 3 else {}
    if obs.dim() != 4 or fut.dim() != 4 or obs.shape[0] != fut.shape[0] or obs.shape[2:] != fut.shape[2:]:
        raise DataFormatError(
            f"batch obs {tuple(obs.shape)} / fut {tuple(fut.shape)} must be [B, T_obs, N, 3] / [B, T_pred, N, 3]."
        )
    return obs, fut, extra


def _check_prediction(pred: Any, obs: torch.Tensor, fut: torch.Tensor) -> torch.Tensor:
    if not isinstance(pred, torch.Tensor):
        pred = torch.as_tensor(pred)
    expected = (obs.shape[0], fut.shape[1], *fut.shape[2:])
    if pred.dim() != 5 or (pred.shape[0], *pred.shape[2:]) != expected:
        raise InputError(
            f"predict_fn returned {tuple(pred.shape)}; expected [B, S, T_pred, N, 3] = "
            f"[{expected[0]}, S, {expected[1]}, {expected[2]}, 3] in input space."
        )
    if not torch.isfinite(pred).all():
        raise InputError("predict_fn returned NaN/Inf values.")
    return pred


def _apde_rows(extra: Mapping[str, Any], running_row: int, bsz: int, n_ref: int) -> np.ndarray:
    if "segment_idx" in extra:
        rows = torch.as_tensor(extra["segment_idx"]).cpu().numpy().astype(np.int64)
    else:
        rows = np.arange(running_row, running_row + bsz)
    if rows.size and (rows.min() < 0 or rows.max() >= n_ref):
        raise DataFormatError(
            f"APDE: row {int(rows.max())} is outside mmapd_GT ({n_ref} rows); the reference file does not "
            "belong to this test set."
        )
    return rows


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (ddof=1; 0 for one run) of every metric over several runs (seeds).

    Args:
        results: outputs of :func:`evaluate` (or plain ``{metric: value}`` dicts).
    Returns:
        ``{metric: {'mean', 'std', 'n', 'values': [...]}}`` in :data:`METRIC_ORDER`, for metrics present in
        every run.
    """
    if not results:
        raise ConfigError("aggregate_seeds needs at least one result.")
    dicts = [r["metrics"] if "metrics" in r else r for r in results]
    common = [m for m in METRIC_ORDER if all(m in d for d in dicts)]
    extra = [m for m in dicts[0] if m not in METRIC_ORDER and all(m in d for d in dicts)]
    out: dict[str, dict[str, float]] = {}
    for m in common + extra:
        vals = np.array([float(d[m]) for d in dicts], dtype=np.float64)
        out[m] = {
            "mean": float(vals.mean()),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            "n": len(vals),
            "values": vals.tolist(),
        }
    return out
