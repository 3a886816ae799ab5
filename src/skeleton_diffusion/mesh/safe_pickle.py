"""Allow-listed unpickling of the two pickled file kinds the mesh tools read.

* SMPL model ``.pkl`` files (Python-2 pickles of numpy arrays, a ``scipy.sparse`` joint regressor and, in the
  original release, ``chumpy`` arrays): numpy arrays are rebuilt, sparse matrices and chumpy arrays become plain
  numpy arrays, and nothing else is constructed. Neither scipy nor chumpy is imported.
* ``results.npy`` of MDM / CrossDiff (``numpy.save`` of a Python dict: a 0-d object array): the dict of arrays,
  strings and numbers is rebuilt the same way; ``numpy.load(allow_pickle=True)`` is never called.

Any other class in the stream raises :class:`~skeleton_diffusion.utils.errors.DataFormatError` naming it.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError

__all__ = ["safe_load_pickle", "load_npy_object", "to_plain"]


class _Captured:
    """Stand-in for an allow-listed foreign class: keeps the pickled state, converted by :func:`to_plain`."""

    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyArray(_Captured):
    """A ``chumpy.ch.Ch`` array: its value is the ``x`` entry of the state."""


class _SparseMatrix(_Captured):
    """A ``scipy.sparse`` matrix of format ``fmt_name`` (csc, csr or coo)."""

    fmt_name = "csc"


def _sparse(fmt: str) -> type:
    return type(f"_Sparse_{fmt}", (_SparseMatrix,), {"fmt_name": fmt})


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` restricted to the stand-in classes above."""
    if not (isinstance(cls, type) and issubclass(cls, _Captured)):
        raise pickle.UnpicklingError(f"refusing to rebuild {cls!r}")
    return cls.__new__(cls)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (a str and the latin-1 codec only)."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as str -> latin-1 bytes")
    return text.encode("latin-1")


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    return _reconstruct, scalar


_RECONSTRUCT, _SCALAR = _numpy_reconstruct()
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("builtins", "object"): object,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "object"): object,
    ("chumpy.ch", "Ch"): _ChumpyArray,
    ("chumpy", "Ch"): _ChumpyArray,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _RECONSTRUCT
    _ALLOWED[(_mod, "scalar")] = _SCALAR
for _fmt in ("csc", "csr", "coo"):
    _cls = _sparse(_fmt)
    for _mod in (f"scipy.sparse.{_fmt}", f"scipy.sparse._{_fmt}", "scipy.sparse"):
        _ALLOWED[(_mod, f"{_fmt}_matrix")] = _cls
        _ALLOWED[(_mod, f"{_fmt}_array")] = _cls
for _name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bool",
              "slice"):
    for _mod in ("builtins", "__builtin__"):
        _ALLOWED[(_mod, _name)] = getattr(__import__("builtins"), _name)


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"class {module}.{name} is not on the allow-list")
        return found


def _sparse_to_dense(obj: _SparseMatrix) -> np.ndarray:
    st = obj.state if isinstance(obj.state, dict) else {}
    shape = tuple(int(s) for s in (st.get("_shape") or st.get("shape") or ()))
    fmt = getattr(obj, "fmt_name", "csc")
    if len(shape) != 2:
        raise pickle.UnpicklingError("sparse matrix without a 2-D shape")
    dense = np.zeros(shape, dtype=np.float64)
    data = np.asarray(to_plain(st.get("data")), dtype=np.float64)
    if fmt == "coo":
        rows, cols = np.asarray(to_plain(st.get("row"))), np.asarray(to_plain(st.get("col")))
        np.add.at(dense, (rows, cols), data)
        return dense
    indices = np.asarray(to_plain(st.get("indices")), dtype=np.int64)
    indptr = np.asarray(to_plain(st.get("indptr")), dtype=np.int64)
    outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    if fmt == "csc":
        np.add.at(dense, (indices, outer), data)
    else:
        np.add.at(dense, (outer, indices), data)
    return dense


def to_plain(obj: Any) -> Any:
    """Replace the stand-ins (chumpy arrays, sparse matrices) by numpy arrays, recursively through containers."""
    if isinstance(obj, _SparseMatrix):
        return _sparse_to_dense(obj)
    if isinstance(obj, _ChumpyArray):
        st = obj.state
        if isinstance(st, dict) and "x" in st:
            return np.asarray(to_plain(st["x"]))
        raise pickle.UnpicklingError("a chumpy array without its value ('x')")
    if isinstance(obj, _Captured):
        raise pickle.UnpicklingError("an object of an unsupported class")
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        flat = [to_plain(v) for v in obj.reshape(-1)]
        out = np.empty(obj.shape, dtype=object)
        for i, v in enumerate(flat):
            out.reshape(-1)[i] = v
        return out
    return obj


def safe_load_pickle(fh: BinaryIO, *, what: str | Path) -> Any:
    """Unpickle ``fh`` with the allow-list (latin-1 for Python-2 pickles) and convert stand-ins to numpy."""
    try:
        return to_plain(_AllowListUnpickler(fh, encoding="latin1").load())
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, IndexError) as exc:
        raise DataFormatError(
            f"'{what}' cannot be read safely: {exc}. Only pickles of numpy arrays, scipy sparse matrices, chumpy "
            "arrays and plain dicts/lists/strings/numbers are accepted (nothing else is ever unpickled)") from None


def load_npy_object(path: str | Path, fh: BinaryIO | None = None) -> Any:
    """Contents of an ``.npy`` file (or of the open stream ``fh``, named ``path`` in errors): a plain array, or the
    Python object of a 0-d object array (e.g. MDM's ``results.npy`` dict), rebuilt with :func:`safe_load_pickle`
    instead of ``allow_pickle=True``."""
    path = Path(path)
    with (open(path, "rb") if fh is None else contextlib.nullcontext(fh)) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise DataFormatError(f"'{path}' is not a valid .npy file ({exc})") from None
        if not dtype.hasobject:
            fh.seek(0)
            return np.load(io.BytesIO(fh.read()), allow_pickle=False)
        arr = safe_load_pickle(fh, what=path)
    if isinstance(arr, np.ndarray) and arr.dtype == object and arr.shape == ():
        return arr.item()
    return arr
