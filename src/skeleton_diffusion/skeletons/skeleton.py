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

from skeleton_diffusion.skeletons import hierarchy as H
from skeleton_diffusion.skeletons.definitions import ALIASES, SPECS, SkeletonSpec

SKELETON_NAMES: tuple[str, ...] = tuple(SPECS) + tuple(ALIASES)


def node_type_ids(node_names: Sequence[str]) -> tuple[int, ...]:
    """Official node types: a leading ``L``/``R`` followed by an upper-case letter is stripped, and the
    remaining names are enumerated in order of first appearance (so left/right twins share a type)."""
    return H.derive_node_types(node_names, rule="lr_prefix")


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
        return H.parents_from_limbs(self.num_joints, self.limbs)

    @cached_property
    def left_right(self) -> tuple[bool, ...]:
        """Per joint: ``False`` for left-side joints, ``True`` otherwise (plot colours only)."""
        out = []
        for n in self.joint_names:
            if self.spec.twin_rule == "lr_prefix":  # official rule of the built-in tables
                is_left = bool(re.match(r"^L[A-Z]", n)) or (
                    self.spec.left_substring is not None and self.spec.left_substring in n
                )
            else:
                is_left = H.side_of(n) == "L"
            out.append(not is_left)
        return tuple(out)

    @property
    def is_builtin(self) -> bool:
        return SPECS.get(self.name) is self.spec

    # -- construction / serialisation ---------------------------------------------------------------------
    @classmethod
    def from_hierarchy(
        cls,
        name: str,
        joint_names: Sequence[str],
        parents: Sequence[int | str | None],
        *,
        lr_pairs: Sequence[tuple[str, str]] = (),
        node_types: Sequence[int] | None = None,
        twin_rule: str = "auto",
        description: str = "",
        source: str | None = None,
    ) -> "Skeleton":
        """A skeleton from ``J`` joint names (root first) and parents (indices, names, ``-1``/``None`` for the
        root). Parents must precede children. Everything else (limbs, hip triangle, node types, chains,
        MAE angle chains, adjacency, reachability, covariance) is derived."""
        src = source or f"skeleton {name!r}"
        names = tuple(str(n) for n in joint_names)
        index = {n: i for i, n in enumerate(names)}
        par: list[int] = []
        for j, p in enumerate(parents):
            if p is None or (isinstance(p, int) and p < 0):
                par.append(-1)
            elif isinstance(p, str):
                if p not in index:
                    raise ValueError(f"{src}: joint {names[j]!r} has unknown parent {p!r}")
                par.append(index[p])
            else:
                par.append(int(p))
        H.check_hierarchy(names, par, src)
        if node_types is not None and len(node_types) != len(names) - 1:
            raise ValueError(f"{src}: node_types needs one entry per node ({len(names) - 1}), got {len(node_types)}")
        spec = SkeletonSpec(name=str(name), joint_names=names, limbs=H.limbs_from_parents(par),
                            twin_rule=twin_rule, lr_pairs=tuple(tuple(p) for p in lr_pairs),  # type: ignore[misc]
                            node_types=tuple(int(t) for t in node_types) if node_types is not None else None,
                            description=description)
        sk = cls(spec)
        sk.node_types  # noqa: B018 - validates lr_pairs early
        return sk

    def to_dict(self) -> dict:
        """Plain, JSON-able definition (``{'name', 'joints': [{'name', 'parent'}], ...}``); see ``skeletons.io``."""
        out: dict = {"name": self.name}
        if self.spec.description:
            out["description"] = self.spec.description
        out["joints"] = [{"name": n} if p < 0 else {"name": n, "parent": self.joint_names[p]}
                         for n, p in zip(self.joint_names, self.parents)]
        if self.spec.lr_pairs:
            out["lr_pairs"] = [list(p) for p in self.spec.lr_pairs]
        if self.spec.twin_rule != "auto":
            out["twin_rule"] = self.spec.twin_rule
        if self.spec.node_types is not None:
            out["node_types"] = list(self.spec.node_types)
        return out

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
        rest = tuple((p - 1, c - 1) for p, c in self.limbs if p != 0 and c != 0)
        return tuple((idx[a], idx[b]) for a, b in self.hip_triangle) + rest

    @cached_property
    def hip_triangle(self) -> tuple[tuple[str, str], ...]:
        """Node-name pairs replacing the root's limbs (official table, else all pairs of the root's children)."""
        if self.spec.hip_triangle is not None:
            return self.spec.hip_triangle
        return H.derive_hip_triangle(self.joint_names, self.parents)

    @cached_property
    def node_types(self) -> tuple[int, ...]:
        if self.spec.node_types is not None:
            return self.spec.node_types
        return H.derive_node_types(self.node_names, self.spec.lr_pairs, self.spec.twin_rule)

    @property
    def num_node_types(self) -> int:
        return max(self.node_types) + 1

    @property
    def limb_angles_idx(self) -> list[list[int]]:
        """Chains of indices into :attr:`node_limbs`; consecutive limbs of a chain form the MAE angle pairs."""
        chains = self.spec.limb_angles_idx
        if chains is None:
            chains = H.derive_limb_angles(self.parents, self.node_limbs)
        return [list(c) for c in chains]

    @property
    def kinchain(self) -> list[list[int]]:
        """Node-index chains (plotting)."""
        chains = self.spec.kinchain if self.spec.kinchain is not None else H.derive_kinchain(self.parents)
        return [list(c) for c in chains]

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


def builtin_skeleton(name: str) -> Skeleton | None:
    """The built-in skeleton ``name`` (aliases allowed; one shared instance), or None."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SPECS:
        return None
    if key not in _CACHE:
        _CACHE[key] = Skeleton(SPECS[key])
    return _CACHE[key]
