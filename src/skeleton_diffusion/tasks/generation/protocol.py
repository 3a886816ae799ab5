"""``eval.py task=generation``: score a motion generator (text- or action-conditioned) with the generation
metrics of :mod:`.metrics.generation`, in the embedding space of a trained :class:`GenerationEvaluator`.

    python -m skeleton_diffusion.apps.train_generation_evaluator dataset=synthetic      # once per dataset
    python eval.py task=generation dataset=synthetic task.condition=text checkpoint_path=<MDM text run>
    python eval.py task=generation dataset=synthetic task.condition=action checkpoint_path=<MDM action run>
    python eval.py task=generation dataset=synthetic task.generator=real                       # oracle row
    python -m skeleton_diffusion.apps.train_generation_evaluator dataset=synthetic eval_part=upper
    python eval.py task=generation dataset=synthetic eval_part=upper checkpoint_path=<run>     # upper body only

Protocol (as MDM's evaluation, with our evaluator): the test windows of the dataset are the conditions
(caption or action label, and length); each replication (one seed each, ``task.replication_times``) generates
one motion per window, embeds generated and real motions and the captions, and computes FID (generated vs
real test motions), R-precision top-1/2/3 and MM-Dist (text; windows shuffled with the seed, batches of 32),
Diversity, action accuracy (action) and MultiModality (``mm_num_samples`` windows x ``mm_num_repeats``
generations; only with ``task.test_mm=true``, the official CrossDiff/MDM switch). Results: mean ± std over
replications in ``results.json/csv/md``.

Body parts (``eval_part=all|upper|lower``, official CrossDiff): the evaluator trained for that part (default
``generation_evaluator_<part>.pt``, see :mod:`.train_generation_evaluator`) embeds generated and real motions from
that part's joints only; a missing or other-part checkpoint is an error naming the training command. The part is
recorded in the results (``extra.eval_part``) and in the default results folder name.

Oracle (``task.generator=real``): the real test motions stand in for generations. Their FID is computed
against the *valid* split's real motions (FID of a set with itself is 0 by construction); MultiModality does
not apply (one motion per condition).

Generators follow the interface of ``skeleton_diffusion.methods.mdm.predictor.MDMPredictor``:
``generate(num_frames, *, texts=None, actions=None, num_samples=1, generator=None) -> [B, S, T, J, 3]`` metres,
in the canonical frame of :mod:`skeleton_diffusion.data.windows.generation`, and ``.condition`` (``text`` / ``action``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from skeleton_diffusion.data.windows.generation import GenerationDataset, build_generation_dataset
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError, InputError
from skeleton_diffusion.tasks.generation.evaluator_networks import GenerationEvaluator, load_evaluator
from skeleton_diffusion.metrics.generation import (
    GENERATION_METRIC_ORDER,
    action_accuracy,
    diversity,
    generation_fid,
    matching_score,
    multimodality,
    r_precision,
)
from skeleton_diffusion.tasks.generation.train_evaluator import default_evaluator_path, embed_dataset, eval_part_of

__all__ = ["generate_for_windows", "score_generations", "evaluate_generator", "evaluate_real", "main"]

_log = logging.getLogger(__name__)


@torch.no_grad()
def generate_for_windows(
    generator: Any, ds: GenerationDataset, indices: Sequence[int], condition: str, *, num_samples: int = 1,
    batch_size: int = 64, seed: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Generate ``num_samples`` motions for the conditions of windows ``indices`` -> ``[n, S, T, J, 3]`` (CPU)."""
    g = torch.Generator(device=getattr(generator, "device", "cpu")).manual_seed(int(seed))
    outs = []
    for i in range(0, len(indices), batch_size):
        idx = list(indices[i : i + batch_size])
        kw: dict[str, Any] = {"num_samples": num_samples, "generator": g}
        if condition == "text":
            kw["texts"] = [ds.texts[k][0] for k in idx]
        elif condition == "action":
            kw["actions"] = torch.tensor([ds.actions[k] for k in idx], dtype=torch.long)
        else:
            raise ConfigError(f"task.condition must be text or action; got {condition!r}.")
        out = generator.generate(ds.num_frames, **kw)
        if out.dim() == 4:  # [B, T, J, 3] from a generator without a samples axis
            out = out[:, None]
        if out.shape[0] != len(idx) or out.shape[1] != num_samples or out.shape[2] != ds.num_frames:
            raise InputError(f"generator returned {tuple(out.shape)}; expected [{len(idx)}, {num_samples}, "
                             f"{ds.num_frames}, J, 3].")  # fmt: skip
        outs.append(out.detach().float().cpu())
    return torch.cat(outs)


