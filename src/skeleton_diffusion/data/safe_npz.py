"""Reading ``.npz`` files that hold pickled Python containers (the official processed, VideoPose3D and GMM layouts:
a 0-d object array holding nested dicts of arrays) without ``np.load(allow_pickle=True)``: an allow-listed
unpickler rebuilds numpy arrays, dtypes, dicts, lists, strings and numbers, and refuses anything else (naming the
file and the class it refers to)."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError, FileAccessError

__all__ = ["read_npz_object", "read_npy_object", "read_pickle", "npz_members"]


def npz_members(path: str | Path) -> list[str]:
    """Member names (without ``.npy``) of the npz ``path``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[:-4] if n.endswith(".npy") else n for n in zf.namelist()]
    except FileNotFoundError as exc:
        raise FileAccessError.from_os_error(exc) from None
    except zipfile.BadZipFile:
        raise DataFormatError(f"{path}: not an npz file (zip archive expected)") from None


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes (array buffers): str -> bytes
}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str, encoding: str = "ASCII") -> None:
        super().__init__(fh, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise DataFormatError(f"{self._source}: the pickled data refers to '{module}.{name}', which is not "
                                  "allowed; only numpy arrays, dicts, lists, strings and numbers are read")
        if module.startswith("numpy") and module.endswith("multiarray"):
            try:
                import numpy._core.multiarray as mod  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                import numpy.core.multiarray as mod
            return getattr(mod, name)
        return super().find_class(module, name)


def read_npz_object(path: str | Path, key: str) -> object:
    """Member ``key`` of the npz ``path``: a plain array as is, a 0-d object array as its item (safe unpickling)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise FileAccessError.from_os_error(exc) from None
    except zipfile.BadZipFile:
        raise DataFormatError(f"{path}: not an npz file (zip archive expected)") from None
    with zf:
        name = f"{key}.npy"
        if name not in zf.namelist():
            raise DataFormatError(f"{path}: no member '{key}'; found {[n[:-4] for n in zf.namelist()]}")
        raw = zf.read(name)
    fh = io.BytesIO(raw)
    version = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = reader(fh)
    if not dtype.hasobject:
        return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    obj = _AllowListUnpickler(fh, f"{path}['{key}']").load()
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        return obj.item()
    return obj




def read_npy_object(path: str | Path) -> object:
    """A ``.npy`` file: a plain array as is, an object array rebuilt by the allow-listed unpickler."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileAccessError.from_os_error(exc) from None
    fh = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fh)
    except ValueError:
        raise DataFormatError(f"{path}: not a .npy file") from None
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    _shape, _fortran, dtype = reader(fh)
    if not dtype.hasobject:
        return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    return _AllowListUnpickler(fh, str(path)).load()


def read_pickle(path: str | Path, encoding: str = "latin1") -> object:
    """A pickle file of plain containers (e.g. the 3DPW sequence files, Python-2 pickles: ``encoding='latin1'``)
    through the allow-listed unpickler; anything beyond arrays, dicts, lists, strings and numbers is refused."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _AllowListUnpickler(fh, str(path), encoding=encoding).load()
    except OSError as exc:
        raise FileAccessError.from_os_error(exc) from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable pickle ({exc})") from None
