"""``python eval.py task=lifting checkpoint_path=<run or file> occlusion=none|rand_joints|struct_joints|frames|arms_legs|noisy|all``

Evaluates a lifting checkpoint (``train_lifting.py``) on the test split (S9 S11) of its dataset (or of
``dataset=<lifting dataset>`` when given) and writes ``results.json/.csv/.md`` (:func:`~.results.write_results`);
``occlusion=all`` evaluates every occlusion type, one results folder per type (``<results_path>/<occlusion>/``).

A run converted from the authors' files (``convert --method diffpose|diffhpe``) is evaluated with its method's
official protocol instead (:mod:`skeleton_diffusion.tasks.lifting.official`; ``task.official.*``).

Per test window (``frames`` consecutive frames, non-overlapping) K = ``task.num_samples`` hypotheses are drawn.
Reported (mm unless stated; per-frame errors averaged over all test frames):

* ``MPJPE`` / ``PMPJPE`` / ``NMPJPE``: of the mean of the K hypotheses (DiffPose / DiffHPE ``average``);
  ``MPJPE_action_avg`` / ``PMPJPE_action_avg``: mean over actions of the per-action means (H36M convention);
* ``MPJPE_bestK`` / ``MPJPE_meanK``: best-of-K and mean-of-K per-hypothesis MPJPE;
* ``MPJVE`` (mm/frame), ``BoneStd`` (bone-length std over the window) -- windows of > 1 frame only;
* ``Asymmetry``: mean |left - right| bone length; ``MeanPose_MPJPE``: the train-set mean pose (a baseline);
  ``Asymmetry_GT`` / ``BoneStd_GT``: the same coherence metrics of the ground truth (reference values);
* per-action values under ``extra.per_action``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from skeleton_diffusion.tasks.lifting.official import is_converted_official, run_official
from skeleton_diffusion.data.augment.corruption import OCCLUSION_TYPES, corrupt_2d
from skeleton_diffusion.data.windows.lifting import LiftingWindows
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.config.compat import upgrade_targets
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.utils.io import safe_torch_load
from skeleton_diffusion.metrics.lifting import (
    bone_asymmetry,
    bone_length_std,
    mpjpe,
    mpjve,
    multi_hypothesis,
    n_mpjpe,
    p_mpjpe,
    per_action_mean,
    symmetric_bone_pairs,
)

_log = logging.getLogger(__name__)

__all__ = ["load_lifting_checkpoint", "evaluate_lifting", "main"]


def load_lifting_checkpoint(path: str | Path) -> tuple[DictConfig, dict[str, Any], Path]:
    """-> ``(training config, checkpoint dict, checkpoint file)`` of a lifting run folder or checkpoint file."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint

    ckpt_path = resolve_checkpoint(path, hint="train one with `python train_lifting.py method=<...>`")
    ckpt = safe_torch_load(ckpt_path)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("stage") != "lifting" or "config" not in meta:
        raise CheckpointError(f"'{ckpt_path}' is not a lifting checkpoint (meta stage "
                              f"{None if not isinstance(meta, dict) else meta.get('stage')!r})")
    return upgrade_targets(OmegaConf.create(meta["config"])), ckpt, ckpt_path


