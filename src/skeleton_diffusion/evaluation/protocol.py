"""``eval.py``: the official evaluation protocol wired to our data layer, models and metrics.

Model-side settings (architecture, ``pose_box_size``, skeleton) come from the checkpoint; data and metric
settings (dataset, split, stats mode, samples, noise, long-term) come from the eval config.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from ..skeletons import get_skeleton
from ..utils.cpu_allocator import keep_freed_cpu_memory
from ..utils.device import resolve_device
from ..utils.errors import ConfigError

_log = logging.getLogger(__name__)

BASELINES = ("ZeroVelocityBaseline",)


def _dataset_path(cfg: DictConfig, key: str) -> Path | None:
    value = cfg.dataset.get(key)
    if not value:
        return None
    p = Path(str(value))
    return p if p.is_absolute() else Path(str(cfg.dataset_main_path)) / p


def results_dir(cfg: DictConfig, checkpoint: Path | None, method: str) -> Path:
    """``results_path`` (a folder, or a ``*.json`` file whose folder is used) or a default location:
    ``<run dir>/eval/<dataset>_<split>_<mode>[_longterm][_noisy]/`` for a model, ``output/eval/<method>/...``
    for a baseline."""
    if cfg.get("results_path"):
        p = Path(str(cfg.results_path)).expanduser()
        return p.parent if p.suffix == ".json" else p
    tag = f"{cfg.dataset.dataset_name}_{cfg.dataset_split}_{cfg.stats_mode}"
    if cfg.get("if_long_term_test"):
        tag += "_longterm"
    if cfg.get("if_noisy_obs"):
        tag += f"_noisy{cfg.noise_level}-{cfg.noise_std}"
    if checkpoint is not None:
        run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
        return run / "eval" / f"{tag}_{checkpoint.stem}"
    return Path("output") / "eval" / method / tag


def build_predictor(cfg: DictConfig, device: torch.device) -> tuple[Callable, Any, float, Path | None, str]:
    """-> ``(predict_fn, skeleton, pose_box_size, checkpoint or None, method_name)``."""
    method = str(cfg.method_specs.get("method_name", "SkeletonDiffusion"))
    if method == "ZeroVelocityBaseline":
        from .baselines import ZeroVelocityBaseline

        skeleton = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
        return ZeroVelocityBaseline(), skeleton, float(cfg.task.pose_box_size), None, method
    if not cfg.get("checkpoint_path"):
        raise ConfigError("checkpoint_path=<diffusion checkpoint or run folder> is required "
                          "(or method_specs=zero_velocity for the baseline)")
    from ..inference import build_from_checkpoint, resolve_checkpoint

    ckpt = resolve_checkpoint(cfg.checkpoint_path)
    model, train_cfg, skeleton = build_from_checkpoint(ckpt, device, use_ema=bool(cfg.get("use_ema_weights", False)))
    data_skel = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
    if data_skel.name != skeleton.name:
        raise ConfigError(f"the checkpoint was trained on skeleton '{skeleton.name}' but dataset="
                          f"{cfg.dataset.dataset_name} uses '{data_skel.name}'; evaluate it on a dataset with the "
                          "same joints (3dpw works zero-shot with AMASS models)")
    obs_len = int(cfg.task.history_sec * cfg.dataset.fps)
    if obs_len != model.obs_length:
        raise ConfigError(f"dataset {cfg.dataset.dataset_name} gives {obs_len} observed frames "
                          f"({cfg.task.history_sec} s at {cfg.dataset.fps} fps) but the model was trained with "
                          f"{model.obs_length}")

    def predict(obs: torch.Tensor, num_samples: int, *, future: torch.Tensor) -> torch.Tensor:
        return model.predict(obs, num_samples, pred_length=future.shape[1])

    predict.requires_future = True  # type: ignore[attr-defined]  # the horizon (long-term uses a longer one)
    return predict, skeleton, model.pose_box_size, ckpt, method


def main(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation described by ``cfg`` (``configs/eval.yaml``); writes and returns the summary."""
    from ..data import build_dataloader, build_dataset
    from .evaluator import evaluate, load_mmapd_gt
    from .results import write_results

    if cfg.stats_mode not in ("deterministic", "probabilistic", "probabilistic_orig"):
        raise ConfigError(f"stats_mode must be 'deterministic' or 'probabilistic', got {cfg.stats_mode!r}")
    device = resolve_device(cfg.get("device", "auto"))
    if device.type == "cpu":
        keep_freed_cpu_memory(bool(cfg.get("cpu_keep_freed_memory", True)))
    predict_fn, skeleton, pose_box_size, ckpt, method = build_predictor(cfg, device)

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
    kwargs: dict[str, Any] = dict(obs_length=obs_length, pred_length=pred_length, pose_box_size=pose_box_size,
                                  skeleton=skeleton, dataset_main_path=cfg.dataset_main_path,
                                  if_load_mmgt=probabilistic, if_compute_cmd=bool(cfg.if_compute_cmd),
                                  augmentation=0, da_mirroring=0.0, da_rotations=0.0)
    if long_term:
        kwargs.update(if_long_term_test=True, long_term_factor=float(cfg.long_term_factor))
    if cfg.get("if_noisy_obs"):
        kwargs.update(if_noisy_obs=True, noise_level=float(cfg.noise_level), noise_std=float(cfg.noise_std))
    dataset = build_dataset(cfg.dataset, str(cfg.dataset_split), **kwargs)
    loader = build_dataloader(dataset, batch_size=int(cfg.batch_size), shuffle=False, drop_last=False,
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
        from .fid import load_fid_classifier

        if not cfg.get("fid_classifier_path"):
            raise ConfigError("if_compute_fid=True needs fid_classifier_path=<h36m_classifier.pth>")
        fid_classifier = load_fid_classifier(cfg.fid_classifier_path).to(device)

    out_dir = results_dir(cfg, ckpt, method)
    seeds = list(cfg.seeds) if cfg.get("seeds") else [int(cfg.seed)]
    runs = []
    t0 = time.time()
    for seed in seeds:
        store = None
        if cfg.get("if_store_output"):
            store = Path(str(cfg.store_output_path)) if cfg.get("store_output_path") else out_dir / "predictions.npz"
            if len(seeds) > 1:
                store = store.with_name(f"{store.stem}_seed{seed}{store.suffix}")
        res = evaluate(predict_fn, loader, skeleton, pose_box_size, stats_mode=stats_mode,
                       num_samples=int(cfg.num_samples), mean_motion_per_class=mean_motion, mmapd_gt=mmapd,
                       device=device, progress=bool(cfg.get("progress", True)), fid_classifier=fid_classifier,
                       store_output=store, seed=int(seed))
        runs.append(res)
    extra = {"method": method, "split": str(cfg.dataset_split), "stats_mode": stats_mode,
             "num_samples": int(cfg.num_samples), "pose_box_size": pose_box_size, "long_term": long_term,
             "noisy_obs": bool(cfg.get("if_noisy_obs", False)), "total_wall_time_s": round(time.time() - t0, 2),
             "config": OmegaConf.to_container(cfg, resolve=True)}
    paths = write_results(out_dir, runs if len(runs) > 1 else runs[0], dataset=str(cfg.dataset.dataset_name),
                          checkpoint=str(ckpt) if ckpt else None, seeds=seeds, extra=extra, print_table=True)
    print(f"\nresults written to {paths['json'].parent}/ (results.json, results.csv, results.md)")
    return {"paths": {k: str(v) for k, v in paths.items()}, "runs": runs}
