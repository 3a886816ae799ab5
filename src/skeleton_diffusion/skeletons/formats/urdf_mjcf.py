"""Kinematic trees of URDF and MuJoCo MJCF files (stdlib XML), for skeletons and forward kinematics.

* URDF: one skeleton joint per ``<link>``; a ``<joint>`` connects ``<parent link>`` -> ``<child link>`` and its
  ``<origin xyz rpy>`` places the child's frame in the parent's frame. The root link is the one that is never a
  child. Joint types and axes are kept (``revolute``/``continuous``/``prismatic`` axis, ``spherical``, ``fixed``).
* MJCF: one skeleton joint per ``<body>`` under ``<worldbody>`` (the world body itself excluded); ``pos`` places a
  body in its parent (``quat`` / ``euler`` not needed for the hierarchy). Several top-level bodies: the first is
  used.

Order: depth-first, parents before children, children in file order.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError

__all__ = ["Hierarchy", "parse_urdf", "parse_mjcf"]


@dataclass
class Hierarchy:
    """``names[j]``, ``parents[j]`` (-1 root), ``offsets[j]`` (file units, in the parent's frame), plus per joint
    ``rpy`` (URDF origin rotation, radians), ``joint_type`` and ``axis``."""

    name: str
    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    rpy: np.ndarray
    joint_type: list[str] = field(default_factory=list)
    axis: np.ndarray | None = None


def _floats(text: str | None, n: int, default: float, where: str) -> np.ndarray:
    if text is None:
        return np.full(n, default, dtype=np.float64)
    try:
        vals = np.array([float(t) for t in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise DataFormatError(f"{where}: expected {n} numbers, found {text!r}") from exc
    if vals.shape != (n,):
        raise DataFormatError(f"{where}: expected {n} numbers, found {text!r}")
    return vals


def _read_xml(path: str | os.PathLike) -> ET.Element:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"file not found: '{path}'")
    try:
        return ET.fromstring(path.read_bytes().replace(b"\x00", b""))
    except ET.ParseError as exc:
        raise DataFormatError(f"{path}: not valid XML ({exc})") from exc


def _dfs_order(root: str, children: dict[str, list[str]]) -> list[str]:
    order, stack = [], [root]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(reversed(children.get(n, [])))
    return order


def parse_urdf(path: str | os.PathLike) -> Hierarchy:
    """The link tree of a URDF file (see module doc)."""
    xml = _read_xml(path)
    if xml.tag != "robot":
        raise DataFormatError(f"{path}: root element must be <robot>, found <{xml.tag}>")
    links = [ln.get("name") for ln in xml.findall("link")]
    if not links or any(n is None for n in links):
        raise DataFormatError(f"{path}: no named <link> elements")
    children: dict[str, list[str]] = {}
    info: dict[str, tuple[str, np.ndarray, np.ndarray, str, np.ndarray]] = {}
    for j in xml.findall("joint"):
        jn = j.get("name", "?")
        par, ch = j.find("parent"), j.find("child")
        if par is None or ch is None or par.get("link") not in links or ch.get("link") not in links:
            raise DataFormatError(f"{path}: joint {jn!r} must name an existing <parent link> and <child link>")
        origin = j.find("origin")
        where = f"{path}: joint {jn!r} origin"
        xyz = _floats(origin.get("xyz") if origin is not None else None, 3, 0.0, where)
        rpy = _floats(origin.get("rpy") if origin is not None else None, 3, 0.0, where)
        ax = j.find("axis")
        axis = _floats(ax.get("xyz") if ax is not None else None, 3, 0.0, f"{path}: joint {jn!r} axis")
        child = str(ch.get("link"))
        if child in info:
            raise DataFormatError(f"{path}: link {child!r} is the child of two joints")
        info[child] = (str(par.get("link")), xyz, rpy, j.get("type", "fixed"), axis)
        children.setdefault(str(par.get("link")), []).append(child)
    roots = [n for n in links if n not in info]
    if len(roots) != 1:
        raise DataFormatError(f"{path}: expected one root link (never a child), found {roots}")
    order = _dfs_order(roots[0], children)
    index = {n: i for i, n in enumerate(order)}
    parents = [index[info[n][0]] if n in info else -1 for n in order]
    offsets = np.stack([info[n][1] if n in info else np.zeros(3) for n in order])
    rpys = np.stack([info[n][2] if n in info else np.zeros(3) for n in order])
    types = [info[n][3] if n in info else "root" for n in order]
    axes = np.stack([info[n][4] if n in info else np.zeros(3) for n in order])
    return Hierarchy(xml.get("name") or Path(path).stem, order, parents, offsets, rpys, types, axes)


def parse_mjcf(path: str | os.PathLike) -> Hierarchy:
    """The body tree of a MuJoCo MJCF file (see module doc)."""
    xml = _read_xml(path)
    if xml.tag != "mujoco":
        raise DataFormatError(f"{path}: root element must be <mujoco>, found <{xml.tag}>")
    world = xml.find("worldbody")
    tops = world.findall("body") if world is not None else []
    if not tops:
        raise DataFormatError(f"{path}: <worldbody> holds no <body>")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    types: list[str] = []

    def visit(body: ET.Element, parent: int) -> None:
        k = len(names)
        name = body.get("name") or f"body{k}"
        if name in names:
            raise DataFormatError(f"{path}: duplicate body name {name!r}")
        names.append(name)
        parents.append(parent)
        offsets.append(_floats(body.get("pos"), 3, 0.0, f"{path}: body {name!r} pos"))
        types.append(",".join(j.get("type", "hinge") for j in body.findall("joint")) or "fixed")
        for child in body.findall("body"):
            visit(child, k)

    visit(tops[0], -1)
    return Hierarchy(xml.get("model") or Path(path).stem, names, parents, np.stack(offsets),
                     np.zeros((len(names), 3)), types, None)
