"""``eval.py``: the official evaluation protocol wired to our data layer, models and metrics.

Model-side settings (architecture, ``pose_box_size``, skeleton) come from the checkpoint; data and metric
settings (dataset, split, stats mode, samples, noise, long-term) come from the eval config.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from skeleton_diffusion.training.loggers import LineProgress, progress_mode
from skeleton_diffusion.utils.cpu_allocator import keep_freed_cpu_memory
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError

_log = logging.getLogger(__name__)

BASELINES = ("ZeroVelocityBaseline",)


def _dataset_path(cfg: DictConfig, key: str) -> Path | None:
    value = cfg.dataset.get(key)
    if not value:
        return None
    p = Path(str(value))
    return p if p.is_absolute() else Path(str(cfg.dataset_main_path)) / p


#: Eval-config keys that change an HMP result; their values are hashed into the default results folder name.
RESULT_OPTION_KEYS = ("num_samples", "seed", "seeds", "use_ema_weights", "sampling_precision", "noise_seeding",
                      "dtype", "long_term_factor", "if_compute_apde", "if_compute_fid", "fid_classifier_path",
                      "if_compute_cmd", "batch_size")


def results_dir(cfg: DictConfig, checkpoint: Path | None, method: str) -> Any:
    """The :class:`~skeleton_diffusion.tasks.results.ResultsTarget`: ``results_path`` (a ``*.json`` file, else a
    folder) or a default folder unique per evaluated run, checkpoint, dataset, split, mode and options:
    ``<run dir>/eval/hmp_<dataset>_<split>_<mode>[_longterm][_noisy]_<checkpoint>_<options>/`` for a model,
    ``output/eval/<method>/hmp_<dataset>_<split>_<mode>..._<options>/`` for a baseline."""
    from skeleton_diffusion.tasks.results import options_tag, results_target

    tag = f"hmp_{cfg.dataset.dataset_name}_{cfg.dataset_split}_{cfg.stats_mode}"
    if cfg.get("if_long_term_test"):
        tag += "_longterm"
    if cfg.get("if_noisy_obs"):
        tag += f"_noisy{cfg.noise_level}-{cfg.noise_std}"
    options = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
               for k in RESULT_OPTION_KEYS if (v := cfg.get(k)) is not None}
    options["task"] = OmegaConf.to_container(cfg.task, resolve=True) if cfg.get("task") is not None else None
    if checkpoint is not None:
        run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
        default = run / "eval" / f"{tag}_{checkpoint.stem}_{options_tag(options)}"
    else:
        default = Path("output") / "eval" / method / f"{tag}_{options_tag(options)}"
    return results_target(cfg.get("results_path"), default)


def _check_processed_joint_names(cfg: DictConfig, skeleton: Any) -> None:
    """Refuse a processed npz whose stored ``joint_names`` differ from the model's joint order (H17)."""
    from skeleton_diffusion.data.processed import processed_path, read_joint_names

    folder = _dataset_path(cfg, "precomputed_folder")
    path = processed_path(folder, str(cfg.dataset.dataset_name)) if folder is not None else None
    if path is None or not path.is_file():
        return
    names = read_joint_names(path)
    if names is not None and tuple(names) != tuple(skeleton.joint_names):
        from skeleton_diffusion.skeletons.formats.files import describe_mismatch

        raise ConfigError(describe_mismatch(f"the processed data '{path}'", names, "the checkpoint", skeleton))


#: ``build_predictor(cfg, device) -> (predict_fn, skeleton, pose_box_size, checkpoint or None, method_name)``: how
#: the protocol gets its model. ``eval.py`` passes the registry's (each method's ``hmp_predictor`` hook), so this
#: module never imports a method.
PredictorBuilder = Callable[[DictConfig, torch.device], tuple[Callable, Any, float, "Path | None", str]]


def check_processed_joint_names(cfg: DictConfig, skeleton: Any) -> None:
    """The processed data's stored joint names (if any) equal the model's."""
    _check_processed_joint_names(cfg, skeleton)


