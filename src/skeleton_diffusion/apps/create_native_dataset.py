"""Build a processed dataset on any skeleton from a skeleton file and clips of joint positions.

``python -m skeleton_diffusion.apps.create_native_dataset --skeleton my_skeleton.yaml --input CLIPS --name NAME
[--fps 60] [--obs-seconds 0.5] [--pred-seconds 2.0] [--split-mode auto|clips|time|test]
[--labels auto|folder|filename|none] [--data-root datasets]``

``CLIPS``: a folder of ``.npy`` arrays ``[T, J, 3]`` (metres, Z up, at ``--fps``, joints in the skeleton file's
order, root first) or one ``.npz`` with one such array per clip. Writes ``<root>/processed/<NAME>/hmp/`` with the
npz, ``skeleton.json``, segment CSVs, ``clip_labels.txt``, ``dataset_config.yaml`` and the side files
(see docs/any_skeleton.md).
"""

from __future__ import annotations

import argparse
import sys

from skeleton_diffusion.data.builders.common import setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.native_skeleton import build_native_dataset

    parser = argparse.ArgumentParser(description="skeleton file + joint-position clips -> processed dataset")
    parser.add_argument("--skeleton", required=True, help="skeleton file (.yaml/.json, see docs/any_skeleton.md)")
    parser.add_argument("--input", required=True, help="folder of .npy clips [T, J, 3] or one .npz")
    parser.add_argument("--name", required=True, help="dataset name (output folder processed/<NAME>/hmp)")
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--obs-seconds", type=float, default=0.5, help="observation window of the segment CSVs")
    parser.add_argument("--pred-seconds", type=float, default=2.0, help="prediction window of the segment CSVs")
    parser.add_argument("--split-mode", choices=["auto", "clips", "time", "test"], default="auto")
    parser.add_argument("--labels", choices=["auto", "folder", "filename", "none"], default="auto")
    parser.add_argument("--data-root", default="datasets")
    parser.add_argument("--no-side-files", action="store_true")
    args = parser.parse_args(argv)
    setup_cli_logging()
    summary = build_native_dataset(args.input, args.skeleton, args.name, data_root=args.data_root, fps=args.fps,
                                   obs_seconds=args.obs_seconds, pred_seconds=args.pred_seconds,
                                   split_mode=args.split_mode, labels=args.labels, side_files=not args.no_side_files)
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
