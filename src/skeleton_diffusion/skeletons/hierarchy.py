"""Everything a skeleton needs, derived from a joint hierarchy (pure functions).

Input: ``J`` joint names (root first, parents before children) and ``parents`` (``-1`` for the root).
Derived: limbs, the hip triangle (pairs of the root's children, which replace the root's limbs in the node
graph), node types (left/right twins share a type), kinematic chains (plotting) and limb-angle chains (MAE).
The built-in skeletons keep their official tables where these differ in *order* only (see ``definitions.py``).
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = [
    "limbs_from_parents",
    "parents_from_limbs",
    "check_hierarchy",
    "twin_key",
    "side_of",
    "derive_hip_triangle",
    "derive_node_types",
    "derive_kinchain",
    "derive_limb_angles",
    "subset_hierarchy",
]

# Side markers, tried in order; each removes the side from the name to give the "twin key".
_SIDE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(Left|Right)(?=[A-Z_\d])"), "word"),       # LeftUpLeg / RightUpLeg (CMU, LAFAN1, Mixamo)
    (re.compile(r"^(left|right)(?=[_\s\-.]|[A-Z])"), "word"),   # left_hip / right_hip (SMPL, DeepMimic)
    (re.compile(r"^(L|R)(?=[A-Z])"), "letter"),                 # LHip / RHip (AMASS-22, H36M)
    (re.compile(r"^(L|R|l|r)(?=[_.\-])"), "letter"),           # L_Hip / r.hip
    (re.compile(r"(?<=[_.\-\s])(L|R|l|r|left|right|Left|Right)$"), "suffix"),  # hip_l / Hip.R / knee_left
)


def _side_match(name: str) -> tuple[re.Match[str], str] | None:
    for pat, _ in _SIDE_PATTERNS:
        m = pat.search(name)
        if m:
            return m, m.group(1)
    return None


def side_of(name: str) -> str | None:
    """``'L'``, ``'R'`` or ``None`` from a joint name (``LHip``, ``LeftArm``, ``left_hip``, ``hip_l``, ``Hip.R``)."""
    found = _side_match(name)
    if found is None:
        return None
    return "L" if found[1][0] in "Ll" else "R"


def twin_key(name: str) -> str:
    """The name with its side marker removed (``LeftUpLeg`` -> ``UpLeg``); unchanged for centre joints."""
    found = _side_match(name)
    if found is None:
        return name
    m = found[0]
    return (name[: m.start()] + "\0" + name[m.end():]).lower()


_LEGACY_LR = re.compile(r"^[LR](?=[A-Z])")


def derive_node_types(
    node_names: Sequence[str],
    lr_pairs: Sequence[tuple[str, str]] | None = None,
    rule: str = "auto",
) -> tuple[int, ...]:
    """Node-type index per node, enumerated in order of first appearance; left/right twins share a type.

    ``rule='auto'`` pairs names by :func:`twin_key` (only when both sides exist); ``'lr_prefix'`` is the official
    rule (strip a leading ``L``/``R`` before an upper-case letter, nothing else); ``'none'`` gives every node its
    own type. ``lr_pairs`` (names) are always twins, whatever the rule.
    """
    if rule not in ("auto", "lr_prefix", "none"):
        raise ValueError(f"node-type rule must be 'auto', 'lr_prefix' or 'none', got {rule!r}")
    keys: list[str] = []
    for n in node_names:
        if rule == "lr_prefix":
            keys.append(_LEGACY_LR.sub("", n))
        elif rule == "auto":
            keys.append(twin_key(n))
        else:
            keys.append(n)
    if rule == "auto":  # a side-stripped key only counts when its twin exists (else keep the full name)
        counts: dict[str, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        keys = [k if counts[k] > 1 else n for k, n in zip(keys, node_names)]
    index = {n: i for i, n in enumerate(node_names)}
    for a, b in lr_pairs or ():
        for x in (a, b):
            if x not in index:
                raise ValueError(f"lr_pairs names joint {x!r}, which is not a node; nodes: {list(node_names)}")
        keys[index[b]] = keys[index[a]]
    seen: dict[str, int] = {}
    return tuple(seen.setdefault(k, len(seen)) for k in keys)


def check_hierarchy(joint_names: Sequence[str], parents: Sequence[int], source: str = "skeleton") -> None:
    """Raise ``ValueError`` unless names are unique, joint 0 is the only root and parents precede children."""
    if len(joint_names) != len(parents):
        raise ValueError(f"{source}: {len(joint_names)} joint names but {len(parents)} parents")
    if len(joint_names) < 3:
        raise ValueError(f"{source}: a skeleton needs at least 3 joints (root + 2 nodes), got {len(joint_names)}")
    dup = sorted({n for n in joint_names if list(joint_names).count(n) > 1})
    if dup:
        raise ValueError(f"{source}: duplicate joint names {dup}")
    if parents[0] != -1:
        raise ValueError(f"{source}: joint 0 ({joint_names[0]!r}) must be the root (parent -1), got parent {parents[0]}")
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(
                f"{source}: joint {j} ({joint_names[j]!r}) has parent {parents[j]}; parents must come before their "
                "children and only joint 0 may be a root"
            )


def limbs_from_parents(parents: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """``(parent, child)`` joint pairs in child order."""
    return tuple((int(p), c) for c, p in enumerate(parents) if p >= 0)


def parents_from_limbs(num_joints: int, limbs: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    parents = [-1] * num_joints
    for p, c in limbs:
        parents[c] = p
    return tuple(parents)


def derive_hip_triangle(joint_names: Sequence[str], parents: Sequence[int]) -> tuple[tuple[str, str], ...]:
    """All pairs of the root's children (3 children -> a triangle), which keep the node graph connected."""
    kids = [joint_names[c] for c, p in enumerate(parents) if p == 0]
    return tuple((kids[i], kids[k]) for i in range(len(kids)) for k in range(i + 1, len(kids)))


