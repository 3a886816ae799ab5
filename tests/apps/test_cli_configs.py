"""Every command line of the official README composes with our config tree and carries its overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from _pipeline_helpers import compose_cfg

REPO = Path(__file__).resolve().parents[2]

AE = "./output/hmp/amass/autoencoder/June30_11-35-08/checkpoints/checkpoint_300.pt"
OFFICIAL_COMMANDS = [
    ("train_autoencoder", "dataset=amass model.num_epochs=300 task.pose_box_size=1.2 model.autoenc_arch.enc_num_layers=2",
     {"dataset.dataset_name": "amass", "model.num_epochs": 300, "task.pose_box_size": 1.2,
      "model.autoenc_arch.enc_num_layers": 2, "model.obs_length": 30, "model.pred_length": 120}),
    ("train_autoencoder", "dataset=amass-mano model.num_epochs=300 task.pose_box_size=1.2 model.autoenc_arch.enc_num_layers=2",
     {"dataset.num_joints": 52}),
    ("train_autoencoder", "dataset=freeman model.num_epochs=200", {"model.obs_length": 15, "model.pred_length": 60}),
    ("train_autoencoder", "dataset=h36m model.num_epochs=200",
     {"model.obs_length": 25, "model.pred_length": 100, "model.num_iter_perepoch": 485}),
    ("train_diffusion", f"model=skeleton_diffusion model.pretrained_autoencoder_path={AE} dataset_folder_log_path=amass "
     "model.num_epochs=150 model.lr_scheduler_kwargs.warmup_duration=75",
     {"model.num_epochs": 150, "model.lr_scheduler_kwargs.warmup_duration": 75,
      "model.pretrained_autoencoder_path": AE, "model.train_pick_best_sample_among_k": 50}),
    ("train_diffusion", f"model=skeleton_diffusion model.pretrained_autoencoder_path={AE} dataset_folder_log_path=freeman "
     "model.num_epochs=200 model.lr_scheduler_kwargs.gamma_decay=0.85 model.lr_scheduler_kwargs.warmup_duration=25 "
     "model.lr_scheduler_kwargs.update_every=5",
     {"model.lr_scheduler_kwargs.gamma_decay": 0.85, "model.lr_scheduler_kwargs.update_every": 5}),
    ("train_diffusion", f"model=skeleton_diffusion model.pretrained_autoencoder_path={AE} dataset_folder_log_path=h36m "
     "model.num_epochs=100 model.diffusion_arch.attn_heads=8 model.lr_scheduler_kwargs.gamma_decay=0.85 "
     "model.lr_scheduler_kwargs.warmup_duration=25", {"model.diffusion_arch.attn_heads": 8}),
    ("train_diffusion", "model.train_pick_best_sample_among_k=1", {"model.train_pick_best_sample_among_k": 1}),
    ("train_diffusion", "model.similarity_space=latent_space", {"model.similarity_space": "latent_space"}),
    ("train_diffusion", "model=skeleton_diffusion_run_code_as_isotropic",
     {"model.if_run_as_isotropic": True, "model.diffusion_covariance_type": "isotropic"}),
    ("train_diffusion", "model=isotropic_diffusion",
     {"model.diffusion._target_": "skeleton_diffusion.diffusion.IsotropicGaussianDiffusion", "model.num_epochs": 600}),
    ("train_diffusion", "cov_matrix=reachability", {"cov_matrix.reachability_matrix_stop_at": "hips"}),
    ("train_diffusion", "if_resume_training=True load=True output_log_path=./output/hmp/amass/diffusion/June30_11-35-08 "
     "load_path=./output/hmp/amass/diffusion/June30_11-35-08/checkpoints/checkpoint_144.pt",
     {"if_resume_training": True, "load": True}),
    ("eval", "dataset=amass checkpoint_path=./trained_models/hmp/amass/diffusion/checkpoints/cvpr_release.pt "
     "stats_mode=probabilistic", {"stats_mode": "probabilistic", "dataset.dataset_name": "amass"}),
    ("eval", "dataset=freeman checkpoint_path=x.pt stats_mode=probabilistic", {"dataset.fps": 30}),
    ("eval", "dataset=h36m checkpoint_path=x.pt stats_mode=probabilistic", {"dataset.fps": 50}),
    ("eval", "dataset=3dpw checkpoint_path=x.pt stats_mode=probabilistic", {"dataset.dataset_name": "3dpw"}),
    ("eval", "dataset=amass method_specs=zero_velocity", {"method_specs.method_name": "ZeroVelocityBaseline"}),
    ("eval", "dataset=synthetic checkpoint_path=x seeds=[0,1,2] if_long_term_test=true if_noisy_obs=true",
     {"seeds": [0, 1, 2], "if_long_term_test": True}),
]


@pytest.mark.parametrize("config_name,overrides,expected", OFFICIAL_COMMANDS)
def test_official_command_lines_compose(config_name, overrides, expected):
    cfg = compose_cfg(config_name, overrides.split())
    for key, value in expected.items():
        got = OmegaConf.select(cfg, key)
        if isinstance(got, (list, tuple)) or OmegaConf.is_list(got):
            got = list(got)
        assert got == value, f"{key}: {got!r} != {value!r}"


@pytest.mark.parametrize("stage,exp", [("autoencoder", "amass"), ("autoencoder", "h36m"), ("diffusion", "freeman")])
def test_experiment_presets(stage, exp):
    cfg = compose_cfg(f"train_{stage}", [f"experiment={stage}/{exp}"])
    if stage == "autoencoder":
        assert cfg.dataset.dataset_name == exp
        assert cfg.task.pose_box_size == (1.2 if exp == "amass" else 1.5)
    else:
        assert cfg.dataset_folder_log_path == exp and cfg.model.lr_scheduler_kwargs.update_every == 5


def test_cfg_job_prints_overridden_values():
    proc = subprocess.run([sys.executable, "train_autoencoder.py", "dataset=amass", "model.num_epochs=300",
                           "task.pose_box_size=1.2", "model.autoenc_arch.enc_num_layers=2", "--cfg", "job"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.model.num_epochs == 300 and cfg.task.pose_box_size == 1.2
    assert cfg.model.autoenc_arch.enc_num_layers == 2 and cfg.dataset.dataset_name == "amass"


def test_amass_recipe_stops_with_dataset_not_prepared(tmp_path):
    """The seed README AMASS command reaches the data loader and stops with the clear message."""
    proc = subprocess.run([sys.executable, "train_autoencoder.py", "dataset=amass", "model.num_epochs=300",
                           "task.pose_box_size=1.2", "model.autoenc_arch.enc_num_layers=2",
                           f"dataset_main_path={tmp_path}/datasets", f"output_log_path={tmp_path}/run"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "data_3d_amass.npz" in proc.stderr and "create_amass_dataset" in proc.stderr


@pytest.mark.parametrize("config_name, model", [("train_diffusion", "skeleton_diffusion"),
                                                ("train_diffusion", "isotropic_diffusion"),
                                                ("train_diffusion", "skeleton_diffusion_run_code_as_isotropic"),
                                                ("train_autoencoder", "autoencoder")])
def test_optimizers_are_fused_and_cpu_memory_kept(config_name, model):
    import torch
    from hydra.utils import instantiate

    cfg = compose_cfg(config_name, [f"model={model}"])
    opt = instantiate(cfg.model.optimizer)([torch.nn.Parameter(torch.zeros(3))])
    assert opt.defaults["fused"] is True
    assert cfg.cpu_keep_freed_memory is True
    assert compose_cfg(config_name, [f"model={model}", "model.optimizer.fused=false"]).model.optimizer.fused is False