@torch.no_grad()
def _embed_motion(evaluator: GenerationEvaluator, motion: torch.Tensor, length: torch.Tensor,
                  batch_size: int = 256) -> np.ndarray:  # fmt: skip
    dev = evaluator.feat_mean.device
    return np.concatenate([
        evaluator.motion_embedding(motion[i : i + batch_size].to(dev), length[i : i + batch_size]).cpu().numpy()
        for i in range(0, motion.shape[0], batch_size)
    ])  # fmt: skip


def score_generations(
    gen_emb: np.ndarray, real: dict[str, np.ndarray], condition: str, *, seed: int, r_precision_batch: int = 32,
    diversity_times: int = 300, fid_reference: np.ndarray | None = None, gen_logits: np.ndarray | None = None,
) -> dict[str, float]:  # fmt: skip
    """Metrics of one replication from embeddings. ``real``: :func:`embed_dataset` output of the test windows
    (``motion``, ``text``, ``action``); ``gen_emb [N, D]`` in the same window order."""
    rng = np.random.default_rng(seed)
    n = gen_emb.shape[0]
    out: dict[str, float] = {}
    if condition == "text":
        perm = rng.permutation(n)
        batch = min(r_precision_batch, n)
        rp = r_precision(real["text"][perm], gen_emb[perm], batch_size=batch)
        out.update({f"R_precision_top{k + 1}": float(rp[k]) for k in range(3)})
        out["MM_Dist"] = matching_score(real["text"][perm], gen_emb[perm], batch_size=batch)
    ref = real["motion"] if fid_reference is None else fid_reference
    out["FID"] = generation_fid(ref, gen_emb)
    out["Diversity"] = diversity(gen_emb, min(int(diversity_times), n - 1), rng)
    if condition == "action" and gen_logits is not None:
        out["Accuracy"] = action_accuracy(gen_logits, real["action"])
    return out


