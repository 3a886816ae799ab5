"""Atomic writes and safe loading.

Everything the project writes that a user would hate to lose (checkpoints, processed datasets, side files)
goes through :func:`atomic_write` / :func:`atomic_torch_save`: data is written to a temporary file in the
same folder, flushed and fsynced, then renamed over the target, so an interrupted process never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import torch

from skeleton_diffusion.utils.errors import CheckpointError


def _chmod_default(fd: int) -> None:
    """Give a mkstemp file (0600) the permissions a normal ``open()`` would: 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success fsync and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _chmod_default(fd)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) that is renamed to ``path`` on success.

    For libraries that insist on writing to a file name themselves (``np.savez_compressed``, ``imageio``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    _chmod_default(fd)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partial file under ``path``."""
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code execution).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated/corrupt, or contains
    Python objects that the safe unpickler refuses (e.g. a pickled class instance).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: '{path}'. Check the path (or the run folder's checkpoints/).")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            # PyTorch's own advice (pass weights_only=False) is not repeated: never safe for a file of unknown origin
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
            what = f"a pickled {found.group(1)}" if found else "pickled Python objects"
            raise CheckpointError(
                f"Refusing to load '{path}': it contains {what}, not only plain tensors/containers. Only "
                "checkpoints that load with torch.load(weights_only=True) are accepted; "
                "convert official checkpoints with `python -m skeleton_diffusion.apps.convert --method skeleton_diffusion`."
            ) from exc
        raise CheckpointError(
            f"Could not read checkpoint '{path}': {msg}. The file is corrupt or truncated; "
            "use an earlier checkpoint from the same run folder."
        ) from exc
