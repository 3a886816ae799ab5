"""User-facing exceptions: each message names the thing at fault and how to fix it."""

from __future__ import annotations


class SkeletonDiffusionError(Exception):
    """Base class for errors that are shown to users as a one-paragraph message (no traceback needed)."""


class ConfigError(SkeletonDiffusionError, ValueError):
    """A configuration value or combination is invalid."""


class DatasetNotPreparedError(SkeletonDiffusionError, FileNotFoundError):
    """A processed dataset file is missing; the message names the path and the command that creates it."""


class DataFormatError(SkeletonDiffusionError, ValueError):
    """A file or array has the wrong structure (key, shape, dtype); the message names file, found and expected."""


class CheckpointError(SkeletonDiffusionError, ValueError):
    """A checkpoint is missing, corrupt, unsafe, or of the wrong stage / skeleton."""


class InputError(SkeletonDiffusionError, ValueError):
    """User-provided motion has the wrong joint count, length, units or contains NaNs."""


class FileAccessError(SkeletonDiffusionError, OSError):
    """A named file cannot be read or written (missing, permission denied, a folder where a file was expected)."""

    @classmethod
    def from_os_error(cls, exc: OSError) -> "FileAccessError":
        """``cannot access '<file>': <reason>`` from an ``OSError`` that carries a ``filename``."""
        target = f" -> '{exc.filename2}'" if getattr(exc, "filename2", None) else ""
        return cls(f"cannot access '{exc.filename}'{target}: {exc.strerror or exc} ({type(exc).__name__}); "
                   "check the path and its permissions")
