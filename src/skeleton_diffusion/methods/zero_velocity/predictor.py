"""Algorithmic predictors for the evaluator: zero-velocity baseline and ground-truth oracle.

Both follow the evaluator's ``predict_fn(obs, num_samples, ...) -> [B, S, T_pred, N, 3]`` contract
(input space in, input space out).
"""

from __future__ import annotations

from typing import Any

import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = ["ZeroVelocityBaseline", "zero_velocity", "GroundTruthOracle"]


def zero_velocity(obs: torch.Tensor, pred_length: int, num_samples: int = 1) -> torch.Tensor:
    """Repeat the last observed pose: ``obs [B, T_obs, N, 3]`` -> ``[B, num_samples, pred_length, N, 3]``."""
    if obs.dim() != 4 or obs.shape[1] < 1:
        raise InputError(f"obs must be [B, T_obs >= 1, N, 3]; got {tuple(obs.shape)}.")
    if pred_length < 1 or num_samples < 1:
        raise InputError(f"pred_length and num_samples must be >= 1; got {pred_length}, {num_samples}.")
    last = obs[:, -1]  # [B, N, 3]
    return last[:, None, None].expand(-1, num_samples, pred_length, -1, -1).clone()


class ZeroVelocityBaseline:
    """Official ``ZeroVelocityBaseline`` (spec §6.13): the last observed frame repeated for the whole horizon.

    Deterministic, so it returns a **single sample** whatever ``num_samples`` is asked (APD = 0), exactly as
    the official baseline; MMADE/MMFDE, CMD, APDE and the body metrics are computed normally on it.
    """

    requires_future = True  # only to read the horizon length; the future's values are never used

    def __call__(self, obs: torch.Tensor, num_samples: int, *, future: torch.Tensor | None = None) -> torch.Tensor:
        if future is None:
            raise InputError("ZeroVelocityBaseline needs the horizon: call it with future=<[B, T_pred, N, 3]>.")
        return zero_velocity(obs, future.shape[1], 1)


class GroundTruthOracle:
    """Returns the ground-truth future ``num_samples`` times (tests and sanity checks: ADE = FDE = 0).

    ``perturb_std`` (input-space units) adds i.i.d. Gaussian noise to every sample except the first, which
    keeps the best-of-S metrics at 0 while giving the samples non-zero diversity.
    """

    requires_future = True

    def __init__(self, perturb_std: float = 0.0, generator: torch.Generator | None = None) -> None:
        self.perturb_std = float(perturb_std)
        self.generator = generator

    def __call__(self, obs: torch.Tensor, num_samples: int, *, future: torch.Tensor | None = None) -> torch.Tensor:
        if future is None:
            raise InputError("GroundTruthOracle needs the batch's future (the evaluator passes future=...).")
        out = future.unsqueeze(1).repeat(1, num_samples, 1, 1, 1)
        if self.perturb_std > 0 and num_samples > 1:
            noise = torch.randn(out[:, 1:].shape, generator=self.generator, dtype=out.dtype, device="cpu")
            out[:, 1:] += self.perturb_std * noise.to(out.device)
        return out


def hmp_predictor(cfg: Any, device: Any) -> tuple[Any, Any, float, None, str]:
    """Registry hook of ``eval.py method_specs=zero_velocity``: ``(predict_fn, skeleton, pose_box_size, None, name)``."""
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    skeleton = get_skeleton(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name)
    return ZeroVelocityBaseline(), skeleton, float(cfg.task.pose_box_size), None, "ZeroVelocityBaseline"