def check_dataset_windows(cfg: DictConfig) -> None:
    """A built dataset whose windows are not the default 0.5 s + 2 s records them (``windows_sec`` in its
    ``dataset_config.yaml``); refuse a task horizon that differs, naming the overrides that match (instead of a
    later "segment does not fit a clip" that blames the data). Long-term evaluation has its own windows."""
    windows = cfg.dataset.get("windows_sec")
    if not windows or cfg.get("if_long_term_test"):
        return
    want = {"history": float(cfg.task.history_sec), "horizon": float(cfg.task.prediction_horizon_sec)}
    built = {k: float(windows.get(k, want[k])) for k in want}
    if all(abs(built[k] - want[k]) < 1e-6 for k in want):
        return
    raise ConfigError(
        f"dataset {cfg.dataset.dataset_name} was built with windows of {built['history']:g} s observed + "
        f"{built['horizon']:g} s predicted (windows_sec in its dataset_config.yaml, written by its create_*_dataset "
        f"command), but the task asks for {want['history']:g} s + {want['horizon']:g} s. Pass "
        f"task.history_sec={built['history']:g} task.prediction_horizon_sec={built['horizon']:g} (the model must "
        "have been trained with these), or rebuild the dataset's windows for the task's horizon.")


NOISE_SEEDING = ("per_window", "global")


def noise_seeding(cfg: DictConfig) -> str:
    """``noise_seeding`` of the eval config: ``per_window`` (default: each window's S samples draw their noise
    from a stream seeded by ``(seed, segment_idx)``: results do not depend on batch size, order or the number of
    processes) or ``global`` (official: one global RNG seeded at the start, drawn batch after batch)."""
    mode = str(cfg.get("noise_seeding", "per_window"))
    if mode not in NOISE_SEEDING:
        raise ConfigError(f"noise_seeding must be one of {NOISE_SEEDING}, got {mode!r}")
    return mode


def window_generators(mode: str, seed: int | None, extra: Any, rows_per_window: int, batch_size: int) -> Any:
    """The sampling generator for one batch: a :class:`~skeleton_diffusion.diffusion.samplers.RowGenerators` with
    one stream per window (``mode='per_window'``; needs ``extra['segment_idx']``), or None (global RNG)."""
    if mode != "per_window":
        return None
    from skeleton_diffusion.diffusion.samplers import RowGenerators

    if not isinstance(extra, dict) or extra.get("segment_idx") is None:
        raise ConfigError("noise_seeding=per_window needs the window index extra['segment_idx'] in every batch "
                          "(datasets of this package provide it); use noise_seeding=global otherwise")
    ids = torch.as_tensor(extra["segment_idx"]).reshape(-1)
    if ids.numel() != batch_size:
        raise ConfigError(f"extra['segment_idx'] has {ids.numel()} entries for a batch of {batch_size} windows")
    return RowGenerators.for_windows(0 if seed is None else int(seed), ids, rows_per_window)


# ``task.task_name`` -> module whose ``main(cfg)`` evaluates that task (``hmp`` is this module).
def main(cfg: DictConfig, build_predictor: PredictorBuilder) -> dict[str, Any]:
    """Run the motion-prediction evaluation described by ``cfg`` (``configs/eval.yaml``); writes and returns the
    summary. ``build_predictor`` makes the model (``eval.py`` passes the method registry's)."""
    nproc = int(cfg.get("nproc_per_node", 1) or 1)
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if nproc > 1 or torchrun:
        return _launch_sharded(cfg, nproc, torchrun, build_predictor)
    return _evaluate_hmp(cfg, build_predictor)


def _sharded_worker(local_rank: int, cfg: DictConfig, summary_file: str | None, build_predictor: PredictorBuilder) -> None:
    import json

    import ignite.distributed as idist

    if resolve_device(cfg.get("device", "auto")).type == "cpu":  # share the cores instead of oversubscribing
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, idist.get_nproc_per_node())))
    out = _evaluate_hmp(cfg, build_predictor)
    if idist.get_rank() == 0 and summary_file:
        Path(summary_file).write_text(json.dumps(out, default=str))


def _launch_sharded(cfg: DictConfig, nproc: int, torchrun: bool, build_predictor: PredictorBuilder) -> dict[str, Any]:
    """Sharded evaluation: ``nproc_per_node=N`` spawns N processes (gloo on CPU, nccl on CUDA unless
    ``dist_backend``), or joins a ``torchrun`` group. Each process evaluates its block of windows; the metrics are
    reduced over all of them (:func:`~.evaluator.evaluate`); rank 0 writes the results."""
    import json
    import tempfile

    import ignite.distributed as idist

    from skeleton_diffusion.config import register_resolvers

    register_resolvers()
    cfg = cfg.copy()
    OmegaConf.resolve(cfg)  # every process must agree on paths such as ${now:...}
    backend = cfg.get("dist_backend") or (
        "nccl" if torch.cuda.is_available() and str(cfg.get("device", "auto")) != "cpu" else "gloo")
    if torchrun:  # this process is one rank of the torchrun group; every rank returns the whole set's result
        with idist.Parallel(backend=backend):
            if resolve_device(cfg.get("device", "auto")).type == "cpu":
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, idist.get_nproc_per_node())))
            return _evaluate_hmp(cfg, build_predictor)
    fd, summary = tempfile.mkstemp(prefix="sd-eval-", suffix=".json")
    os.close(fd)
    try:
        with idist.Parallel(backend=backend, nproc_per_node=nproc) as parallel:
            parallel.run(_sharded_worker, cfg, summary, build_predictor)
        text = Path(summary).read_text()
        return json.loads(text) if text else {}
    finally:
        Path(summary).unlink(missing_ok=True)


