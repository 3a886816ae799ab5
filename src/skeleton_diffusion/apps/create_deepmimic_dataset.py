"""Build the DeepMimic real-motion dataset (native 15-joint humanoid) from the clips shipped in the pybullet wheel.

``python -m skeleton_diffusion.apps.create_deepmimic_dataset [--name DeepMimic] [--data-root datasets]
[--pybullet-data DIR] [--fps 30] [--loop-repeats 3] [--test-clips dance_b,getup_faceup] [--valid-clips punch]``

Needs ``pip install pybullet`` (binary wheel, ~100 MB; only its ``pybullet_data`` files are read) or
``--pybullet-data`` pointing at a folder with ``data/motions/humanoid3d_*.txt`` and ``humanoid/humanoid.urdf``.
Writes ``<root>/processed/<NAME>/hmp/`` (npz, ``skeleton.json``, segment CSVs, ``clip_labels.txt``,
``dataset_config.yaml``, side files). Windows: 0.5 s observed + 1.0 s predicted (the clips are short) -> train
and evaluate with ``task.prediction_horizon_sec=1.0``.
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
import sys

from skeleton_diffusion.data.builders.common import setup_cli_logging


def main(argv: list[str] | None = None) -> int:
    from skeleton_diffusion.data.builders.deepmimic import DEFAULT_TEST_CLIPS, DEFAULT_VALID_CLIPS, build_deepmimic_dataset

    p = argparse.ArgumentParser(description="DeepMimic humanoid3d clips (pybullet_data) -> processed dataset")
    p.add_argument("--name", default="DeepMimic")
    p.add_argument("--data-root", default="datasets")
    p.add_argument("--pybullet-data", default=None, help="default: the installed pybullet_data package")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--pred-seconds", type=float, default=1.0)
    p.add_argument("--loop-repeats", type=int, default=3, help="repeat looping clips this many times")
    p.add_argument("--test-clips", default=",".join(DEFAULT_TEST_CLIPS))
    p.add_argument("--valid-clips", default=",".join(DEFAULT_VALID_CLIPS))
    p.add_argument("--no-side-files", action="store_true")
    a = p.parse_args(argv)
    setup_cli_logging()
    summary = run_cli(build_deepmimic_dataset,
        a.name, data_root=a.data_root, pybullet_data_dir=a.pybullet_data, fps=a.fps, pred_seconds=a.pred_seconds,
        loop_repeats=a.loop_repeats, test_clips=[c for c in a.test_clips.split(",") if c],
        valid_clips=[c for c in a.valid_clips.split(",") if c], side_files=not a.no_side_files)
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