def evaluate_generator(
    generator: Any, ds: GenerationDataset, evaluator: GenerationEvaluator, task: Any, *, seeds: Sequence[int],
    condition: str, real: dict[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """One result dict per seed (``{"metrics": {...}, "seed", "num_windows", ...}``) for ``generator``."""
    real = real if real is not None else embed_dataset(evaluator, ds, device=evaluator.feat_mean.device)
    length = torch.tensor([w[2] for w in ds.windows], dtype=torch.long)
    idx = list(range(len(ds)))
    bs = int(task.get("gen_batch_size", 64))
    runs = []
    for seed in seeds:
        t0 = time.time()
        gen = generate_for_windows(generator, ds, idx, condition, batch_size=bs, seed=seed)[:, 0]
        emb = _embed_motion(evaluator, gen, length)
        logits = evaluator.action_logits_from_embedding(torch.from_numpy(emb).to(evaluator.feat_mean.device))
        metrics = score_generations(emb, real, condition, seed=seed, r_precision_batch=int(task.r_precision_batch),
                                    diversity_times=int(task.diversity_times),
                                    gen_logits=logits.detach().cpu().numpy())  # fmt: skip
        repeats, n_mm = int(task.mm_num_repeats), min(int(task.mm_num_samples), len(ds))
        if bool(task.get("test_mm", True)) and repeats > 1 and n_mm > 0:
            mm_idx = np.random.default_rng(seed).choice(len(ds), n_mm, replace=False).tolist()
            mm = generate_for_windows(generator, ds, mm_idx, condition, num_samples=repeats,
                                      batch_size=max(1, bs // repeats), seed=seed + 10_000)  # fmt: skip
            flat = _embed_motion(evaluator, mm.flatten(0, 1), length[mm_idx].repeat_interleave(repeats))
            metrics["MultiModality"] = multimodality(flat.reshape(n_mm, repeats, -1),
                                                     min(int(task.multimodality_times), repeats - 1),
                                                     np.random.default_rng(seed))  # fmt: skip
        runs.append(_run_dict(metrics, ds, seed, condition, time.time() - t0))
    return runs


def evaluate_real(ds: GenerationDataset, reference: GenerationDataset, evaluator: GenerationEvaluator, task: Any,
                  *, seeds: Sequence[int], condition: str) -> list[dict[str, Any]]:  # fmt: skip
    """Oracle row: the real test motions scored as generations (FID against ``reference``'s real motions)."""
    dev = evaluator.feat_mean.device
    real = embed_dataset(evaluator, ds, device=dev)
    ref = embed_dataset(evaluator, reference, device=dev)
    runs = []
    for seed in seeds:
        t0 = time.time()
        metrics = score_generations(real["motion"], real, condition, seed=seed,
                                    r_precision_batch=int(task.r_precision_batch),
                                    diversity_times=int(task.diversity_times), fid_reference=ref["motion"],
                                    gen_logits=real["logits"])  # fmt: skip
        runs.append(_run_dict(metrics, ds, seed, condition, time.time() - t0))
    return runs


def _run_dict(metrics: dict[str, float], ds: GenerationDataset, seed: int, condition: str, wall: float) -> dict:
    ordered = {k: metrics[k] for k in GENERATION_METRIC_ORDER if k in metrics}
    return {"metrics": ordered, "seed": int(seed), "num_windows": len(ds), "num_samples": 1,
            "stats_mode": f"generation/{condition}", "wall_time_s": wall}  # fmt: skip


#: ``load_generator(path, device) -> generator`` (a :class:`~skeleton_diffusion.tasks.base.Generator`): ``eval.py``
#: passes the method registry's loader, so this module never imports a method.
GeneratorLoader = Callable[[Any, torch.device], Any]


def _results_target(cfg: DictConfig, kind: str, condition: str, split: str, part: str, seeds: list[int]) -> Any:
    """``results_path`` (a ``*.json`` file, else a folder) or a default folder unique per evaluated run, checkpoint,
    dataset, split, condition, body part and options: ``<run dir>/eval/generation_<dataset>_<split>_<condition>
    [_<part>]_<checkpoint>_<options>/``; the real-data row: ``output/eval/generation/real/...``."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.tasks.results import options_tag, results_target

    suffix = "" if part == "all" else f"_{part}"
    options = {"task": OmegaConf.to_container(cfg.task, resolve=True), "seeds": seeds,
               "use_ema_weights": cfg.get("use_ema_weights"), "evaluator": str(default_evaluator_path(cfg))}
    name = f"generation_{cfg.dataset.dataset_name}_{split}_{condition}{suffix}"
    if kind == "checkpoint":
        ckpt = resolve_checkpoint(cfg.checkpoint_path)
        run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        default = run / "eval" / f"{name}_{ckpt.stem}_{options_tag(options)}"
    else:
        default = Path("output") / "eval" / "generation" / kind / f"{name}_{options_tag(options)}"
    return results_target(cfg.get("results_path"), default)


def main(cfg: DictConfig, load_generator: GeneratorLoader) -> dict[str, Any]:
    """``eval.py task=generation``: write ``results.{json,csv,md}`` and return the summary. ``evaluator=official``
    (root key, or ``task.evaluator_kind``): the official T2M protocol (:func:`.official_eval.run_official`)."""
    from skeleton_diffusion.tasks.results import format_table, summarize, write_results

    kind_ev = str(cfg.get("evaluator") or cfg.task.get("evaluator_kind") or "ours")
    if kind_ev == "official":
        from skeleton_diffusion.tasks.generation.official_eval import run_official

        return run_official(cfg, load_generator)
    if kind_ev != "ours":
        raise ConfigError(f"evaluator must be 'ours' (our trained evaluator) or 'official' (MDM's T2M evaluator); "
                          f"got {kind_ev!r}.")  # fmt: skip

    device = resolve_device(cfg.get("device", "auto"))
    task = cfg.task
    split = str(cfg.get("dataset_split", "test"))
    ds = build_generation_dataset(cfg.dataset, split, dataset_main_path=cfg.dataset_main_path,
                                  num_frames=task.get("num_frames"), stride=task.get("test_stride"),
                                  max_windows=task.get("max_test_windows"))  # fmt: skip
    part = eval_part_of(cfg)
    ev_path = default_evaluator_path(cfg)
    evaluator = load_evaluator(ev_path, device, eval_part=part)
    if cfg.get("seeds"):
        seeds = [int(s) for s in cfg.seeds]
    else:
        seeds = [int(cfg.seed) + r for r in range(int(task.replication_times))]
    kind = str(task.get("generator", "checkpoint"))
    condition = str(task.condition)
    checkpoint = None
    if kind == "real":
        ref_split = "valid" if str(cfg.dataset.dataset_name) == "synthetic" else "val"
        reference = build_generation_dataset(
            cfg.dataset, ref_split, dataset_main_path=cfg.dataset_main_path, num_frames=task.get("num_frames"),
            stride=task.get("test_stride"))
        target = _results_target(cfg, kind, condition, split, part, seeds)
        target.check_free(bool(cfg.get("overwrite", False)))  # before the work, not after it
        runs = evaluate_real(ds, reference, evaluator, task, seeds=seeds, condition=condition)
        method = "Real (oracle)"
    elif kind == "checkpoint":
        if not cfg.get("checkpoint_path"):
            raise ConfigError("task=generation needs checkpoint_path=<generator run or checkpoint> "
                              "(or task.generator=real for the real-data row)")  # fmt: skip
        generator = load_generator(cfg.checkpoint_path, device)
        if hasattr(generator, "start") and task.get("crossdiff_start"):  # CrossDiff: 3d | 2d (mixed) start (H19)
            generator.start = str(task.crossdiff_start)
        condition = str(getattr(generator, "condition", condition))
        if condition not in ("text", "action"):
            raise ConfigError(f"checkpoint '{cfg.checkpoint_path}' is {condition}-conditioned; task=generation "
                              "scores text- or action-conditioned generators.")  # fmt: skip
        target = _results_target(cfg, kind, condition, split, part, seeds)
        target.check_free(bool(cfg.get("overwrite", False)))
        runs = evaluate_generator(generator, ds, evaluator, task, seeds=seeds, condition=condition)
        name = getattr(generator, "method_name", None) or type(generator).__name__  # CrossDiff label (H19)
        method, checkpoint = ("MDM" if "mdm" in name.lower() else name), cfg.checkpoint_path
    else:
        raise ConfigError(f"task.generator must be checkpoint or real; got {kind!r}.")
    extra = {"task": "generation", "method": method, "condition": condition, "eval_part": part,
             "part_joints": list(evaluator.config["part_joints"]), "evaluator": str(ev_path),
             "evaluator_sha256": getattr(evaluator, "sha256", None)}  # fmt: skip
    paths = write_results(target, runs, dataset=str(cfg.dataset.dataset_name), checkpoint=checkpoint, seeds=seeds,
                          extra=extra, overwrite=bool(cfg.get("overwrite", False)))
    summary = summarize(runs, dataset=str(cfg.dataset.dataset_name), checkpoint=checkpoint, seeds=seeds, extra=extra)
    if not cfg.get("silent", False):
        print(f"{method} ({condition}) [eval_part={part}]:")
        print(format_table(summary))
        print(f"results -> {', '.join(str(p) for p in paths.values())}")
    summary["results_dir"] = str(paths["json"].parent)
    return summary
