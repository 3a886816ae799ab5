"""Build FreeMan from its ``keypoints3d`` npy files.

``python -m skeleton_diffusion.apps.create_freeman_dataset [--data-root datasets]``

Reads ``<root>/raw/FreeMan/{keypoints3d/*.npy, ignore_list.txt}`` and the shipped annotation files in
``<root>/annotations/FreeMan/hmp/``; writes ``<root>/processed/FreeMan/hmp/{data_3d_freeman.npz, ...}``.
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.common import setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.freeman import build_freeman

    parser = argparse.ArgumentParser(description="FreeMan: raw keypoints -> processed dataset")
    parser.add_argument("-gpu", "--gpu", action="store_true", help="accepted for compatibility (no effect)")
    parser.add_argument("--data-root", default="datasets", help="datasets folder (default %(default)s)")
    parser.add_argument("--no-side-files", action="store_true", help="skip mean_motion_test.txt / mmgt_test.txt")
    parser.add_argument("--force", action="store_true", help="rebuild the npz and side files even if present")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    setup_cli_logging()
    summary = run_cli(build_freeman, args.data_root, side_files=not args.no_side_files, force=args.force,
                            progress=not args.quiet)
    print(summary.format())
    return 0 if summary.csv_ok else 2


if __name__ == "__main__":
    sys.exit(main())
