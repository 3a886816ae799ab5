"""``make demo``: the whole method on the embedded synthetic dataset, on CPU, in minutes.

Runs exactly the quick-start commands of the README (each as its own process), then prints where everything is.
Re-running resumes finished stages instead of training again (``resume=auto``).

    python -m skeleton_diffusion.demo [--out output/demo]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def demo_commands(out: str) -> list[list[str]]:
    """The README quick-start commands for output folder ``out`` (relative to the repository root)."""
    py = sys.executable
    return [
        [py, "-m", "skeleton_diffusion.data.create_synthetic_dataset"],
        [py, "train_autoencoder.py", "dataset=synthetic", "debug=autoencoder", f"output_log_path={out}/autoencoder",
         "resume=auto"],
        [py, "train_diffusion.py", "debug=diffusion", f"model.pretrained_autoencoder_path={out}/autoencoder",
         f"output_log_path={out}/diffusion", "resume=auto"],
        [py, "eval.py", "dataset=synthetic", f"checkpoint_path={out}/diffusion", "stats_mode=probabilistic",
         "debug=eval", f"results_path={out}/eval"],
        [py, "-m", "skeleton_diffusion.demo", "--write-example-obs", f"{out}/obs.npy"],
        [py, "-m", "skeleton_diffusion.predict", f"checkpoint_path={out}/diffusion", f"input={out}/obs.npy",
         f"output={out}/pred.npz", f"gif={out}/pred.gif", "num_samples=5"],
    ]


def write_example_observation(path: Path, data_root: Path = Path("datasets")) -> Path:
    """The first test window's observation of the synthetic dataset, ``[30, 22, 3]`` metres (root first)."""
    import numpy as np

    from .data.processed import load_processed

    folder = data_root / "processed" / "Synthetic" / "hmp"
    data = load_processed(folder / "data_3d_synthetic.npz")
    test = data["test"]
    name = sorted(test)[0]
    obs = np.asarray(test[name][:30], dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, obs)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/demo", help="demo folder (relative to the repository root)")
    parser.add_argument("--write-example-obs", metavar="NPY", default=None,
                        help="only write one observation of the synthetic test split ([30, 22, 3] metres) and exit")
    args = parser.parse_args(argv)
    if args.write_example_obs:
        print(f"example observation -> {write_example_observation(Path(args.write_example_obs))}")
        return 0
    os.chdir(REPO_ROOT)
    env = dict(os.environ, PYTHONWARNINGS=os.environ.get("PYTHONWARNINGS", "ignore"), MPLBACKEND="Agg")
    out = Path(args.out)
    t0 = time.time()
    cmds = demo_commands(args.out)
    for i, cmd in enumerate(cmds):
        shown = " ".join(shlex.quote(c) for c in ["python", *cmd[1:]])
        print(f"\n[{i + 1}/{len(cmds)}] {shown}", flush=True)
        step = time.time()
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            print(f"\ndemo step failed (exit {rc}): {shown}", file=sys.stderr)
            return rc
        print(f"  done in {time.time() - step:.0f} s", flush=True)
    print(f"\nDemo finished in {time.time() - t0:.0f} s. Everything is in {out}/:")
    print(f"  autoencoder run   {out}/autoencoder   (config.yaml, checkpoints/, tb/)")
    print(f"  diffusion run     {out}/diffusion")
    print(f"  results table     {out}/eval/results.md   (+ results.json, results.csv)")
    print(f"  predictions       {out}/pred.npz   animation {out}/pred.gif")
    print(f"  TensorBoard       tensorboard --logdir {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
