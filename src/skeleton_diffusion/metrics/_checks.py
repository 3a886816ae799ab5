"""Shape checks shared by the metric functions (clear errors instead of broadcasting surprises)."""

from __future__ import annotations

from typing import Sequence

import torch

from skeleton_diffusion.utils.errors import InputError


def check_pred(pred: torch.Tensor, name: str = "pred") -> None:
    """``pred`` must be ``[B, S, T, N, 3]``."""
    if not isinstance(pred, torch.Tensor) or pred.dim() != 5 or pred.shape[-1] != 3:
        shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise InputError(f"{name} must be a tensor [B, S, T, N, 3] (metres, metric space); got {shape}.")


def check_target(target: torch.Tensor, pred: torch.Tensor | None = None, name: str = "target") -> None:
    """``target`` must be ``[B, T, N, 3]`` and agree with ``pred`` ``[B, S, T, N, 3]`` when given."""
    if not isinstance(target, torch.Tensor) or target.dim() != 4 or target.shape[-1] != 3:
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise InputError(f"{name} must be a tensor [B, T, N, 3] (metres, metric space); got {shape}.")
    if pred is not None and (pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[1:]):
        raise InputError(
            f"{name} {tuple(target.shape)} does not match pred {tuple(pred.shape)}: expected "
            f"[B, T, N, 3] = [{pred.shape[0]}, {pred.shape[2]}, {pred.shape[3]}, 3]."
        )


def check_limbs(limbs: Sequence[Sequence[int]] | torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Return limbs as a LongTensor ``[L, 2]`` with every index in ``[0, num_nodes)``."""
    lt = torch.as_tensor(limbs, dtype=torch.long)
    if lt.dim() != 2 or lt.shape[1] != 2 or lt.shape[0] == 0:
        raise InputError(f"limbs must be a non-empty list of (a, b) node-index pairs; got shape {tuple(lt.shape)}.")
    if int(lt.min()) < 0 or int(lt.max()) >= num_nodes:
        raise InputError(
            f"limb node indices must lie in [0, {num_nodes}) (root dropped); got range "
            f"[{int(lt.min())}, {int(lt.max())}]. Use skeleton.node_limbs, not joint-indexed limbs."
        )
    return lt
