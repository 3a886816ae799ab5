"""Build a dataset from a folder of BVH files, on the AMASS-22 skeleton or on the files' own skeleton.

``python -m skeleton_diffusion.apps.create_bvh_dataset --input DIR --name NAME [--skeleton amass|native]
[--joints J1,J2,...] [--labels auto|folder|filename|none] [--map cmu|lafan1|FILE.json] [--fps 60]
[--unit auto|m|cm|mm|inch|cmu|<metres per unit>] [--up y|z] [--split-mode auto|clips|time|test]
[--data-root datasets] [--force] [--no-drop-degenerate] [--trim-tpose]``

Errors (unreadable/truncated files, NaN values, an empty folder, clips shorter than one window) are one
paragraph on stderr with exit status 2.

Writes ``<root>/processed/<NAME>/hmp/{data_3d_<name>.npz, segments_{train,valid,test}.csv, build_info.json,
dataset_config.yaml, mean_motion_test.txt, mmgt_test.txt}`` (+ ``skeleton.json``, ``clip_labels.txt`` with
``--skeleton native``).
"""

from __future__ import annotations

import argparse
import sys

from skeleton_diffusion.config.cli import run_cli
from skeleton_diffusion.data.builders.common import setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.bvh import build_bvh_dataset

    parser = argparse.ArgumentParser(description="BVH folder -> processed dataset (AMASS-22 or the native skeleton)")
    parser.add_argument("--input", required=True, help="folder searched recursively for *.bvh")
    parser.add_argument("--name", required=True, help="dataset name (output folder processed/<NAME>/hmp)")
    parser.add_argument("--skeleton", choices=["amass", "native"], default="amass",
                        help="amass: map onto AMASS-22 with --map; native: keep the files' own joints (default %(default)s)")
    parser.add_argument("--joints", default=None, help="native only: comma-separated joint subset (root always kept)")
    parser.add_argument("--labels", choices=["auto", "folder", "filename", "none"], default="auto",
                        help="native only: CMD classes from folder or file names (default %(default)s)")
    parser.add_argument("--map", default="cmu", help="joint map: cmu, lafan1 or a JSON file (default %(default)s)")
    parser.add_argument("--fps", type=int, default=60, help="target frame rate (default %(default)s)")
    parser.add_argument("--obs-seconds", type=float, default=0.5, help="observation window of the segment CSVs")
    parser.add_argument("--pred-seconds", type=float, default=2.0, help="prediction window of the segment CSVs")
    parser.add_argument("--unit", default=None, help="file unit (default: the map's, else auto)")
    parser.add_argument("--up", choices=["y", "z"], default=None, help="up axis of the files (default: y)")
    parser.add_argument("--split-mode", choices=["auto", "clips", "time", "test"], default="auto")
    parser.add_argument("--data-root", default="datasets", help="datasets folder (default %(default)s)")
    parser.add_argument("--no-side-files", action="store_true", help="skip mean_motion_test.txt / mmgt_test.txt")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even if the dataset exists (built in a temporary folder, then swapped in)")
    parser.add_argument("--drop-degenerate", action=argparse.BooleanOptionalAction, default=True,
                        help="drop joints that coincide with their parent in every frame (zero-length bones; "
                             "reported); --no-drop-degenerate refuses such files (default: drop)")
    parser.add_argument("--trim-tpose", action="store_true",
                        help="cut a leading rest pose (T-pose) off every clip (it is always detected and reported)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    setup_cli_logging()
    summary = run_cli(build_bvh_dataset,args.input, args.name, data_root=args.data_root, joint_map=args.map, unit=args.unit,
                                up=args.up, fps=args.fps, split_mode=args.split_mode, obs_seconds=args.obs_seconds,
                                pred_seconds=args.pred_seconds,
                                side_files=not args.no_side_files, force=args.force, progress=not args.quiet,
                                skeleton=args.skeleton, labels=args.labels, drop_degenerate=args.drop_degenerate,
                                trim_tpose=args.trim_tpose,
                                joints=[j.strip() for j in args.joints.split(",") if j.strip()] if args.joints else None)
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
