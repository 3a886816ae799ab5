"""The :class:`Skeleton` object: joints, nodes, limbs, node types and graph matrices.

Terminology: *joints* are the ``J`` entries of the processed arrays (root first); *nodes* are the ``N = J - 1``
joints the models and metrics see (the root is dropped and every frame is centred on it). The node graph
replaces the root's limbs by a "hip triangle" so it stays connected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from .definitions import ALIASES, SPECS, SkeletonSpec

SKELETON_NAMES: tuple[str, ...] = tuple(SPECS) + tuple(ALIASES)

_LR_PREFIX = re.compile(r"^[LR](?=[A-Z])")


def node_type_ids(node_names: Sequence[str]) -> tuple[int, ...]:
    """Node-type index per node: a leading ``L``/``R`` followed by an upper-case letter is stripped, and the
    remaining names are enumerated in order of first appearance (so left/right twins share a type)."""
    seen: dict[str, int] = {}
    out = []
    for name in node_names:
        key = _LR_PREFIX.sub("", name)
        out.append(seen.setdefault(key, len(seen)))
    return tuple(out)


@dataclass(frozen=True)
class Skeleton:
    """A skeleton and everything derived from it. Build with :func:`get_skeleton`.

    Attributes:
        name: canonical skeleton name (``amass``, ``amass-mano``, ``h36m``, ``freeman``); aliases such as
            ``3dpw`` resolve to the skeleton they share.
        joint_names: ``J`` names, root (``GlobalRoot``) first — the joint order of the processed arrays.
        limbs: ``(parent, child)`` joint-index pairs in the official order.
    """

    spec: SkeletonSpec = field(repr=False)

    # -- joints -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.spec.joint_names

    @property
    def num_joints(self) -> int:
        return len(self.spec.joint_names)

    @property
    def limbs(self) -> tuple[tuple[int, int], ...]:
        return self.spec.limbs

    @cached_property
    def parents(self) -> tuple[int, ...]:
        """Parent joint index per joint (root -> -1), derived from :attr:`limbs`."""
        parents = [-1] * self.num_joints
        for p, c in self.limbs:
            parents[c] = p
        return tuple(parents)

    @cached_property
    def left_right(self) -> tuple[bool, ...]:
        """Per joint: ``False`` for left-side joints, ``True`` otherwise (plot colours only)."""
        out = []
        for n in self.joint_names:
            is_left = bool(re.match(r"^L[A-Z]", n)) or (
                self.spec.left_substring is not None and self.spec.left_substring in n
            )
            out.append(not is_left)
        return tuple(out)

    # -- nodes --------------------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return self.num_joints - 1

    @property
    def node_names(self) -> tuple[str, ...]:
        return self.spec.joint_names[1:]

    @cached_property
    def node_limbs(self) -> tuple[tuple[int, int], ...]:
        """Node-index limb pairs: the hip triangle first, then every non-root limb shifted by -1.

        This is the adjacency of the node graph and the limb list of every metric (official
        ``get_limbseq()``)."""
        idx = {n: i for i, n in enumerate(self.node_names)}
        triangle = tuple((idx[a], idx[b]) for a, b in self.spec.hip_triangle)
        rest = tuple((p - 1, c - 1) for p, c in self.limbs if p != 0 and c != 0)
        return triangle + rest

    @cached_property
    def node_types(self) -> tuple[int, ...]:
        return node_type_ids(self.node_names)

    @property
    def num_node_types(self) -> int:
        return max(self.node_types) + 1

    @property
    def limb_angles_idx(self) -> list[list[int]]:
        """Chains of indices into :attr:`node_limbs`; consecutive limbs of a chain form the MAE angle pairs."""
        return [list(c) for c in self.spec.limb_angles_idx]

    @property
    def kinchain(self) -> list[list[int]]:
        return [list(c) for c in self.spec.kinchain]

    # -- matrices -----------------------------------------------------------------------------------------
    def adjacency(self) -> np.ndarray:
        """Node adjacency ``[N, N]`` float32: symmetric 0/1, one entry per node limb, zero diagonal."""
        a = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        for i, j in self.node_limbs:
            a[i, j] = a[j, i] = 1.0
        return a

    def reachability(self, factor: float = 0.5, stop_at: str | None = "hips") -> np.ndarray:
        """Official "reachability" correlation ``[N, N]`` float32: ``factor ** (depth - 1)``, 0 if unreachable.

        ``depth(i, j)`` (computed for ``i < j`` and mirrored) is 1 for adjacent nodes; otherwise, if any
        neighbour of ``i`` is a stop node the pair is unreachable, else it is 1 + the smallest positive depth
        from a not-yet-visited neighbour. ``stop_at='hips'`` stops at nodes whose name contains "hip",
        ``'bmn'`` at "bmn", ``None`` never (then depth = shortest-path length). This reproduces the official
        rule including its asymmetry (the lower index is the start node).
        """
        if stop_at is None:
            stops: frozenset[int] = frozenset()
        elif stop_at in ("hips", "bmn"):
            key = "hip" if stop_at == "hips" else "bmn"
            stops = frozenset(k for k, n in enumerate(self.node_names) if key in n.lower())
        else:
            raise ValueError(f"reachability stop_at must be 'hips', 'bmn' or None, got {stop_at!r}")
        adj = self.adjacency() > 0
        neigh = [tuple(np.flatnonzero(adj[i])) for i in range(self.num_nodes)]

        def depth(i: int, j: int, visited: tuple[int, ...]) -> int:
            if adj[i, j]:
                return 1
            best = 0
            for k in neigh[i]:
                if k in stops:
                    return 0
                if k not in visited:
                    d = depth(k, j, visited + (k,))
                    if d > 0 and (best == 0 or d + 1 < best):
                        best = d + 1
            return best

        r = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        for i in range(self.num_nodes):
            for j in range(i + 1, self.num_nodes):
                d = depth(i, j, ())
                if d > 0:
                    r[i, j] = r[j, i] = factor ** (d - 1)
        return r

    def correlation(self, kind: str = "adjacency", **kwargs) -> np.ndarray:
        """``'adjacency'`` or ``'reachability'`` (kwargs: ``factor``, ``stop_at``): the diffusion correlation."""
        if kind == "adjacency":
            return self.adjacency()
        if kind == "reachability":
            return self.reachability(**kwargs)
        raise ValueError(f"covariance_matrix_type must be 'adjacency' or 'reachability', got {kind!r}")

    def __repr__(self) -> str:
        return f"Skeleton({self.name!r}, joints={self.num_joints}, nodes={self.num_nodes}, types={self.num_node_types})"


_CACHE: dict[str, Skeleton] = {}


def get_skeleton(name: str) -> Skeleton:
    """Return the skeleton for a dataset/skeleton name (``amass``, ``amass-mano``, ``h36m``, ``freeman``,
    ``3dpw``, ``synthetic``). Raises ``ValueError`` listing the valid names otherwise."""
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in SPECS:
        raise ValueError(f"Unknown skeleton {name!r}; expected one of {', '.join(SKELETON_NAMES)}")
    if key not in _CACHE:
        _CACHE[key] = Skeleton(SPECS[key])
    return _CACHE[key]
