"""Skeleton files (YAML / JSON) and skeletons derived from BVH, URDF and MJCF hierarchies.

File format (``.yaml``, ``.yml`` or ``.json``; the joint order is the processed arrays' order, root first)::

    name: humanoid15                      # required, used in error messages and checkpoints
    description: hand-written example     # optional
    joints:                               # required: root first, parents before children
      - {name: Pelvis}                    # root (parent omitted / null)
      - {name: LHip, parent: Pelvis}      # parent by name (or index)
      ...
    lr_pairs: [[LHip, RHip], ...]         # optional: left/right twins (share a node type)
    twin_rule: auto                       # optional: auto | lr_prefix | none (name rule for twins)
    node_types: [0, 0, 1, ...]            # optional: explicit node type per non-root joint

A compact form ``joint_names: [...]`` + ``parents: [...]`` (indices, ``-1`` for the root) is accepted too. In a
file, ``name`` may be left out: the file's stem is used (``my_rig.json`` -> ``my_rig``). A file naming a built-in skeleton
(``amass``, ``h36m``, ...) with the same joints loads the built-in (with its official tables).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from skeleton_diffusion.utils.errors import DataFormatError
from skeleton_diffusion.skeletons.definitions import SPECS
from skeleton_diffusion.skeletons.skeleton import Skeleton, builtin_skeleton

__all__ = [
    "skeleton_from_dict",
    "skeleton_to_dict",
    "load_skeleton_file",
    "save_skeleton_file",
    "skeleton_from_bvh",
    "skeleton_from_urdf",
    "skeleton_from_mjcf",
    "same_joint_order",
    "describe_mismatch",
]

SKELETON_FILE_NAME = "skeleton.json"


def skeleton_from_dict(d: Mapping[str, Any], source: str = "<dict>") -> Skeleton:
    """Build a :class:`Skeleton` from the file format above (a parsed mapping)."""
    if not isinstance(d, Mapping):
        raise DataFormatError(f"{source}: a skeleton definition must be a mapping, got {type(d).__name__}")
    if "name" not in d:
        raise DataFormatError(f"{source}: skeleton definition lacks 'name' (keys: {sorted(d)})")
    name = str(d["name"])
    if "joints" in d:
        joints = d["joints"]
        if not isinstance(joints, Sequence) or not joints:
            raise DataFormatError(f"{source}: 'joints' must be a non-empty list of {{name, parent}} entries")
        names, parents = [], []
        for k, j in enumerate(joints):
            if isinstance(j, str) and k == 0:
                j = {"name": j}
            if not isinstance(j, Mapping) or "name" not in j:
                raise DataFormatError(f"{source}: joints[{k}] must be a mapping with 'name' (and 'parent'), got {j!r}")
            if k > 0 and j.get("parent") is None:
                raise DataFormatError(f"{source}: joints[{k}] ({j['name']!r}) has no parent; only the first joint is the root")
            names.append(str(j["name"]))
            parents.append(j.get("parent"))
    elif "joint_names" in d and "parents" in d:
        names, parents = [str(n) for n in d["joint_names"]], list(d["parents"])
    else:
        raise DataFormatError(f"{source}: skeleton definition needs 'joints' (or 'joint_names' + 'parents')")
    if name.lower() in SPECS:
        builtin = builtin_skeleton(name)
        if tuple(names) != builtin.joint_names:
            raise DataFormatError(f"{source}: name {name!r} is a built-in skeleton but the joints differ; rename it")
        return builtin
    pairs = [tuple(p) for p in d.get("lr_pairs") or ()]
    for p in pairs:
        if len(p) != 2:
            raise DataFormatError(f"{source}: lr_pairs entries must be [left, right] pairs, got {list(p)}")
    try:
        return Skeleton.from_hierarchy(
            name, names, parents, lr_pairs=pairs,  # type: ignore[arg-type]
            node_types=d.get("node_types"), twin_rule=str(d.get("twin_rule", "auto")),
            description=str(d.get("description", "")), source=source,
        )
    except DataFormatError:
        raise
    except (ValueError, TypeError) as exc:
        raise DataFormatError(str(exc) if source in str(exc) else f"{source}: {exc}") from exc


def skeleton_to_dict(sk: Skeleton) -> dict[str, Any]:
    """The file format of :func:`skeleton_from_dict` (round-trips; built-ins load back as the built-in)."""
    return sk.to_dict()


def load_skeleton_file(path: str | os.PathLike) -> Skeleton:
    """Load a ``.json`` / ``.yaml`` skeleton file (errors name the file)."""
    path = Path(path)  # errors are DataFormatError (a ValueError): one paragraph in the CLIs, no traceback
    expected = "expected a JSON/YAML mapping with 'name' and 'joints' (see skeletons/io.py)"
    if not path.is_file():
        raise DataFormatError(f"skeleton file not found: '{path}'; {expected}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        detail = " ".join(str(exc).split())[:300]
        raise DataFormatError(f"{path}: not a readable skeleton file ({type(exc).__name__}: {detail}); "
                              f"{expected}") from exc
    if isinstance(d, dict) and "name" not in d:
        d = {"name": path.stem, **d}  # the file's stem names a skeleton file without 'name'
    try:
        return skeleton_from_dict(d, source=str(path))
    except DataFormatError:
        raise
    except ValueError as exc:
        raise DataFormatError(str(exc)) from exc


def save_skeleton_file(sk: Skeleton, path: str | os.PathLike) -> Path:
    """Write ``sk`` as JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
    from skeleton_diffusion.utils.io import atomic_write

    path = Path(path)
    d = skeleton_to_dict(sk)
    with atomic_write(path, "w") as fh:
        if path.suffix.lower() == ".json":
            json.dump(d, fh, indent=1)
            fh.write("\n")
        else:
            import yaml

            yaml.safe_dump(d, fh, sort_keys=False)
    return path


