"""Oracle facade of the official DiffPose (GONGJIA0208/Diffpose @ 9a15bf8): official layouts and key names in,
official outputs out. Names and signatures are those of ``fixtures/lifting/INTERFACE.md``.

Layouts: ``uvxyz [B, 17, 5]`` = normalised 2D followed by root-relative camera-frame 3D (metres); ``betas`` is
the float32 schedule the official runner uses; state dicts are the checkpoints' ``states[0]`` (``module.*``).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from torch import Tensor, nn

from skeleton_diffusion.methods.diffpose import diffusion as _diff
from skeleton_diffusion.methods.diffpose.networks import build_from_state_dict

__all__ = [
    "diffpose_betas", "load_diffpose_denoiser", "load_diffpose_pose_prior", "diffpose_q_sample", "diffpose_loss",
    "diffpose_generalized_steps", "diffpose_lift",
]


def diffpose_betas(beta_schedule: str, beta_start: float, beta_end: float, num_diffusion_timesteps: int) -> np.ndarray:
    """float64 ``β [T]`` (linear, quad, const, jsd, sigmoid), official ``get_beta_schedule``."""
    return _diff.diffpose_betas(beta_schedule, beta_start, beta_end, num_diffusion_timesteps)


def load_diffpose_denoiser(state_dict: Mapping[str, Tensor], hid_dim: int, num_layer: int, n_head: int) -> nn.Module:
    """Official GCNdiff (eval mode): ``module(x [B, 17, 5], t float [B]) -> [B, 17, 5]``."""
    return build_from_state_dict("denoiser", state_dict, hid_dim, num_layer, n_head)


def load_diffpose_pose_prior(state_dict: Mapping[str, Tensor], hid_dim: int, num_layer: int, n_head: int) -> nn.Module:
    """Official GCNpose (eval mode): ``module(x2d [B, 17, 2]) -> xyz [B, 17, 3]``."""
    return build_from_state_dict("prior", state_dict, hid_dim, num_layer, n_head)


def diffpose_q_sample(x0: Tensor, t: Tensor, noise_scaled: Tensor, betas: Tensor) -> Tensor:
    """``x_t = √ᾱ_t x0 + √(1 - ᾱ_t) noise_scaled`` (``noise_scaled`` = GMM-scaled noise)."""
    return _diff.q_sample(x0, t, noise_scaled, betas)


def diffpose_loss(model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, t: Tensor, noise_scaled: Tensor,
                  betas: Tensor) -> Tensor:
    """Official training loss (scalar): batch mean of the summed squared noise error."""
    return _diff.training_loss(model, x0, t, noise_scaled, betas)


def diffpose_generalized_steps(x: Tensor, seq: Sequence[int], model: Callable[[Tensor, Tensor], Tensor],
                               betas: Tensor, eta: float, noise: Sequence[Tensor] | None = None
                               ) -> tuple[list[Tensor], list[Tensor]]:
    """Official ``generalized_steps`` -> ``(xs, x0_preds)``; ``noise[k]`` = the ``randn_like`` draw of step k."""
    return _diff.generalized_steps(x, seq, model, betas, eta=eta, noise=noise)


def diffpose_lift(prior: Callable[[Tensor], Tensor], model: Callable[[Tensor, Tensor], Tensor], input_2d: Tensor,
                  betas: Tensor, test_num_diffusion_timesteps: int, test_timesteps: int, eta: float,
                  test_times: int, step_noise: Sequence[Tensor] | None) -> Tensor:
    """Official ``test_hyber`` -> root-relative ``xyz [B, 17, 3]``: no noise on the prior's start pose, DDIM over
    ``range(0, test_num_diffusion_timesteps, test_num_diffusion_timesteps // test_timesteps)``."""
    return _diff.lift(prior, model, input_2d, betas, test_num_diffusion_timesteps, test_timesteps, eta=eta,
                      test_times=test_times, step_noise=step_noise)
