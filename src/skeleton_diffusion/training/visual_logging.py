"""Pictures in TensorBoard during validation: a key-frame grid and a short animation of predictions."""

from __future__ import annotations

import logging
from typing import Any

import torch

_log = logging.getLogger(__name__)


def log_prediction_visuals(tb_logger: Any, tag: str, obs: torch.Tensor, samples: torch.Tensor, gt: torch.Tensor,
                           skeleton: Any, step: int, fps: float = 30.0, max_samples: int = 3) -> None:
    """Log ``samples [S, T_pred, N, 3]`` (with ``obs [T_obs, N, 3]`` and ``gt [T_pred, N, 3]``, metres) as an
    image grid (``<tag>/samples``) and an animated GIF (``<tag>/animation``). Never interrupts training: a
    rendering failure is logged as a warning."""
    if tb_logger is None:
        return
    from skeleton_diffusion.viz.animation import add_video, tensorboard_animation
    from skeleton_diffusion.viz.plots import sample_grid_image

    obs, samples, gt = (x.detach().float().cpu() for x in (obs, samples, gt))
    try:
        grid = sample_grid_image(samples, skeleton, obs=obs, gt=gt, max_samples=max_samples)
        tb_logger.writer.add_image(f"{tag}/samples", grid, step, dataformats="HWC")
        video = tensorboard_animation(obs, samples, skeleton, gt=gt, max_samples=max_samples)
        add_video(tb_logger.writer, f"{tag}/animation", video, step, fps=fps / 2)
    except Exception as exc:  # noqa: BLE001 - visuals are a convenience, never a reason to stop training
        _log.warning("could not log validation visuals: %s", exc)
