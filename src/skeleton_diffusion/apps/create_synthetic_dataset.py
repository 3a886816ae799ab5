"""Create the embedded procedural dataset ``synthetic`` (no download, ~10 s on one CPU core).

    python -m skeleton_diffusion.apps.create_synthetic_dataset [--out datasets/processed/Synthetic/hmp]
        [--seed 0] [--small] [--force]

See :mod:`skeleton_diffusion.data.builders.synthetic` and ``docs/synthetic_dataset.md``.
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.synthetic import build_synthetic_dataset

DEFAULT_OUT = "datasets/processed/Synthetic/hmp"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="random seed (the dataset is deterministic per seed)")
    p.add_argument("--small", action="store_true", help="tiny dataset for tests and smoke runs")
    p.add_argument("--force", action="store_true", help="rebuild even if the folder already holds this dataset")
    args = p.parse_args(argv)
    run_cli(build_synthetic_dataset, args.out, seed=args.seed, small=args.small, force=args.force, verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
