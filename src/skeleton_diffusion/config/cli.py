"""Shared behaviour of the command-line entry points: user errors become one clear paragraph, not a traceback."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import Any, Callable, Sequence

from skeleton_diffusion.utils.errors import FileAccessError, SkeletonDiffusionError


def format_user_error(exc: BaseException) -> str:
    """One readable paragraph: the error kind and its message, wrapped at 100 columns."""
    kind = type(exc).__name__
    body = textwrap.fill(str(exc), width=100, break_long_words=False, break_on_hyphens=False)
    return f"\nerror ({kind}):\n{textwrap.indent(body, '  ')}\n"


def run_cli(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a :class:`SkeletonDiffusionError` is printed as a paragraph and exits with status 2, and so is
    an ``OSError`` that names a file (missing, unreadable, unwritable, a folder where a file was expected).

    Set ``SKELETON_DIFFUSION_TRACEBACK=1`` to see the full traceback instead.
    """
    try:
        return fn(*args, **kwargs)
    except SkeletonDiffusionError as exc:
        if os.environ.get("SKELETON_DIFFUSION_TRACEBACK"):
            raise
        sys.stderr.write(format_user_error(exc))
        sys.stderr.flush()
        raise SystemExit(2) from None
    except OSError as exc:  # a file the user named that cannot be read or written (missing, permission, a folder)
        if os.environ.get("SKELETON_DIFFUSION_TRACEBACK") or not exc.filename:
            raise
        sys.stderr.write(format_user_error(FileAccessError.from_os_error(exc)))
        sys.stderr.flush()
        raise SystemExit(2) from None



def run_config_cli(argv: Sequence[str] | None, config_name: str, doc: str | None,
                   run: Callable[[list[str]], Any]) -> Any:
    """``main`` of a ``key=value`` CLI (``predict``, ``edit``): ``-h``/``--help`` prints ``doc`` and the defaults of
    ``configs/<config_name>.yaml``; otherwise INFO logging and ``run(argv)`` under :func:`run_cli`."""
    import logging

    from skeleton_diffusion.config import CONFIG_DIR

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(doc)
        print((CONFIG_DIR / f"{config_name}.yaml").read_text())
        return None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return run_cli(run, args)
