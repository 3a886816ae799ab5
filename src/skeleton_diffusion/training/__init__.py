"""Training infrastructure shared by the AE and diffusion trainers (PyTorch-Ignite).

Generic, model-agnostic pieces (spec §3.5, §6.3, §7): the official lr schedule, EMA, AE horizon
curriculum, RNG capture/restore, a resumable sampler, atomic checkpoints with exact resume, run folders and
resume resolution, TensorBoard / progress helpers and handler wiring. The trainers themselves live in
``autoencoder_trainer.py`` / ``diffusion_trainer.py``.
"""

from skeleton_diffusion.training.checkpoint import CHECKPOINT_FORMAT_VERSION, CheckpointSaver, NonFiniteLossError, NonFiniteLossGuard, build_checkpoint, find_latest_checkpoint, list_checkpoints, load_checkpoint, make_meta, save_checkpoint
from skeleton_diffusion.training.curriculum import HorizonCurriculum, curriculum_factor, draw_horizon, horizon_upper_bound, min_horizon
from skeleton_diffusion.training.ema import ModelEMA, attach_ema, ema_decay, ema_update_kind
from skeleton_diffusion.training.engine_utils import EpochReseeder, attach_standard_handlers, attach_validation, make_generator, worker_init_fn
from skeleton_diffusion.training.loggers import attach_progress_bar, attach_running_average, attach_validation_logging, scalar_output_transform, setup_tensorboard
from skeleton_diffusion.training.lr_schedule import ExponentialLRSchedulerWarmup, lr_trace
from skeleton_diffusion.training.rng import RNGState, capture_rng_state, restore_rng_state, seed_everything, set_determinism
from skeleton_diffusion.training.run_dir import ResumeSpec, RunDir, apply_overrides, broadcast_path, prepare_run_dir, resolve_resume, run_dir_path, timestamp
from skeleton_diffusion.training.sampler import ResumableRandomSampler

__all__ = [
    "CHECKPOINT_FORMAT_VERSION", "CheckpointSaver", "NonFiniteLossError", "NonFiniteLossGuard", "build_checkpoint",
    "find_latest_checkpoint", "list_checkpoints", "load_checkpoint", "make_meta", "save_checkpoint",
    "HorizonCurriculum", "curriculum_factor", "draw_horizon", "horizon_upper_bound", "min_horizon",
    "ModelEMA", "attach_ema", "ema_decay", "ema_update_kind",
    "EpochReseeder", "attach_standard_handlers", "attach_validation", "make_generator", "worker_init_fn",
    "attach_progress_bar", "attach_running_average", "attach_validation_logging", "scalar_output_transform",
    "setup_tensorboard", "ExponentialLRSchedulerWarmup", "lr_trace",
    "RNGState", "capture_rng_state", "restore_rng_state", "seed_everything", "set_determinism",
    "ResumeSpec", "RunDir", "apply_overrides", "broadcast_path", "prepare_run_dir", "resolve_resume", "run_dir_path", "timestamp",
    "ResumableRandomSampler",
]