def evaluate_lifting(model: torch.nn.Module, windows: LiftingWindows, *, occlusion: str, num_samples: int,
                     batch_size: int, seed: int, device: torch.device, mean_pose: torch.Tensor,
                     noise_std: float = 0.01) -> dict[str, Any]:
    """Metrics of ``model`` on ``windows`` under ``occlusion`` (see module docstring) -> result dict."""
    skel = get_skeleton(windows.data.skeleton)
    limbs = list(skel.limbs)
    pairs = symmetric_bone_pairs(skel.joint_names, limbs)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    acc: dict[str, list[torch.Tensor]] = {k: [] for k in ("mpjpe", "pmpjpe", "nmpjpe", "best", "meank", "asym",
                                                           "mean_pose", "mpjve", "bone_std", "action", "asym_gt",
                                                           "bone_std_gt")}
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size, shuffle=False,
                                         collate_fn=lambda items: items)
    t0 = time.time()
    for items in loader:
        p2 = torch.stack([it[0] for it in items])
        p3 = torch.stack([it[1] for it in items]).to(device)
        act = torch.tensor([it[2]["class_idx"] for it in items])
        p2, mask = corrupt_2d(p2, occlusion, skel.joint_names, noise_std=noise_std, generator=gen)
        hyps = model.predict(p2.to(device), mask.to(device), num_samples, generator=gen)   # [B, K, F, J, 3]
        gt = p3 - p3[..., :1, :]
        mean = hyps.mean(dim=1)
        f = gt.shape[1]
        acc["mpjpe"].append(mpjpe(mean, gt).mean(1))
        acc["pmpjpe"].append(p_mpjpe(mean, gt).mean(1))
        acc["nmpjpe"].append(n_mpjpe(mean, gt).mean(1))
        mh = multi_hypothesis(hyps, gt, metric=mpjpe)
        acc["best"].append(mh["best"])
        acc["meank"].append(mh["mean"])
        acc["asym"].append(bone_asymmetry(mean, limbs, pairs).mean(1))
        acc["asym_gt"].append(bone_asymmetry(gt, limbs, pairs).mean(1))
        acc["mean_pose"].append(mpjpe(mean_pose.to(gt).expand_as(gt), gt).mean(1))
        if f > 1:
            acc["mpjve"].append(mpjve(mean, gt))
            acc["bone_std"].append(bone_length_std(mean, limbs))
            acc["bone_std_gt"].append(bone_length_std(gt, limbs))
        acc["action"].append(act)
    cat = {k: torch.cat(v).cpu().double() for k, v in acc.items() if v}
    mm = 1000.0
    metrics = {"MPJPE": cat["mpjpe"].mean() * mm, "PMPJPE": cat["pmpjpe"].mean() * mm,
               "NMPJPE": cat["nmpjpe"].mean() * mm, "MPJPE_bestK": cat["best"].mean() * mm,
               "MPJPE_meanK": cat["meank"].mean() * mm, "Asymmetry": cat["asym"].mean() * mm,
               "MeanPose_MPJPE": cat["mean_pose"].mean() * mm, "Asymmetry_GT": cat["asym_gt"].mean() * mm}
    if "mpjve" in cat:
        metrics.update(MPJVE=cat["mpjve"].mean() * mm, BoneStd=cat["bone_std"].mean() * mm,
                       BoneStd_GT=cat["bone_std_gt"].mean() * mm)
    per_action = {name: per_action_mean(cat[key] * mm, cat["action"].long(), windows.actions)
                  for name, key in (("MPJPE", "mpjpe"), ("PMPJPE", "pmpjpe"))}
    metrics["MPJPE_action_avg"] = per_action["MPJPE"]["average"]
    metrics["PMPJPE_action_avg"] = per_action["PMPJPE"]["average"]
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "per_action": per_action,
            "num_windows": len(windows), "num_samples": int(num_samples), "stats_mode": "lifting",
            "seed": int(seed), "wall_time_s": time.time() - t0}


