"""Build 3DPW (zero-shot test set for AMASS models) from its sequence pickles.

``python -m skeleton_diffusion.apps.create_3dpw_dataset [--gpu] [--axes official|rotation] [--body-models DIR]
[--data-root datasets]``

Reads ``<root>/raw/3DPW/sequenceFiles/{train,validation,test}/*.pkl`` and the SMPL+H body models in
``<root>/annotations/AMASS/bodymodels/smplh/``; writes ``<root>/processed/3DPW/hmp/{data_3d_3dpw.npz, ...}``.
Every actor of two-person sequences is kept (see ``builders/threedpw.py`` for the key naming).
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.common import resolve_device, setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.threedpw import build_3dpw

    parser = argparse.ArgumentParser(description="3DPW: raw pickles -> processed dataset")
    parser.add_argument("-gpu", "--gpu", action="store_true", help="run the body model on CUDA when available")
    parser.add_argument("--axes", choices=["official", "rotation"], default="official",
                        help="official: Y/Z swap + left/right label swap (benchmark); rotation: proper rotation")
    parser.add_argument("--body-models", default=None,
                        help="folder with <gender>/model.npz (default: <root>/annotations/AMASS/bodymodels/smplh)")
    parser.add_argument("--data-root", default="datasets", help="datasets folder (default %(default)s)")
    parser.add_argument("--no-side-files", action="store_true", help="skip mean_motion_test.txt / mmgt_test.txt")
    parser.add_argument("--force", action="store_true", help="rebuild the npz and side files even if present")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    setup_cli_logging()
    summary = run_cli(build_3dpw, args.data_root, body_models_dir=args.body_models, axes=args.axes,
                         device=resolve_device(args.gpu), side_files=not args.no_side_files, force=args.force,
                         progress=not args.quiet)
    print(summary.format())
    return 0 if summary.csv_ok else 2


if __name__ == "__main__":
    sys.exit(main())
