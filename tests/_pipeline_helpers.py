"""Helpers shared by the trainer / end-to-end tests: a tiny synthetic dataset and composed tiny configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import skeleton_diffusion.config  # noqa: F401  (resolvers)
from skeleton_diffusion.config import CONFIG_DIR

#: Overrides that make every stage tiny and fast on CPU (on top of the debug presets).
TINY_AE = [
    "debug=autoencoder", "progress=false", "model.num_epochs=2", "model.num_iter_perepoch=6",
    "model.batch_size=16", "model.latent_size=16", "model.autoenc_arch.encoder_hidden_size=16",
    "model.autoenc_arch.decoder_hidden_size=16", "model.if_run_validation=false",
    "task.prediction_horizon_sec=0.5", "model.curriculum_it=0", "model.random_prediction_horizon=false",
]
TINY_DIFF = [
    "debug=diffusion", "progress=false", "model.num_epochs=2", "model.num_iter_perepoch=6", "model.batch_size=16",
    "model.if_run_validation=false", "model.train_pick_best_sample_among_k=3", "model.diffusion_arch.depth=1",
    "model.diffusion_arch.attn_heads=2", "model.diffusion_arch.attn_dim_head=8", "model.step_start_ema=2",
    "model.ema_update_every=2",
]


def make_synthetic(root: Path) -> Path:
    """Build the small synthetic dataset under ``root/processed/Synthetic/hmp`` (cached per session root)."""
    from skeleton_diffusion.data.builders.synthetic import build_synthetic_dataset

    out = root / "processed" / "Synthetic" / "hmp"
    build_synthetic_dataset(out, seed=0, small=True, verbose=False)
    return root


def compose_cfg(config_name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def ae_cfg(data_root: Path, out: Path, extra: list[str] = ()) -> DictConfig:
    return compose_cfg("train_autoencoder", TINY_AE + [f"dataset_main_path={data_root}",
                                                       f"output_log_path={out}", *extra])


def diffusion_cfg(data_root: Path, ae_run: Path, out: Path, extra: list[str] = ()) -> DictConfig:
    return compose_cfg("train_diffusion", TINY_DIFF + [f"dataset_main_path={data_root}",
                                                       f"model.pretrained_autoencoder_path={ae_run}",
                                                       f"output_log_path={out}", *extra])


def run_repo_command(args: list[str]) -> Any:
    """Run ``python <args>`` in the repository root (one thread, Agg backend); assert it exits 0, showing the tail
    of its output otherwise."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def generation_api_runs(eval_overrides: list[str], seeds: list[int]) -> tuple[Any, Any, Any, list[dict]]:
    """What ``eval.py task=generation <eval_overrides>`` computes, in process: the same config composed, the same
    test windows, generator (``eval.py``'s loader) and evaluator -> ``(ds, generator, evaluator, runs)`` with one
    :func:`~skeleton_diffusion.tasks.generation.protocol.evaluate_generator` result per seed."""
    import torch

    from skeleton_diffusion.apps.evaluate import load_generator
    from skeleton_diffusion.data.windows.generation import build_generation_dataset
    from skeleton_diffusion.tasks.generation.evaluator_networks import load_evaluator
    from skeleton_diffusion.tasks.generation.protocol import evaluate_generator

    cfg = compose_cfg("eval", eval_overrides)
    task = cfg.task
    ds = build_generation_dataset(cfg.dataset, "test", dataset_main_path=cfg.dataset_main_path,
                                  num_frames=task.get("num_frames"), stride=task.get("test_stride"),
                                  max_windows=task.get("max_test_windows"))  # fmt: skip
    dev = torch.device("cpu")
    generator = load_generator(cfg.checkpoint_path, dev)
    if task.get("crossdiff_start"):
        generator.start = str(task.crossdiff_start)
    evaluator = load_evaluator(task.evaluator_path, dev)
    runs = evaluate_generator(generator, ds, evaluator, task, seeds=seeds, condition=str(generator.condition))
    return ds, generator, evaluator, runs


def assert_results_equal_api(res: dict, runs: list[dict], rtol: float = 1e-5) -> None:
    """Every metric of ``results.json`` (per seed and mean) equals the in-process runs. ``rtol``: both sides run the
    same float32 code on CPU with one thread; the measured difference is 0 (bit-identical), 1e-5 leaves room for
    a BLAS that reorders sums, far below any change of unit, scale or seed (which moves the metrics by >1 %)."""
    import numpy as np

    assert res["seeds"] == [r["seed"] for r in runs] and res["num_windows"] == runs[0]["num_windows"]
    assert set(res["metrics"]) == set(runs[0]["metrics"]), (sorted(res["metrics"]), sorted(runs[0]["metrics"]))
    for name, v in res["metrics"].items():
        api = [r["metrics"][name] for r in runs]
        np.testing.assert_allclose(v["values"], api, rtol=rtol, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(v["mean"], np.mean(api), rtol=rtol, atol=1e-7, err_msg=name)


def assert_r_precision_valid(metrics: dict) -> None:
    """R-precision top-1 <= top-2 <= top-3 (top-k counts the true caption among the k nearest), each in [0, 1]."""
    top = [float(metrics[f"R_precision_top{k}"]) for k in (1, 2, 3)]
    assert all(0.0 <= t <= 1.0 for t in top) and top[0] <= top[1] <= top[2], top


def body_extent(motion: Any) -> Any:
    """Per-frame body size in metres of ``[..., T, J, 3]`` motion: the largest per-axis span over the joints
    (a standing adult: ~1.6-1.8 m) -> ``[..., T]``."""
    import numpy as np

    m = np.asarray(motion, dtype=np.float64)
    return (m.max(-2) - m.min(-2)).max(-1)
