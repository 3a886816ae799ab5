"""Build Human3.6M from the ``D3_Positions`` CDF files.

``python -m skeleton_diffusion.apps.create_h36m_dataset [--subjects S1 S5 ...] [--no-strict] [--data-root datasets]``

Reads ``<root>/raw/Human36M/<S>/MyPoseFeatures/D3_Positions/*.cdf``; writes
``<root>/processed/Human36M/hmp/{data_3d_h36m.npz, mean_motion_test.txt, mmgt_test.txt}``.
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.common import setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.h36m import SUBJECTS, build_h36m

    parser = argparse.ArgumentParser(description="Human3.6M: raw CDF -> processed dataset")
    parser.add_argument("--subjects", nargs="+", default=SUBJECTS, help="subjects (default: %(default)s)")
    parser.add_argument("--no-strict", action="store_true", help="allow subjects with fewer than 30 CDF files")
    parser.add_argument("-gpu", "--gpu", action="store_true", help="accepted for compatibility (no effect)")
    parser.add_argument("--data-root", default="datasets", help="datasets folder (default %(default)s)")
    parser.add_argument("--no-side-files", action="store_true", help="skip mean_motion_test.txt / mmgt_test.txt")
    parser.add_argument("--force", action="store_true", help="rebuild the npz and side files even if present")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    setup_cli_logging()
    summary = run_cli(build_h36m, args.data_root, subjects=args.subjects, strict=not args.no_strict,
                         side_files=not args.no_side_files, force=args.force, progress=not args.quiet)
    print(summary.format())
    return 0 if summary.csv_ok else 2


if __name__ == "__main__":
    sys.exit(main())
