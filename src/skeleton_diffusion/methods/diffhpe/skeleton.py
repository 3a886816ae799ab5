"""DiffHPE's 17-joint Human3.6M skeleton (VideoPose3D joint order) and its graph.

The official ``Human36mDataset`` (n_joints=17) removes the static joints, which computes the bones, and only
*then* rewires both shoulders (11, 14) from the spine (7) to the thorax (8). Consequently:

* ``parents`` (rewired, shoulders -> 8) builds the GCN adjacency;
* ``bones`` (not rewired, shoulders -> 7) feeds the regularisers and the seg-std / symmetry metrics.

``official_bones(rewired=False)`` reproduces that defect; ``rewired=True`` gives the anatomically consistent bones.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "H36M17_JOINTS_GROUP",
    "H36M17_JOINTS_LEFT",
    "H36M17_JOINTS_RIGHT",
    "H36M17_PARENTS",
    "H36M17_PARENTS_BEFORE_REWIRING",
    "adjacency_from_parents",
    "group_orders",
    "official_bone_sides",
    "official_bones",
]

H36M17_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M17_PARENTS_BEFORE_REWIRING: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 7, 11, 12, 7, 14, 15)
H36M17_JOINTS_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
H36M17_JOINTS_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
H36M17_JOINTS_GROUP: tuple[tuple[int, ...], ...] = (
    (2, 3), (5, 6), (1, 4), (0, 7), (8, 9, 10), (15, 16), (12, 13), (11, 14))


def official_bones(rewired: bool = False) -> tuple[tuple[int, int], ...]:
    """``(joint, parent)`` bones as DiffHPE's ``skeleton.bones()``; ``rewired=False`` = official (shoulders on 7)."""
    parents = H36M17_PARENTS if rewired else H36M17_PARENTS_BEFORE_REWIRING
    return tuple((j, p) for j, p in enumerate(parents) if p >= 0)


def official_bone_sides(rewired: bool = False) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Indices into :func:`official_bones` of the left and right bones (``bones_left()``, ``bones_right()``)."""
    bones = official_bones(rewired)
    index = {j: i for i, (j, _) in enumerate(bones)}
    return tuple(index[j] for j in H36M17_JOINTS_LEFT), tuple(index[j] for j in H36M17_JOINTS_RIGHT)


def adjacency_from_parents(parents: Sequence[int]) -> Tensor:
    """Row-normalised ``A + I`` ``[J, J]`` float32 of the undirected parent graph (``adj_mx_from_skeleton``)."""
    n = len(parents)
    a = np.zeros((n, n), dtype=np.float64)
    for j, p in enumerate(parents):
        if p >= 0:
            a[j, p] = a[p, j] = 1.0
    a = a + np.eye(n)
    a = a / a.sum(axis=1, keepdims=True)
    return torch.tensor(a.astype(np.float32))


def group_orders(groups: Sequence[Sequence[int]]) -> tuple[list[int], list[int], int]:
    """``(grouped_order, restored_order, group_size)`` of the non-local blocks (group size = first group's)."""
    grouped = list(reduce(lambda x, y: list(x) + list(y), groups, []))
    restored = [grouped.index(i) for i in range(len(grouped))]
    return grouped, restored, len(groups[0])
