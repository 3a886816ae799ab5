"""MDM demo (the second demo command, beside ``make demo``): train MDM on the embedded synthetic dataset on CPU,
evaluate it with the HMP protocol, predict with a GIF, train an action-conditioned MDM and edit a motion.

    python -m skeleton_diffusion.apps.demo_mdm [--out output/demo_mdm]

Runs these commands (each as its own process; ``resume=auto`` reuses finished runs), about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from skeleton_diffusion.apps.demo import run_commands


def demo_commands(out: str) -> list[list[str]]:
    """The MDM demo commands for output folder ``out`` (relative to the repository root)."""
    py = sys.executable
    return [
        [py, "-m", "skeleton_diffusion.apps.create_synthetic_dataset"],
        [py, "train_diffusion.py", "model=mdm", "debug=mdm", "dataset=synthetic", f"output_log_path={out}/mdm_past",
         "resume=auto"],
        [py, "eval.py", "dataset=synthetic", f"checkpoint_path={out}/mdm_past", "stats_mode=probabilistic",
         "debug=eval", f"results_path={out}/eval", "overwrite=true"],
        [py, "-m", "skeleton_diffusion.apps.demo_mdm", "--write-example-motion", f"{out}/motion.npy"],
        [py, "-m", "skeleton_diffusion.apps.demo", "--write-example-obs", f"{out}/obs.npy"],
        [py, "-m", "skeleton_diffusion.apps.predict", f"checkpoint_path={out}/mdm_past", f"input={out}/obs.npy",
         f"output={out}/pred.npz", f"gif={out}/pred.gif", "num_samples=5"],
        [py, "-m", "skeleton_diffusion.apps.edit", f"checkpoint_path={out}/mdm_past", f"input={out}/motion.npy",
         "mode=joints", "keep=[0,3,6,9,12,13,14,15,16,17,18,19,20,21]", f"output={out}/edit_legs.npz",
         f"gif={out}/edit_legs.gif"],
        [py, "train_diffusion.py", "model=mdm", "debug=mdm", "dataset=synthetic", "condition=action",
         f"output_log_path={out}/mdm_action", "resume=auto"],
    ]


def write_example_motion(path: Path, data_root: Path = Path("datasets")) -> Path:
    """The first test clip's first 150 frames (30 observed + 120 future) ``[150, 22, 3]`` metres (root first)."""
    import numpy as np

    from skeleton_diffusion.data.processed import load_processed

    data = load_processed(data_root / "processed" / "Synthetic" / "hmp" / "data_3d_synthetic.npz")
    test = data["test"]
    motion = np.asarray(test[sorted(test)[0]][:150], dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, motion)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/demo_mdm", help="demo folder (relative to the repository root)")
    parser.add_argument("--write-example-motion", metavar="NPY", default=None,
                        help="only write one synthetic test motion ([150, 22, 3] metres) and exit")
    args = parser.parse_args(argv)
    if args.write_example_motion:
        print(f"example motion -> {write_example_motion(Path(args.write_example_motion))}")
        return 0
    t0 = time.time()
    rc = run_commands(demo_commands(args.out))
    if rc != 0:
        return rc
    out = args.out
    print(f"\nMDM demo finished in {time.time() - t0:.0f} s. Everything is in {out}/:")
    print(f"  MDM (condition=past) run   {out}/mdm_past   results {out}/eval/results.md")
    print(f"  predictions                {out}/pred.npz   animation {out}/pred.gif")
    print(f"  body-part edit (legs)      {out}/edit_legs.npz   animation {out}/edit_legs.gif")
    print(f"  MDM (condition=action) run {out}/mdm_action")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
