"""``fit_mesh``: fit an SMPL body to 22-joint motion and write its mesh.

    python -m skeleton_diffusion.apps.fit_mesh INPUT --model-dir DIR --out OUT.npz \\
        [--obj-dir D] [--gif G.gif] [--device auto] [--sample 0] [--batch 0] [--rep 0] [--part all|pred]

INPUT: our ``predict`` / ``generate`` / ``edit`` output, a plain ``[T, 22, 3]`` ``.npy``/``.npz`` (e.g. CrossDiff's
``<i>.npy``) or an MDM / CrossDiff ``results.npy``. DIR holds the user's SMPL file (``smpl/SMPL_NEUTRAL.pkl``,
see ``docs/mesh.md``). OUT.npz: SMPL parameters, vertices ``[T, 6890, 3]``, faces, fitted joints and the fit error.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from skeleton_diffusion.utils.errors import FileAccessError, SkeletonDiffusionError

__all__ = ["fit_mesh", "main"]


def fit_mesh(input_path: str | Path, *, model_dir: str | Path | None = None, out: str | Path = "mesh.npz",
             obj_dir: str | Path | None = None, gif: str | Path | None = None, device: str = "auto",
             gender: str = "neutral", sample: int = 0, batch: int = 0, rep: int = 0, part: str = "all",
             fps: float | None = None, gif_frames: int = 60, up: str = "auto",
             config: Any = None) -> dict[str, Any]:
    """Read one sequence from ``input_path``, fit SMPL, write ``out`` (+ ``.obj`` files, GIF); returns a summary
    (``output``, ``frames``, ``mean_error_mm``, ``seconds``, ``objs``, ``gif``)."""
    from skeleton_diffusion.mesh.body_model import load_body_model
    from skeleton_diffusion.mesh.fitting import fit_smpl
    from skeleton_diffusion.mesh.readers import OFFICIAL_FPS, load_joint_sequence
    from skeleton_diffusion.mesh.writers import save_mesh_npz, save_obj_frames
    from skeleton_diffusion.utils.device import resolve_device

    seq = load_joint_sequence(input_path, sample=sample, batch=batch, rep=rep, part=part)
    model = load_body_model(model_dir, gender, device=resolve_device(device))
    fit = fit_smpl(seq.joints, model, config)
    rate = float(fps or seq.fps or OFFICIAL_FPS)
    out = save_mesh_npz(out, fit, fps=rate, gender=gender, source=f"{Path(input_path).name}: {seq.label}")
    print(f"fitted SMPL to {len(seq.joints)} frames of {seq.kind} '{input_path}' ({seq.label}) in "
          f"{fit.seconds:.1f} s: mean joint error {fit.mean_error_mm:.1f} mm (max frame "
          f"{float(fit.per_frame_error_mm.max()):.1f} mm)")
    print(f"wrote {out}: vertices {tuple(fit.vertices.shape)}, faces {tuple(fit.faces.shape)}")
    summary: dict[str, Any] = {"output": out, "frames": len(seq.joints), "mean_error_mm": fit.mean_error_mm,
                               "seconds": fit.seconds, "objs": [], "gif": None, "kind": seq.kind}
    if obj_dir:
        summary["objs"] = save_obj_frames(obj_dir, fit.vertices, fit.faces)
        print(f"wrote {len(summary['objs'])} .obj files to {obj_dir}")
    if gif:
        from skeleton_diffusion.mesh.render import render_mesh_gif

        summary["gif"] = render_mesh_gif(gif, fit.vertices, fit.faces, seq.joints, fps=rate, max_frames=gif_frames,
                                         up=up, title=None)
        print(f"wrote {summary['gif']}")
    return summary


def _run_cli(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """User errors (and OSErrors naming a file) -> one paragraph on stderr and exit status 2."""
    try:
        return fn(**kwargs)
    except (SkeletonDiffusionError, OSError) as exc:
        if os.environ.get("SKELETON_DIFFUSION_TRACEBACK") or (
                not isinstance(exc, SkeletonDiffusionError) and not getattr(exc, "filename", None)):
            raise
        if not isinstance(exc, SkeletonDiffusionError):
            exc = FileAccessError.from_os_error(exc)
        body = textwrap.fill(str(exc), width=100, break_long_words=False, break_on_hyphens=False)
        sys.stderr.write(f"\nerror ({type(exc).__name__}):\n{textwrap.indent(body, '  ')}\n")
        raise SystemExit(2) from None


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Command-line entry point (see the module docstring)."""
    from skeleton_diffusion.mesh.fitting import FitConfig

    p = argparse.ArgumentParser(prog="python -m skeleton_diffusion.apps.fit_mesh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="motion file (.npy / .npz)")
    p.add_argument("--model-dir", default=None,
                   help="folder with the SMPL model (default $SKELETON_DIFFUSION_BODY_MODELS or ./body_models)")
    p.add_argument("--gender", default="neutral", choices=["neutral", "male", "female"])
    p.add_argument("--out", default="mesh.npz", help="output .npz (default mesh.npz)")
    p.add_argument("--obj-dir", default=None, help="also write one .obj per frame into this folder")
    p.add_argument("--gif", default=None, help="also write a GIF: mesh beside skeleton")
    p.add_argument("--gif-frames", type=int, default=60, help="at most this many GIF frames (evenly strided)")
    p.add_argument("--up", default="auto", choices=["auto", "z", "-z", "y", "-y"], help="data up axis (GIF)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, mps")
    p.add_argument("--sample", type=int, default=0, help="sample index (predict/generate/edit, MDM results)")
    p.add_argument("--batch", type=int, default=0, help="observation (predict) or caption (generate) index")
    p.add_argument("--rep", type=int, default=0, help="repetition index of an MDM/CrossDiff results.npy")
    p.add_argument("--part", default="all", choices=["all", "pred"],
                   help="predict outputs: observation + prediction (all) or the prediction alone")
    p.add_argument("--fps", type=float, default=None, help="frame rate written (default: the file's, else 20)")
    defaults = FitConfig()
    for name in ("pose_prior", "angle_prior", "smooth", "shape_prior", "window", "iters_first", "iters",
                 "refine_iters"):
        value = getattr(defaults, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"fit setting ({value})")
    p.add_argument("--no-shape", action="store_true", help="keep the mean shape (betas = 0)")
    a = p.parse_args(argv)
    cfg = FitConfig(pose_prior=a.pose_prior, angle_prior=a.angle_prior, smooth=a.smooth, shape_prior=a.shape_prior,
                    window=a.window, iters_first=a.iters_first, iters=a.iters, refine_iters=a.refine_iters,
                    fit_shape=not a.no_shape)
    return _run_cli(fit_mesh, input_path=a.input, model_dir=a.model_dir, out=a.out, obj_dir=a.obj_dir, gif=a.gif,
                    device=a.device, gender=a.gender, sample=a.sample, batch=a.batch, rep=a.rep, part=a.part,
                    fps=a.fps, gif_frames=a.gif_frames, up=a.up, config=cfg)


if __name__ == "__main__":
    main()
