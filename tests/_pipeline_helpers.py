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
