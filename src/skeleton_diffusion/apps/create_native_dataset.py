"""Build a processed dataset on any skeleton from a skeleton file and clips of joint positions.

``python -m skeleton_diffusion.apps.create_native_dataset --skeleton my_skeleton.yaml --input CLIPS --name NAME
[--fps 60] [--obs-seconds 0.5] [--pred-seconds 2.0] [--split-mode auto|clips|time|test]
[--labels auto|folder|filename|none] [--data-root datasets] [--input-fps F | --rates FILE] [--force]
[--no-drop-degenerate]``

``CLIPS``: a folder of ``.npy`` arrays ``[T, J, 3]`` (metres, Z up, at ``--fps``, joints in the skeleton file's
order, root first) or one ``.npz`` with one such array per clip. Writes ``<root>/processed/<NAME>/hmp/`` with the
npz, ``skeleton.json``, segment CSVs, ``clip_labels.txt``, ``dataset_config.yaml`` and the side files
(see docs/any_skeleton.md).
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.common import setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.native_skeleton import build_native_dataset

    parser = argparse.ArgumentParser(description="skeleton file + joint-position clips -> processed dataset")
    parser.add_argument("--skeleton", required=True, help="skeleton file (.yaml/.json, see docs/any_skeleton.md)")
    parser.add_argument("--input", required=True, help="folder of .npy clips [T, J, 3] or one .npz")
    parser.add_argument("--name", required=True, help="dataset name (output folder processed/<NAME>/hmp)")
    parser.add_argument("--fps", type=int, default=60, help="frame rate of the dataset (default %(default)s)")
    parser.add_argument("--input-fps", type=float, default=None,
                        help="frame rate of every input clip (default: --fps); other rates are resampled keeping "
                             "bone lengths")
    parser.add_argument("--rates", default=None,
                        help="per-clip rate file, '<clip>,<fps>' lines (clips recorded at different rates)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing dataset (built in a temporary folder, then swapped in)")
    parser.add_argument("--drop-degenerate", action=argparse.BooleanOptionalAction, default=True,
                        help="drop joints that coincide with their parent in every frame (reported); "
                             "--no-drop-degenerate refuses them")
    parser.add_argument("--obs-seconds", type=float, default=0.5, help="observation window of the segment CSVs")
    parser.add_argument("--pred-seconds", type=float, default=2.0, help="prediction window of the segment CSVs")
    parser.add_argument("--split-mode", choices=["auto", "clips", "time", "test"], default="auto")
    parser.add_argument("--labels", choices=["auto", "folder", "filename", "none"], default="auto")
    parser.add_argument("--data-root", default="datasets")
    parser.add_argument("--no-side-files", action="store_true")
    args = parser.parse_args(argv)
    setup_cli_logging()
    summary = run_cli(build_native_dataset, args.input, args.skeleton, args.name, data_root=args.data_root, fps=args.fps,
                                   obs_seconds=args.obs_seconds, pred_seconds=args.pred_seconds,
                                   split_mode=args.split_mode, labels=args.labels, side_files=not args.no_side_files,
                                   input_fps=args.input_fps, rates=args.rates, force=args.force,
                                   drop_degenerate=args.drop_degenerate)
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