def _node_children(parents: Sequence[int]) -> list[list[int]]:
    """Children per node (node index = joint index - 1); the root's children are chain starts."""
    n = len(parents) - 1
    kids: list[list[int]] = [[] for _ in range(n)]
    for c in range(1, len(parents)):
        p = parents[c]
        if p >= 1:
            kids[p - 1].append(c - 1)
    return kids


def derive_kinchain(parents: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Node-index chains covering every bone: from each root child down its first child; branches start new
    chains at the branching node."""
    kids = _node_children(parents)
    starts = [c - 1 for c in range(1, len(parents)) if parents[c] == 0]
    chains: list[tuple[int, ...]] = []
    todo = [(s, None) for s in starts]
    while todo:
        node, from_node = todo.pop(0)
        chain = [from_node, node] if from_node is not None else [node]
        while kids[node]:
            first, *others = kids[node]
            todo.extend((o, node) for o in others)
            chain.append(first)
            node = first
        chains.append(tuple(chain))
    return tuple(chains)


def derive_limb_angles(
    parents: Sequence[int], node_limbs: Sequence[tuple[int, int]]
) -> tuple[tuple[int, ...], ...]:
    """Chains of indices into ``node_limbs`` such that consecutive entries are a bone and its child bone (MAE
    measures the angle between them). One chain per kinematic chain with at least two bones."""
    index = {tuple(l): i for i, l in enumerate(node_limbs)}
    out = []
    for chain in derive_kinchain(parents):
        limbs = [index[(a, b)] for a, b in zip(chain[:-1], chain[1:]) if (a, b) in index]
        if len(limbs) >= 2:
            out.append(tuple(limbs))
    return tuple(out)


def subset_hierarchy(
    joint_names: Sequence[str], parents: Sequence[int], keep: Sequence[str], source: str = "skeleton"
) -> tuple[list[int], list[int]]:
    """Keep the joints named in ``keep`` (plus the root): ``(kept joint indices in original order, new parents)``;
    a kept joint's parent is its nearest kept ancestor."""
    index = {n: i for i, n in enumerate(joint_names)}
    missing = [k for k in keep if k not in index]
    if missing:
        raise ValueError(f"{source}: joint subset names unknown joints {missing}; joints: {list(joint_names)}")
    wanted = {index[k] for k in keep} | {0}
    kept = sorted(wanted)
    new_index = {j: i for i, j in enumerate(kept)}
    new_parents = []
    for j in kept:
        p = parents[j]
        while p >= 0 and p not in wanted:
            p = parents[p]
        new_parents.append(new_index[p] if p >= 0 else -1)
    return kept, new_parents
