"""What each task asks of a method: typed contracts the evaluators and apps rely on, nothing else.

A method's loader (registry hook ``load``) returns an object satisfying the Protocol of every task it serves;
the evaluation loops (:mod:`skeleton_diffusion.tasks.hmp`, :mod:`~skeleton_diffusion.tasks.generation`,
:mod:`~skeleton_diffusion.tasks.lifting`) use only these members. Shapes are in metres unless stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Predictor(Protocol):
    """Motion prediction (``task=hmp``): observed motion -> sampled futures."""

    def predict(self, obs: Any, num_samples: int = 50, seed: Optional[int] = 0, **options: Any) -> Any:
        """``obs [T_obs, J, 3]`` or ``[B, T_obs, J, 3]`` metres -> futures ``[B, S, T_pred, J, 3]`` metres."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Conditional motion generation (``task=generation``): captions or action labels -> motions."""

    def generate(self, num_frames: Optional[int] = None, *, texts: Optional[Sequence[str]] = None,
                 actions: Any = None, num_samples: int = 1, **options: Any) -> Tensor:
        """One condition per row -> ``[B, S, T, J, 3]`` (model space of the method; see its docs)."""
        ...


@runtime_checkable
class Lifter(Protocol):
    """2D->3D pose lifting (``task=lifting``): 2D keypoints -> 3D pose hypotheses."""

    def lift(self, keypoints_2d: Tensor, num_samples: int = 1, **options: Any) -> Tensor:
        """``keypoints_2d [B, (T,) J, 2]`` (screen-normalised) -> ``[B, S, (T,) J, 3]`` root-relative metres."""
        ...


@dataclass(frozen=True)
class WindowPredictor:
    """The batch-level predictor the motion-prediction evaluator runs (what a method's ``hmp_predictor`` hook
    returns as its first element).

    ``fn(obs [B, T_obs, N, 3] input space, num_samples, **kw) -> [B, S, T_pred, N, 3]``; ``requires_future``: ``fn``
    takes ``future=`` (it reads only the horizon); ``requires_extra``: it takes ``extra=`` (window metadata, for
    per-window noise); ``requires_seed``: it takes ``seed=``; ``per_window_noise``: its draws depend only on the
    window, so batching and sharding do not change the samples."""

    fn: Callable[..., Tensor]
    requires_future: bool = False
    requires_extra: bool = False
    requires_seed: bool = False
    per_window_noise: bool = False

    def __call__(self, obs: Tensor, num_samples: int, **kwargs: Any) -> Tensor:
        return self.fn(obs, num_samples, **kwargs)


def no_grad_predictor(fn: Callable[..., Tensor], **flags: bool) -> WindowPredictor:
    """:class:`WindowPredictor` around ``fn`` run under ``torch.inference_mode``."""

    def run(obs: Tensor, num_samples: int, **kwargs: Any) -> Tensor:
        with torch.inference_mode():
            return fn(obs, num_samples, **kwargs)

    return WindowPredictor(run, **flags)
