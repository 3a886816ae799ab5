"""``make demo``: the whole method on the embedded synthetic dataset, on CPU, in minutes.

Runs exactly the quick-start commands of the README (each as its own process), in two parts:

* **quick model**: build the dataset, train both stages from scratch with small presets (a few CPU minutes),
  evaluate, predict -> ``pred_quick.gif``. It shows the pipeline end to end; a few hundred iterations are far
  too few to learn the motion (its futures barely move).
* **shipped model** (:data:`PRETRAINED_DIR`, trained ~70 CPU minutes on the same dataset by
  ``scripts/results/train_demo_model.sh``): evaluate, predict -> ``pred.gif`` / ``pred_vs_gt.gif``, the README
  figure, with futures that move like the data and differ from each other.

Then prints both models' results and how much each model's futures move and differ (:func:`motion_summary`). The
example observation is the synthetic test window in motion (:func:`pick_example_window`). Re-running reuses
finished stages (``resume=auto``). A missing shipped model is reported in one message; the quick part still runs.

    python -m skeleton_diffusion.apps.demo [--out output/demo]
"""

from __future__ import annotations

import numpy as np

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]

#: The small pre-trained demo model shipped in the repository (relative to the repository root): two run folders,
#: ``autoencoder/`` and ``diffusion/`` (config.yaml + one weights-only checkpoint each), and a README.md saying how
#: it was trained (``scripts/results/train_demo_model.sh``) and what it scores.
PRETRAINED_DIR = "trained_models/demo_synthetic"

#: How to get the shipped model back when it is missing (printed by :func:`main`).
PRETRAINED_RESTORE = (f"restore it with `git checkout -- {PRETRAINED_DIR}` or train it again with "
                      "`bash scripts/results/train_demo_model.sh` (about 70 min on 2 CPU cores)")


def quick_commands(out: str) -> list[list[str]]:
    """The quick part of the demo: dataset, both stages trained from scratch with the small presets, evaluation
    (``{out}/eval_quick``), the zero-velocity baseline's (``{out}/eval_zero_velocity``), the example observation and its futures (``{out}/pred_quick.npz`` / ``.gif``)."""
    py = sys.executable
    return [
        [py, "-m", "skeleton_diffusion.apps.create_synthetic_dataset"],
        [py, "train_autoencoder.py", "dataset=synthetic", "debug=demo_autoencoder",
         f"output_log_path={out}/autoencoder", "resume=auto"],
        [py, "train_diffusion.py", "debug=diffusion", f"model.pretrained_autoencoder_path={out}/autoencoder",
         f"output_log_path={out}/diffusion", "resume=auto"],
        [py, "eval.py", "dataset=synthetic", f"checkpoint_path={out}/diffusion", "stats_mode=probabilistic",
         "debug=eval", f"results_path={out}/eval_quick", "overwrite=true"],
        [py, "eval.py", "dataset=synthetic", "method_specs=zero_velocity", "stats_mode=probabilistic",
         "debug=eval", f"results_path={out}/eval_zero_velocity", "overwrite=true"],
        [py, "-m", "skeleton_diffusion.apps.demo", "--write-example-obs", f"{out}/obs.npy"],
        [py, "-m", "skeleton_diffusion.apps.predict", f"checkpoint_path={out}/diffusion", f"input={out}/obs.npy",
         f"output={out}/pred_quick.npz", f"gif={out}/pred_quick.gif", "num_samples=5"],
    ]


def pretrained_commands(out: str, model: str = PRETRAINED_DIR) -> list[list[str]]:
    """The shipped model's part: evaluation (``{out}/eval``) and the example's futures (``{out}/pred.npz`` /
    ``.gif``); needs the example observation written by :func:`quick_commands`."""
    py = sys.executable
    return [
        [py, "eval.py", "dataset=synthetic", f"checkpoint_path={model}/diffusion", "stats_mode=probabilistic",
         "debug=eval", f"results_path={out}/eval", "overwrite=true"],
        [py, "-m", "skeleton_diffusion.apps.predict", f"checkpoint_path={model}/diffusion", f"input={out}/obs.npy",
         f"output={out}/pred.npz", f"gif={out}/pred.gif", "num_samples=5"],
    ]


def demo_commands(out: str) -> list[list[str]]:
    """The README quick-start commands for output folder ``out`` (relative to the repository root): the quick
    part, then the shipped model's part."""
    return quick_commands(out) + pretrained_commands(out)


