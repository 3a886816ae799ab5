"""Conversions between the three coordinate spaces used everywhere in the project.

* **processed / world** ``[..., T, J, 3]`` metres, root (``GlobalRoot``) at joint index 0.
* **metric** ``[..., T, N, 3]`` metres, ``N = J - 1``: every frame minus that frame's root, root dropped.
  All metrics are computed here.
* **input** ``[..., T, N, 3]``: metric / ``pose_box_size`` (the model's I/O space, official
  ``SkeletonRescalePose``). No clipping.

Every function accepts a ``numpy.ndarray`` or a ``torch.Tensor`` and returns the same type (dtype kept).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from skeleton_diffusion.utils.errors import InputError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = [
    "to_metric_space",
    "to_input_space",
    "input_to_metric",
    "metric_to_input",
    "add_zero_root",
]


def _check(x: ArrayT, name: str, min_joints: int) -> None:
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise InputError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[-1] != 3:
        raise InputError(f"{name}: expected shape [..., J, 3] (xyz last), got {tuple(x.shape)}")
    if x.shape[-2] < min_joints:
        raise InputError(f"{name}: expected at least {min_joints} joints on axis -2, got shape {tuple(x.shape)}")


def _check_box(pose_box_size: float) -> float:
    pose_box_size = float(pose_box_size)
    if not pose_box_size > 0:
        raise InputError(f"pose_box_size must be a positive number of metres, got {pose_box_size}")
    return pose_box_size


def to_metric_space(x_world: ArrayT) -> ArrayT:
    """World ``[..., J, 3]`` (root at index 0) -> metric ``[..., J-1, 3]``: per-frame hip-centred, root dropped."""
    _check(x_world, "to_metric_space(x_world)", 2)
    return x_world[..., 1:, :] - x_world[..., :1, :]


def to_input_space(x_world: ArrayT, pose_box_size: float) -> ArrayT:
    """World ``[..., J, 3]`` -> model input ``[..., J-1, 3]`` = metric / ``pose_box_size``."""
    box = _check_box(pose_box_size)
    return to_metric_space(x_world) / box


def input_to_metric(x: ArrayT, pose_box_size: float) -> ArrayT:
    """Model space ``[..., N, 3]`` -> metric space (metres): ``x * pose_box_size``."""
    _check(x, "input_to_metric(x)", 1)
    return x * _check_box(pose_box_size)


def metric_to_input(x: ArrayT, pose_box_size: float) -> ArrayT:
    """Metric space (metres) ``[..., N, 3]`` -> model space: ``x / pose_box_size``."""
    _check(x, "metric_to_input(x)", 1)
    return x / _check_box(pose_box_size)


def add_zero_root(x: ArrayT) -> ArrayT:
    """Metric/input ``[..., N, 3]`` -> ``[..., N+1, 3]`` with a zero root prepended (for storing / plotting)."""
    _check(x, "add_zero_root(x)", 1)
    if isinstance(x, torch.Tensor):
        return torch.cat([torch.zeros_like(x[..., :1, :]), x], dim=-2)
    return np.concatenate([np.zeros_like(x[..., :1, :]), x], axis=-2)
