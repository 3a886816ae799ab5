"""Build AMASS / AMASS-MANO from the SMPL+H G archives.

``python -m skeleton_diffusion.apps.create_amass_dataset [--gpu] [--if_extract_zip] [--include_hands]
[--datasets ACCAD CMU ...] [--fps 60] [--data-root datasets]``

Reads ``<root>/raw/AMASS/*.tar.bz2`` (not extracted) and ``<root>/annotations/AMASS/bodymodels/smplh/{male,female}/
model.npz``; writes zarr intermediates to ``<root>/annotations/<AMASS|AMASS-MANO>/dataset/<archive>/`` and
``<root>/processed/<AMASS|AMASS-MANO>/hmp/{data_3d_amass.npz, mean_motion_test.txt, mmgt_test.txt}``.
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.common import resolve_device, setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="AMASS: raw SMPL+H archives -> processed dataset")
    parser.add_argument("--fps", type=int, default=60, help="target frame rate (-1: keep the source rate)")
    parser.add_argument("--datasets", nargs="+", default=None, help="archive names to extract (default: all found)")
    parser.add_argument("-gpu", "--gpu", action="store_true", help="run the body model on CUDA when available")
    parser.add_argument("-if_extract_zip", "--if_extract_zip", action="store_true",
                        help="extract the tar.bz2 archives into zarr (resumable)")
    parser.add_argument("-include_hands", "--include_hands", action="store_true",
                        help="AMASS-MANO: keep the 30 hand joints (52 joints)")
    parser.add_argument("--data-root", default="datasets", help="datasets folder (default %(default)s)")
    parser.add_argument("--no-side-files", action="store_true", help="skip mean_motion_test.txt / mmgt_test.txt")
    parser.add_argument("--force", action="store_true", help="rebuild the npz and side files even if present")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    setup_cli_logging()
    from skeleton_diffusion.data.builders.amass import build_amass

    summary = run_cli(build_amass, args.data_root, include_hands=args.include_hands, datasets=args.datasets, fps=args.fps,
                          device=resolve_device(args.gpu), if_extract_zip=args.if_extract_zip,
                          side_files=not args.no_side_files, force=args.force, progress=not args.quiet)
    print(summary.format())
    return 0 if summary.csv_ok else 2


if __name__ == "__main__":
    sys.exit(main())