def pretrained_model_problem(model_dir: str | Path = REPO_ROOT / PRETRAINED_DIR) -> str | None:
    """None when the shipped demo model under ``model_dir`` is usable (its ``diffusion`` run folder holds a
    diffusion checkpoint that loads weights-only, with its autoencoder inside), else one sentence saying what is
    wrong (missing folder, no checkpoint, unreadable file, wrong stage)."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.utils.errors import SkeletonDiffusionError
    from skeleton_diffusion.utils.io import safe_torch_load

    model_dir = Path(model_dir)
    if model_dir.is_absolute() and model_dir.is_relative_to(REPO_ROOT):
        model_dir = model_dir.relative_to(REPO_ROOT)  # shorter in messages (the demo runs from the repository root)
    run = (REPO_ROOT / model_dir) / "diffusion"
    if not run.is_dir():
        return f"the shipped demo model is missing: no folder '{model_dir / 'diffusion'}'"
    try:
        ckpt = safe_torch_load(resolve_checkpoint(run))
    except (SkeletonDiffusionError, OSError) as exc:
        return f"the shipped demo model in '{model_dir}' cannot be loaded: {exc}"
    if not isinstance(ckpt, dict) or (ckpt.get("meta") or {}).get("stage") != "diffusion" \
            or "autoencoder" not in ckpt or "model" not in ckpt:
        return f"the shipped demo model in '{model_dir}' is not a diffusion checkpoint with its autoencoder"
    return None


def joint_speed(poses: "np.ndarray", fps: float = 60.0) -> float:
    """Mean hip-relative joint speed of ``poses [T, J, 3]`` (metres, root first) in m/s: how much the body moves,
    not where it goes (the model predicts hip-relative poses)."""
    import numpy as np

    rel = poses[:, 1:] - poses[:, :1]
    path = np.linalg.norm(np.diff(rel, axis=0), axis=-1).sum(axis=0).mean()
    return float(path / max(len(poses) - 1, 1) * fps)


def _test_split(data_root: Path, folder: Path | None, npz: str) -> tuple[Path, dict]:
    """``(folder, test clips)`` of a processed dataset (default: the synthetic set under ``data_root``)."""
    from skeleton_diffusion.data.processed import load_processed

    folder = Path(folder) if folder is not None else data_root / "processed" / "Synthetic" / "hmp"
    return folder, load_processed(folder / npz)["test"]


def _most_moving_window(folder: Path, test: dict, obs_length: int) -> tuple[str, int]:
    import csv

    best: tuple[float, str, int] | None = None
    with open(folder / "segments_test.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            seq, a, p, e = test[row["name"]], int(row["init"]), int(row["pred_init"]), int(row["pred_end"])
            if p - a < obs_length:
                continue
            score = min(joint_speed(seq[p - obs_length:p]), joint_speed(seq[p - 1:e + 1]))
            if best is None or score > best[0]:
                best = (score, row["name"], p - obs_length)
    if best is None:
        raise FileNotFoundError(f"no test window of >= {obs_length} observed frames in {folder}/segments_test.csv")
    return best[1], best[2]


def pick_example_window(data_root: Path = Path("datasets"), obs_length: int = 30, *,
                        folder: Path | None = None, npz: str = "data_3d_synthetic.npz") -> tuple[str, int]:
    """``(clip, first frame)`` of the test window to show: the one moving most both in its observation and in its
    ground-truth future (largest ``min(obs speed, future speed)``, :func:`joint_speed`), e.g. a run that turns
    into a jump. The first test window (used before) starts a clip in ``idle``: 1 cm of motion. Default: the
    synthetic test split; ``folder`` / ``npz``: any processed dataset (``<folder>/segments_test.csv``)."""
    folder, test = _test_split(data_root, folder, npz)
    return _most_moving_window(folder, test, obs_length)


def write_example_observation(path: Path, data_root: Path = Path("datasets"), *, folder: Path | None = None,
                              npz: str = "data_3d_synthetic.npz", obs_length: int = 30,
                              pred_length: int = 120) -> Path:
    """One observation of a test split in motion (:func:`pick_example_window`), ``[obs_length, J, 3]`` metres
    (root first; default the synthetic set's ``[30, 22, 3]``); its ground-truth future is written beside it as
    ``<stem>_gt_future.npy`` ``[pred_length, J, 3]``."""
    import numpy as np

    folder, test = _test_split(data_root, folder, npz)
    name, start = _most_moving_window(folder, test, obs_length)
    obs = np.asarray(test[name][start:start + obs_length], dtype=np.float32)
    future = np.asarray(test[name][start + obs_length:start + obs_length + pred_length], dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, obs)
    np.save(path.with_name(f"{path.stem}_gt_future.npy"), future)
    return path


def write_comparison_gif(pred_npz: Path, gt_future: Path, out_path: Path, every: int = 1,
                         skeleton: str | None = None) -> Path:
    """The futures of ``pred_npz`` beside the ground-truth future (first panel, closest sample overlaid in red),
    written to ``out_path``; returns the path written. Like the predictions, the ground truth is shown with its
    hip held at the last observed hip position (the model predicts hip-relative poses, not the path travelled).
    ``every=2`` keeps every second frame (half the file size, same real-time playback at half the frame rate).
    ``skeleton``: a skeleton name or file (``skeleton.json`` of a native build) instead of the name in the npz."""
    import numpy as np

    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.viz.animation import animate_prediction

    with np.load(pred_npz) as d:
        pred, obs, fps = d["pred"][0], d["obs"][0], float(d["fps"])
        skeleton = skeleton or str(d["skeleton"])
    gt = np.load(gt_future)
    gt = gt - gt[:, :1] + obs[-1:, :1]
    every = max(int(every), 1)
    return animate_prediction(obs[every - 1::every], pred[:, every - 1::every], get_skeleton(skeleton),
                              gt=gt[every - 1::every], out_path=out_path, fps=fps / every,
                              trail=max(20 // every, 1))


def motion_summary(pred_npz: Path, gt_future: Path | None = None) -> dict[str, float]:
    """Numbers that say whether the demo's futures move and differ (all in cm, hip-relative, per joint):

    ``obs_speed`` / ``pred_speed`` / ``gt_speed`` (cm/s, :func:`joint_speed`), ``pred_travel`` (mean joint
    distance between the last observed and the last predicted pose), ``spread_final`` (mean pairwise joint
    distance between samples at the last frame) and ``spread_mean`` (the same averaged over all frames)."""
    import numpy as np

    with np.load(pred_npz) as d:
        pred, obs, fps = d["pred"][0], d["obs"][0], float(d["fps"])
    rel = pred[..., 1:, :] - pred[..., :1, :]
    last_obs = obs[-1, 1:] - obs[-1, :1]
    s = len(pred)
    pairs = [(i, j) for i in range(s) for j in range(i + 1, s)]
    out = {"obs_speed": joint_speed(obs, fps) * 100,
           "pred_speed": float(np.mean([joint_speed(p, fps) for p in pred])) * 100,
           "pred_travel": float(np.linalg.norm(rel[:, -1] - last_obs, axis=-1).mean()) * 100,
           "spread_final": float(np.mean([np.linalg.norm(rel[i, -1] - rel[j, -1], axis=-1).mean()
                                          for i, j in pairs])) * 100 if pairs else 0.0,
           "spread_mean": float(np.mean([np.linalg.norm(rel[i] - rel[j], axis=-1).mean()
                                         for i, j in pairs])) * 100 if pairs else 0.0}
    if gt_future is not None and Path(gt_future).is_file():
        out["gt_speed"] = joint_speed(np.load(gt_future), fps) * 100
    return out


def run_commands(cmds: list[list[str]]) -> int:
    """Run ``cmds`` one after the other from the repository root, each as its own process, printing each command
    and its duration; stops at the first failure and returns its exit status (0 when all succeed)."""
    os.chdir(REPO_ROOT)
    env = dict(os.environ, PYTHONWARNINGS=os.environ.get("PYTHONWARNINGS", "ignore"), MPLBACKEND="Agg")
    for i, cmd in enumerate(cmds):
        shown = " ".join(shlex.quote(c) for c in ["python", *cmd[1:]])
        print(f"\n[{i + 1}/{len(cmds)}] {shown}", flush=True)
        step = time.time()
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            print(f"\ndemo step failed (exit {rc}): {shown}", file=sys.stderr)
            return rc
        print(f"  done in {time.time() - step:.0f} s", flush=True)
    return 0


def _results_line(results_dir: Path) -> str:
    """ADE / FDE / APD / CMD of an ``eval.py`` results folder, one line (or why not)."""
    from skeleton_diffusion.tasks.results import load_results

    try:
        met = load_results(results_dir)["metrics"]
    except (OSError, ValueError) as exc:
        return f"(no results: {exc})"
    return ", ".join(f"{k} {met[k]['mean']:.3f}" for k in ("ADE", "FDE", "APD", "CMD") if k in met)


def _motion_line(m: dict[str, float]) -> str:
    return (f"futures move at {m['pred_speed']:.0f} cm/s (ground truth {m.get('gt_speed', float('nan')):.0f} cm/s), "
            f"{m['pred_travel']:.1f} cm from the last observed pose after 2 s; samples {m['spread_final']:.1f} cm "
            "apart at the end (mean pairwise joint distance)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/demo", help="demo folder (relative to the repository root)")
    parser.add_argument("--write-example-obs", metavar="NPY", default=None,
                        help="only write one observation of the synthetic test split ([30, 22, 3] metres) and its "
                             "ground-truth future (<stem>_gt_future.npy), then exit")
    parser.add_argument("--example-from", nargs=2, metavar=("FOLDER", "NPZ"), default=None,
                        help="with --write-example-obs: take it from this processed dataset folder (holding NPZ and "
                             "segments_test.csv) instead of the synthetic test split")
    parser.add_argument("--example-frames", nargs=2, type=int, metavar=("OBS", "PRED"), default=(30, 120),
                        help="with --write-example-obs: observed and future frames (default 30 120)")
    args = parser.parse_args(argv)
    if args.write_example_obs:
        kw = {}
        if args.example_from:
            kw = {"folder": Path(args.example_from[0]), "npz": args.example_from[1]}
        obs_n, pred_n = args.example_frames
        path = write_example_observation(Path(args.write_example_obs), obs_length=obs_n, pred_length=pred_n, **kw)
        print(f"example observation -> {path}")
        return 0
    out = Path(args.out)
    t0 = time.time()
    problem = pretrained_model_problem(REPO_ROOT / PRETRAINED_DIR)
    if problem:
        print(f"\nnote: {problem};\n  {PRETRAINED_RESTORE}.\n  Running the quick part only (the model trained "
              "here in minutes).", file=sys.stderr, flush=True)
    rc = run_commands(quick_commands(args.out) if problem else demo_commands(args.out))
    if rc != 0:
        return rc
    os.chdir(REPO_ROOT)
    gt_future = out / "obs_gt_future.npy"
    models = [("quick model (trained here)", "pred_quick", out / "eval_quick")]
    if not problem:
        models.insert(0, ("shipped model", "pred", out / "eval"))
    print("\nResults on the synthetic test set (eval.py, 10 samples per window; metres):")
    for label, _, results in models:
        print(f"  {label:27s} {_results_line(results)}")
    print(f"  {'zero velocity (baseline)':27s} {_results_line(out / 'eval_zero_velocity')}   (the last observed pose "
          "held: a model must beat it)")
    m0 = motion_summary(out / f"{models[0][1]}.npz", gt_future)
    print(f"\nThe example ({out}/obs.npy): observed joints move at {m0['obs_speed']:.0f} cm/s (hip-relative).")
    gifs = []
    for label, stem, _ in models:
        m = motion_summary(out / f"{stem}.npz", gt_future)
        gifs.append(write_comparison_gif(out / f"{stem}.npz", gt_future, out / f"{stem}_vs_gt.gif"))
        print(f"  {label:27s} {out}/{stem}.gif: {_motion_line(m)}")
    print(f"\nDemo finished in {time.time() - t0:.0f} s. Everything is in {out}/:")
    if not problem:
        print(f"  shipped model     {PRETRAINED_DIR}/   (how it was trained: {PRETRAINED_DIR}/README.md)")
        print(f"  its results       {out}/eval/results.md   its futures {out}/pred.gif   (with ground truth: "
              f"{gifs[0]})")
    else:
        print(f"  shipped model     MISSING ({PRETRAINED_RESTORE})")
    print(f"  quick model runs  {out}/autoencoder, {out}/diffusion   (config.yaml, checkpoints/, tb/)")
    print(f"  its results       {out}/eval_quick/results.md   its futures {out}/pred_quick.gif   (with ground "
          f"truth: {gifs[-1]})")
    print(f"  TensorBoard       tensorboard --logdir {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