def main(cfg: DictConfig, load_lifter: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Entry point for ``eval.py task=lifting``. A run converted from the authors' files runs its method's
    official protocol (:mod:`.official`; ``load_lifter(path, device)`` = the method's registry ``load`` hook);
    our lifting runs keep the protocol of this module."""
    from skeleton_diffusion.tasks.results import options_tag, results_target, write_results

    occlusion = str(cfg.get("occlusion", "none"))
    known = [o for o in OCCLUSION_TYPES if o != "mixed"]
    if occlusion not in known + ["all"]:
        raise ConfigError(f"occlusion must be one of {known} or 'all', got {occlusion!r}")
    if not cfg.get("checkpoint_path"):
        raise ConfigError("task=lifting needs checkpoint_path=<lifting run folder or checkpoint>")
    if is_converted_official(cfg.checkpoint_path):
        if load_lifter is None:
            raise ConfigError(f"'{cfg.checkpoint_path}' is a converted official run: its evaluation needs the "
                              "method's loader (eval.py passes the registry's load hook)")
        return run_official(cfg, load_lifter)
    device = resolve_device(cfg.get("device", "auto"))
    from skeleton_diffusion.checkpoints.format import load_state_strict
    from skeleton_diffusion.training.lifting import build_lifting_model as build_model
    from skeleton_diffusion.training.lifting import load_lifting_dataset as load_dataset

    train_cfg, ckpt, ckpt_path = load_lifting_checkpoint(cfg.checkpoint_path)
    if cfg.get("dataset") is not None and cfg.dataset.get("lifting_file"):   # dataset=<lifting dataset> given
        ds_cfg, main_path = cfg.dataset, cfg.get("dataset_main_path", train_cfg.dataset_main_path)
    else:  # the training run's dataset
        ds_cfg, main_path = train_cfg.dataset, train_cfg.dataset_main_path
    data = load_dataset(ds_cfg, main_path)
    model = build_model(train_cfg.model, data)
    use_ema = bool(cfg.get("use_ema_weights", False)) and "ema" in ckpt
    if use_ema:
        state = {k[len("ema_model."):]: v for k, v in ckpt["ema"].items() if k.startswith("ema_model.")}
        load_state_strict(model, state, ckpt_path, "EMA lifting weights")
    else:
        load_state_strict(model, ckpt["model"], ckpt_path, "lifting weights")
    model.to(device).eval()
    frames = int(train_cfg.model.lifter.frames)
    max_windows = cfg.task.get("max_windows")
    windows = LiftingWindows(data, str(cfg.get("dataset_split", "test")), window=frames, stride=frames,
                             max_windows=int(max_windows) if max_windows else None)
    train_idx = data.sequences("train")
    sel = torch.cat([torch.arange(int(data.seq_start[i]), int(data.seq_start[i] + data.seq_len[i])) for i in train_idx])
    mean_pose = torch.from_numpy(data.pose_3d)[sel].double().mean(0).float()
    num_samples = int(cfg.task.get("num_samples", 5))
    occlusions = known if occlusion == "all" else [occlusion]
    run = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    options = {"task": OmegaConf.to_container(cfg.task, resolve=True), "seed": int(cfg.seed), "use_ema": use_ema}
    base = results_target(cfg.get("results_path"), run / "eval" / (
        f"lifting_{ds_cfg.dataset_name}_{cfg.get('dataset_split', 'test')}_{ckpt_path.stem}_{options_tag(options)}"))
    split_up = len(occlusions) > 1 or not cfg.get("results_path")
    targets = {occ: base.sub(occ) if split_up else base for occ in occlusions}
    overwrite = bool(cfg.get("overwrite", False))
    for target in targets.values():  # before the work, not after it
        target.check_free(overwrite)
    runs, paths = [], {}
    for occ in occlusions:
        res = evaluate_lifting(model, windows, occlusion=occ, num_samples=num_samples,
                               batch_size=int(cfg.task.get("batch_size", 256)), seed=int(cfg.seed), device=device,
                               mean_pose=mean_pose, noise_std=float(cfg.task.get("noise_std_2d", 0.01)))
        extra = {"method": str(train_cfg.model.lifter.method), "occlusion": occ, "frames": frames,
                 "per_action": res["per_action"], "use_ema_weights": use_ema,
                 "lifter": OmegaConf.to_container(train_cfg.model.lifter, resolve=True)}
        paths = write_results(targets[occ], res, dataset=str(ds_cfg.dataset_name), checkpoint=str(ckpt_path),
                              seeds=[int(cfg.seed)], extra=extra, print_table=bool(cfg.get("progress", True)),
                              overwrite=overwrite)
        runs.append(res)
        print(f"occlusion={occ}: MPJPE {res['metrics']['MPJPE']:.1f} mm, P-MPJPE {res['metrics']['PMPJPE']:.1f} mm")
    if cfg.task.get("figure_path"):
        from skeleton_diffusion.viz.lifting import plot_lifting_example

        plot_lifting_example(model, windows, occlusions[0], str(cfg.task.figure_path), num_samples=num_samples,
                             seed=int(cfg.seed), device=device)
    per = "; one folder per occlusion" if len(occlusions) > 1 else ""
    files = "one .json per occlusion" if base.json_file is not None else "results.json, results.csv, results.md"
    where = base.json_file if base.json_file is not None and not split_up else f"{base.folder}/"
    print(f"\nresults written to {where} ({files}{per if base.json_file is None else ''})")
    return {"paths": {k: str(v) for k, v in paths.items()}, "runs": runs}