def same_joint_order(a: Skeleton | Sequence[str], b: Skeleton | Sequence[str]) -> bool:
    na = tuple(a.joint_names) if isinstance(a, Skeleton) else tuple(a)
    nb = tuple(b.joint_names) if isinstance(b, Skeleton) else tuple(b)
    return na == nb


def describe_mismatch(what_a: str, a: Skeleton | Sequence[str], what_b: str, b: Skeleton | Sequence[str]) -> str:
    """A message naming both skeletons and the first differing joint (for joint-order refusals)."""
    def label(x: Skeleton | Sequence[str]) -> tuple[str, tuple[str, ...]]:
        if isinstance(x, Skeleton):
            return f"'{x.name}' ({x.num_joints} joints)", tuple(x.joint_names)
        return f"({len(x)} joints)", tuple(x)

    la, na = label(a)
    lb, nb = label(b)
    first = next((i for i, (x, y) in enumerate(zip(na, nb)) if x != y), min(len(na), len(nb)))
    detail = (f"first difference at joint {first}: {na[first] if first < len(na) else '<none>'!r} vs "
              f"{nb[first] if first < len(nb) else '<none>'!r}")
    return (f"{what_a} uses skeleton {la} but {what_b} uses skeleton {lb}; {detail}. "
            f"{what_a} joints: {list(na)}; {what_b} joints: {list(nb)}")


# ----------------------------------------------------------------------------------------- derived skeletons
def _from_lists(name: str, names: Sequence[str], parents: Sequence[int], keep: Sequence[str] | None,
                source: str) -> Skeleton:
    from skeleton_diffusion.skeletons.hierarchy import subset_hierarchy

    if keep:
        kept, parents = subset_hierarchy(names, parents, keep, source)
        names = [names[i] for i in kept]
    return Skeleton.from_hierarchy(name, names, parents, source=source)


def skeleton_from_bvh(path_or_motion: Any, name: str | None = None, *, joints: Sequence[str] | None = None,
                      ) -> Skeleton:
    """The hierarchy of a BVH file (``End Site`` leaves dropped; ``joints``: optional subset, root always kept)."""
    from skeleton_diffusion.skeletons.formats.bvh import parse_bvh
    from skeleton_diffusion.skeletons.formats.bvh import native_hierarchy

    motion = path_or_motion if hasattr(path_or_motion, "joints") else parse_bvh(path_or_motion)
    names, parents, _ = native_hierarchy(motion)
    name = name or Path(str(motion.source)).stem
    return _from_lists(name, names, parents, joints, str(motion.source))


def skeleton_from_urdf(path: str | os.PathLike, name: str | None = None, *,
                       joints: Sequence[str] | None = None) -> Skeleton:
    """The link tree of a URDF file (one skeleton joint per link, root link first)."""
    from skeleton_diffusion.skeletons.formats.urdf_mjcf import parse_urdf

    h = parse_urdf(path)
    return _from_lists(name or h.name, h.names, h.parents, joints, str(path))


def skeleton_from_mjcf(path: str | os.PathLike, name: str | None = None, *,
                       joints: Sequence[str] | None = None) -> Skeleton:
    """The body tree of a MuJoCo MJCF file (one skeleton joint per ``<body>``, world body excluded)."""
    from skeleton_diffusion.skeletons.formats.urdf_mjcf import parse_mjcf

    h = parse_mjcf(path)
    return _from_lists(name or h.name, h.names, h.parents, joints, str(path))
