"""Supervised lifter: fully-connected residual network (Martinez et al., 2017 style).

Baseline, and the prior of DiffPose (initial 3D pose) and of DiffHPE's refiner mode.
Input: per-node condition features ``[B, N, F*5]`` (:func:`~.features.condition_features`); output:
root-relative 3D nodes ``[B, N, F*3]`` (metres).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ResidualMLPLifter"]


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class ResidualMLPLifter(nn.Module):
    """``num_nodes`` nodes, ``frames`` frames; ``hidden`` width (Martinez: 1024), ``blocks`` residual blocks (2)."""

    def __init__(self, num_nodes: int, frames: int = 1, cond_per_frame: int = 5, hidden: int = 1024,
                 blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_nodes, self.frames = int(num_nodes), int(frames)
        d_in = self.num_nodes * self.frames * int(cond_per_frame)
        self.inp = nn.Sequential(nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*[_Block(hidden, dropout) for _ in range(int(blocks))])
        self.out = nn.Linear(hidden, self.num_nodes * self.frames * 3)

    def forward(self, cond: Tensor) -> Tensor:
        """``cond [B, N, F*5]`` -> ``[B, N, F*3]``."""
        b = cond.shape[0]
        h = self.blocks(self.inp(cond.reshape(b, -1)))
        return self.out(h).reshape(b, self.num_nodes, self.frames * 3)