def _evaluate_hmp(cfg: DictConfig, build_predictor: PredictorBuilder) -> dict[str, Any]:
    """The motion-prediction protocol in this process (one shard of it inside a process group)."""
    import torch.distributed as dist

    from skeleton_diffusion.data.loaders import build_dataloader
    from skeleton_diffusion.data.registry import build_dataset
    from skeleton_diffusion.tasks.hmp.evaluator import evaluate, load_mmapd_gt
    from skeleton_diffusion.tasks.results import write_results

    if cfg.stats_mode not in ("deterministic", "probabilistic", "probabilistic_orig"):
        raise ConfigError(f"stats_mode must be 'deterministic' or 'probabilistic', got {cfg.stats_mode!r}")
    device = resolve_device(cfg.get("device", "auto"))
    if device.type == "cpu":
        keep_freed_cpu_memory(bool(cfg.get("cpu_keep_freed_memory", True)))
    grouped = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if grouped else (0, 1)
    if world > 1 and noise_seeding(cfg) == "global" and str(cfg.method_specs.get("method_name")) not in BASELINES:
        raise ConfigError("noise_seeding=global draws every process's noise from the same global stream, so a "
                          "sharded result would depend on the number of processes; use noise_seeding=per_window "
                          "(default) with nproc_per_node > 1")
    if device.type == "cuda" and world > 1:
        import ignite.distributed as idist

        device = idist.device()
    predict_fn, skeleton, pose_box_size, ckpt, method = build_predictor(cfg, device)
    if world > 1 and method not in BASELINES and not getattr(predict_fn, "per_window_noise", False):
        _log.warning("the %s predictor does not tie its sampling noise to the window: the sharded result is a "
                     "valid evaluation but differs from a one-process run", method)

    fps = float(cfg.dataset.fps)
    obs_length = int(cfg.task.history_sec * fps)
    pred_length = int(cfg.task.prediction_horizon_sec * fps)
    long_term = bool(cfg.get("if_long_term_test", False))
    if long_term:
        pred_length = int(pred_length * float(cfg.long_term_factor))
    probabilistic = "probabilistic" in str(cfg.stats_mode)
    stats_mode = str(cfg.stats_mode)
    if long_term and probabilistic:
        # no multimodal GT exists for the long horizon (the official code crashed here): MMADE/MMFDE are skipped
        _log.warning("if_long_term_test: no multimodal ground truth for the long horizon; evaluating in "
                     "deterministic mode (no MMADE/MMFDE)")
        print("note: long-term evaluation has no multimodal ground truth; MMADE/MMFDE are not computed")
        probabilistic, stats_mode = False, "deterministic"
    check_dataset_windows(cfg)
    kwargs: dict[str, Any] = dict(obs_length=obs_length, pred_length=pred_length, pose_box_size=pose_box_size,
                                  skeleton=skeleton, dataset_main_path=cfg.dataset_main_path,
                                  if_load_mmgt=probabilistic, if_compute_cmd=bool(cfg.if_compute_cmd),
                                  augmentation=0, da_mirroring=0.0, da_rotations=0.0)
    if long_term:
        kwargs.update(if_long_term_test=True, long_term_factor=float(cfg.long_term_factor))
        from skeleton_diffusion.data.windows.hmp_sources import DATASET_TYPES, AMASSDataset

        if issubclass(DATASET_TYPES.get(str(cfg.dataset.get("dataset_type")), object), AMASSDataset):
            # AMASSDataset applies long_term_factor itself (official): pass the 2 s horizon, not 2.5 x it (H16c)
            kwargs["pred_length"] = int(cfg.task.prediction_horizon_sec * fps)
    if cfg.get("if_noisy_obs"):
        kwargs.update(if_noisy_obs=True, noise_level=float(cfg.noise_level), noise_std=float(cfg.noise_std))
    dataset = build_dataset(cfg.dataset, str(cfg.dataset_split), **kwargs)
    if int(getattr(dataset, "pred_length", pred_length)) != pred_length:
        raise ConfigError(f"dataset {cfg.dataset.dataset_name} gives {dataset.pred_length} future frames, expected "
                          f"{pred_length} (prediction_horizon_sec x fps{' x long_term_factor' if long_term else ''})")
    shard: Any = dataset
    if world > 1:  # this process's block of windows (each window evaluated exactly once over all processes)
        from torch.utils.data import Subset

        from skeleton_diffusion.tasks.hmp.evaluator import shard_indices

        shard = Subset(dataset, shard_indices(len(dataset), rank, world))
    loader = build_dataloader(shard, batch_size=int(cfg.batch_size), shuffle=False, drop_last=False,
                              num_workers=0)

    mmapd = None
    apde = cfg.get("if_compute_apde")
    ann = _dataset_path(cfg, "annotations_folder")
    mmapd_file = ann / "mmapd_GT.csv" if ann is not None else None
    if apde is None:
        apde = (mmapd_file is not None and mmapd_file.is_file() and not long_term
                and str(cfg.dataset_split) == "test")
    if apde:
        if mmapd_file is None or not mmapd_file.is_file():
            raise ConfigError(f"if_compute_apde=True but '{mmapd_file}' does not exist (APDE needs mmapd_GT.csv)")
        mmapd = load_mmapd_gt(mmapd_file)
    mean_motion = getattr(dataset, "mean_motion_per_class", None) if cfg.if_compute_cmd else None
    fid_classifier = None
    if cfg.get("if_compute_fid"):
        from skeleton_diffusion.metrics.fid import load_fid_classifier

        if not cfg.get("fid_classifier_path"):
            raise ConfigError("if_compute_fid=True needs fid_classifier_path=<h36m_classifier.pth>")
        fid_classifier = load_fid_classifier(cfg.fid_classifier_path).to(device)

    target = results_dir(cfg, ckpt, method)
    target.check_free(bool(cfg.get("overwrite", False)))  # before the work, not after it
    out_dir = target.json_file.parent if target.json_file is not None else target.folder
    seeds = list(cfg.seeds) if cfg.get("seeds") else [int(cfg.seed)]
    runs = []
    t0 = time.time()
    for seed in seeds:
        store = None
        if cfg.get("if_store_output"):
            default_store = (out_dir / f"{target.json_file.stem}_predictions.npz" if target.json_file is not None
                             else out_dir / "predictions.npz")
            store = Path(str(cfg.store_output_path)) if cfg.get("store_output_path") else default_store
            if len(seeds) > 1:
                store = store.with_name(f"{store.stem}_seed{seed}{store.suffix}")
            if world > 1:  # one file per process (its block of windows, in dataset order)
                store = store.with_name(f"{store.stem}_rank{rank}of{world}{store.suffix}")
        show = bool(cfg.get("progress", True)) and rank == 0
        as_lines = show and progress_mode(True) == "epochs"  # not a terminal: one line per step, no \r redraws
        batches = LineProgress(loader, desc=f"evaluate (seed {seed})") if as_lines else loader
        res = evaluate(predict_fn, batches, skeleton, pose_box_size, stats_mode=stats_mode,
                       num_samples=int(cfg.num_samples), mean_motion_per_class=mean_motion, mmapd_gt=mmapd,
                       device=device, progress=show and not as_lines, fid_classifier=fid_classifier,
                       store_output=store, seed=int(seed), distributed=world > 1)
        runs.append(res)
    extra = {"method": method, "split": str(cfg.dataset_split), "stats_mode": stats_mode,
             "num_samples": int(cfg.num_samples), "pose_box_size": pose_box_size, "long_term": long_term,
             "noisy_obs": bool(cfg.get("if_noisy_obs", False)), "total_wall_time_s": round(time.time() - t0, 2),
             "noise_seeding": noise_seeding(cfg), "sampling_precision": str(cfg.get("sampling_precision", "fp32")),
             "world_size": world, "config": OmegaConf.to_container(cfg, resolve=True)}
    if rank != 0:
        return {"paths": {}, "runs": runs}
    paths = write_results(target, runs if len(runs) > 1 else runs[0], dataset=str(cfg.dataset.dataset_name),
                          checkpoint=str(ckpt) if ckpt else None, seeds=seeds, extra=extra, print_table=True,
                          overwrite=bool(cfg.get("overwrite", False)))
    print(f"\nresults written to {', '.join(str(p) for p in paths.values())}")
    return {"paths": {k: str(v) for k, v in paths.items()}, "runs": runs}
