"""Processed-dataset files in the official layout.

A processed dataset is one ``data_3d_<name>.npz`` holding a single key ``positions_3d``: a *pickled* Python
dict whose leaves are float32 arrays ``[T, J, 3]`` (metres, world frame, root at joint 0). The nesting depends
on the dataset (the official scripts' layouts, which load unchanged):

* AMASS / AMASS-MANO: ``{dataset_name: {file_idx(int): [T, J, 3]}}``
* H36M: ``{subject: {action: [T, 17, 3]}}``
* FreeMan: ``{sequence_or_slice_name: [T, 18, 3]}``
* 3DPW: ``{split: {sequence: [T, 24, 3]}}``
* generic (synthetic, BVH): ``{split: {clip_name: [T, J, 3]}}`` or ``{clip_name: [T, J, 3]}``

Loading never unpickles arbitrary objects: the dict is rebuilt by an allow-listed unpickler (:mod:`.safe_npz`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from skeleton_diffusion.data.safe_npz import npz_members, read_npz_object
from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_path

__all__ = [
    "PROCESSED_KEY",
    "processed_file_name",
    "processed_path",
    "create_command",
    "missing_dataset_error",
    "load_processed",
    "load_processed_cached",
    "save_processed",
    "validate_positions",
    "iter_leaves",
    "read_joint_names",
]

PROCESSED_KEY = "positions_3d"

_FILE_NAMES = {
    "amass": "data_3d_amass.npz",
    "amass-mano": "data_3d_amass.npz",  # the official MANO variant keeps the same file name (52 joints)
    "h36m": "data_3d_h36m.npz",
    "freeman": "data_3d_freeman.npz",
    "3dpw": "data_3d_3dpw.npz",
    "synthetic": "data_3d_synthetic.npz",
}

_CREATE_COMMANDS = {
    "amass": "python -m skeleton_diffusion.apps.create_amass_dataset --if_extract_zip",
    "amass-mano": "python -m skeleton_diffusion.apps.create_amass_dataset --if_extract_zip --include_hands",
    "h36m": "python -m skeleton_diffusion.apps.create_h36m_dataset",
    "freeman": "python -m skeleton_diffusion.apps.create_freeman_dataset",
    "3dpw": "python -m skeleton_diffusion.apps.create_3dpw_dataset",
    "synthetic": "python -m skeleton_diffusion.apps.create_synthetic_dataset",
}


def processed_file_name(dataset_name: str) -> str:
    """``data_3d_<name>.npz`` (AMASS-MANO shares ``data_3d_amass.npz`` with AMASS, as officially)."""
    return _FILE_NAMES.get(dataset_name, f"data_3d_{dataset_name}.npz")


def processed_path(precomputed_folder: str | os.PathLike, dataset_name: str) -> Path:
    return Path(precomputed_folder) / processed_file_name(dataset_name)


def create_command(dataset_name: str, folder: str | os.PathLike | None = None) -> str:
    """The shell command that creates the processed files of ``dataset_name`` (``folder``: the processed folder,
    whose ``skeleton.json`` marks a dataset built on its own skeleton)."""
    if dataset_name in _CREATE_COMMANDS:
        return _CREATE_COMMANDS[dataset_name]
    if folder is not None and (Path(folder) / "skeleton.json").is_file():
        return (f"python -m skeleton_diffusion.apps.create_native_dataset --skeleton {Path(folder) / 'skeleton.json'} "
                f"--input <clips folder> --name {dataset_name}  (or create_bvh_dataset --skeleton native)")
    return f"python -m skeleton_diffusion.apps.create_bvh_dataset --input <bvh folder> --name {dataset_name}"


def missing_dataset_error(path: str | os.PathLike, dataset_name: str | None = None,
                          also_missing: list[str] | None = None) -> DatasetNotPreparedError:
    """The error for a processed file that does not exist: names ``path`` and the command that creates it.

    ``also_missing``: other files the run needs that are absent too (e.g. the test-window CSV), each with
    what provides it; they are listed after the main instruction.
    """
    path = Path(path)
    name = dataset_name or path.name.removeprefix("data_3d_").removesuffix(".npz")
    msg = (f"Processed dataset '{name}' not found: expected '{path}'. Create it with `{create_command(name, path.parent)}` "
           f"(raw data and options: README 'Data preparation', docs/data_preparation.md), or set "
           f"dataset_main_path=<folder holding processed/ and annotations/> (or the dataset's precomputed_folder) "
           f"if it is elsewhere.")
    if also_missing:
        msg += " Also missing: " + "; ".join(also_missing) + "."
    return DatasetNotPreparedError(msg)


def iter_leaves(tree: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Yield ``(key_path, leaf)`` for every non-dict value of a nested dict, in insertion order."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from iter_leaves(v, prefix + (k,))
    else:
        yield prefix, tree


def _key_str(path: tuple) -> str:
    return "positions_3d" + "".join(f"[{k!r}]" for k in path)


def validate_positions(positions_3d: Any, *, source: str = "<memory>", num_joints: int | None = None,
                       finite: bool = False) -> None:
    """Check the nested dict of ``[T, J, 3]`` arrays; raise :class:`DataFormatError` naming the bad entry.

    ``num_joints``: minimum joint count required (arrays may hold more, e.g. 3DPW's 24 > 22). ``finite``: also
    refuse NaN/inf values, naming the clip, frame, joint and coordinate (every builder writes with it).
    """
    if not isinstance(positions_3d, Mapping) or len(positions_3d) == 0:
        raise DataFormatError(
            f"{source}: key '{PROCESSED_KEY}' must hold a non-empty dict of clips, found {type(positions_3d).__name__}"
            + (" (empty)" if isinstance(positions_3d, Mapping) else "")
        )
    for path, leaf in iter_leaves(positions_3d):
        where = f"{source}: {_key_str(path)}"
        if not isinstance(leaf, np.ndarray):
            raise DataFormatError(f"{where}: expected a float array [T, J, 3], found {type(leaf).__name__}")
        if leaf.ndim != 3 or leaf.shape[-1] != 3:
            raise DataFormatError(f"{where}: expected shape [T, J, 3], found {tuple(leaf.shape)}")
        if not np.issubdtype(leaf.dtype, np.floating):
            raise DataFormatError(f"{where}: expected a float array, found dtype {leaf.dtype}")
        if num_joints is not None and leaf.shape[1] < num_joints:
            raise DataFormatError(
                f"{where}: expected at least {num_joints} joints ([T, {num_joints}, 3]), found {tuple(leaf.shape)}"
            )
        if finite:
            check_finite(leaf, where)


def check_finite(arr: np.ndarray, where: str) -> None:
    """Raise :class:`DataFormatError` at the first NaN/inf of ``arr [T, J, 3]``, naming frame, joint, coordinate."""
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = tuple(int(v) for v in bad[0])
        f, j, c = (idx + (0, 0, 0))[:3]
        raise DataFormatError(
            f"{where}: non-finite value {arr[idx]} at frame {f}, joint {j}, coordinate {'xyz'[c] if c < 3 else c} "
            f"({len(bad)} non-finite (NaN/inf) value(s) in all); positions must be finite numbers: fix or cut these frames "
            "in the source and rebuild")


def load_processed(
    path: str | os.PathLike,
    *,
    dataset_name: str | None = None,
    num_joints: int | None = None,
    validate: bool = True,
) -> dict:
    """Load ``positions_3d`` from a processed npz (official layout). Returns the nested dict of arrays.

    Raises :class:`DatasetNotPreparedError` (naming the expected path and the command that creates it) when the
    file is missing, and :class:`DataFormatError` when its content has the wrong structure.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_dataset_error(path, dataset_name)

    def bad(problem: str) -> DataFormatError:
        name = dataset_name or path.name.removeprefix("data_3d_").removesuffix(".npz")
        return DataFormatError(
            f"{path}: {problem}. Expected a processed dataset: an .npz with the single key '{PROCESSED_KEY}' "
            f"holding a dict of [T, J, 3] float arrays (metres). Rebuild it with `{create_command(name, path.parent)}` "
            f"(add --force to overwrite)."
        )

    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise bad("the file is empty (0 bytes; an interrupted build?)")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # checked first: a bare pickle is never unpickled
        raise bad("not an .npz (zip) file")
    try:
        members = npz_members(path)
    except DataFormatError as exc:  # a zip header but no readable archive (truncated, garbage)
        raise bad("not a readable processed npz, corrupt or truncated (not a complete zip archive)") from exc
    if PROCESSED_KEY not in members:
        raise bad(f"found keys {sorted(members)} instead of '{PROCESSED_KEY}'")
    try:
        raw = read_npz_object(path, PROCESSED_KEY)  # allow-listed unpickler: arrays, dicts, lists, str, numbers
    except DataFormatError as exc:  # a refused class: say which, in the processed-file paragraph
        raise bad(str(exc).removeprefix(f"{path}: ")) from exc
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise bad(f"not a readable processed npz, corrupt or truncated ({type(exc).__name__}"
                  f"{': ' + msg if msg else ''})") from exc
    if not isinstance(raw, Mapping):
        found = f"array {raw.dtype} {raw.shape}" if isinstance(raw, np.ndarray) else type(raw).__name__
        raise bad(f"'{PROCESSED_KEY}' must be a pickled dict (0-d object array), found {found}")
    positions = dict(raw)
    if validate:
        validate_positions(positions, source=str(path), num_joints=num_joints)
    return positions


_CACHE: "OrderedDict[tuple, dict]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def _freeze(tree: Any) -> None:
    for _, leaf in iter_leaves(tree):
        if isinstance(leaf, np.ndarray):
            leaf.flags.writeable = False


def load_processed_cached(path: str | os.PathLike, **kwargs: Any) -> dict:
    """:func:`load_processed` with a small in-process cache (the train/valid/test datasets of one run share it).

    The returned arrays are **read-only**: datasets copy before augmenting or adding noise, so the cached data
    can never be corrupted in place (an official bug, spec §10.3).
    """
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return load_processed(path, **kwargs)  # raises the helpful error
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            positions = _CACHE[key]
        else:
            positions = None
    if positions is None:
        positions = load_processed(path, **kwargs)
        _freeze(positions)
        with _CACHE_LOCK:
            _CACHE[key] = positions
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    elif kwargs.get("validate", True) and kwargs.get("num_joints") is not None:
        validate_positions(positions, source=str(path), num_joints=kwargs["num_joints"])
    return positions


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def save_processed(path: str | os.PathLike, positions_3d: Mapping, *, num_joints: int | None = None,
                   joint_names: "list[str] | tuple[str, ...] | None" = None) -> Path:
    """Write ``positions_3d`` atomically as ``np.savez_compressed(path, positions_3d=dict)`` (official layout).

    Arrays are stored as given (the official files are float32). ``joint_names`` (the skeleton's joint order) is
    stored as an extra string array ``joint_names`` (official loaders ignore it; see :func:`read_joint_names`).
    Returns the path written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise DataFormatError(f"processed dataset path must end with .npz, got '{path}'")
    validate_positions(positions_3d, source=str(path), num_joints=num_joints, finite=True)
    payload = dict(positions_3d)
    extra = {}
    if joint_names is not None:
        widths = {leaf.shape[1] for _, leaf in iter_leaves(positions_3d)}
        if widths != {len(joint_names)}:
            raise DataFormatError(f"{path}: {len(joint_names)} joint names but the clips have {sorted(widths)} joints")
        extra["joint_names"] = np.asarray([str(n) for n in joint_names], dtype=str)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **{PROCESSED_KEY: payload}, **extra)
    return path


def read_joint_names(path: str | os.PathLike) -> "list[str] | None":
    """The ``joint_names`` stored in a processed npz (our builders of file-defined skeletons), else ``None``."""
    with np.load(Path(path), allow_pickle=False) as npz:
        if "joint_names" not in npz.files:
            return None
        return [str(n) for n in npz["joint_names"].tolist()]


def read_processed(path: str | Path) -> dict:
    """Read the ``positions_3d`` dict of a processed npz (official or ours)."""
    members = npz_members(path)
    if "positions_3d" not in members:
        raise DataFormatError(f"{path}: expected key 'positions_3d', found {members}")
    data = read_npz_object(path, "positions_3d")  # allow-listed unpickler, never np.load(allow_pickle=True)
    if not isinstance(data, Mapping):
        raise DataFormatError(f"{path}: 'positions_3d' must hold a dict of clips, found {type(data).__name__}")
    return dict(data)
