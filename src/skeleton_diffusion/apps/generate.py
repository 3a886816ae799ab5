"""``generate``: captions -> 3D motion (npz + GIF) with a text-to-motion checkpoint (CrossDiff or text MDM).

    python -m skeleton_diffusion.apps.generate --checkpoint <run or .pt> --captions "a person walks" "a person jumps" \
        [--from 3d|2d] [--num-samples 2] [--seed 0] [--out generated.npz] [--gif generated.gif]

``--from 2d`` (CrossDiff only) is the paper's mixed sampling: start from 2D noise, hand over to 3D at
``model.change_idx``. The npz holds ``motion [B, S, T, J, 3]`` metres (canonical frame: first-frame root at the
ground origin), ``captions``, ``joint_names``, ``fps`` and ``start``; the GIF shows every sample of the first
caption (all of them with ``--gif-all``: one GIF per caption, ``<gif stem>_<i>.gif``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = ["generate", "main"]


def generate(checkpoint: str | Path, captions: Sequence[str], *, start: str = "3d", num_samples: int = 1,
             seed: int = 0, out: str | Path = "generated.npz", gif: Optional[str | Path] = None,
             gif_all: bool = False, device: str = "auto", use_ema: bool = False) -> dict[str, Any]:
    """Generate and write ``out`` (+ GIF); returns ``{"output", "motion_shape", "gifs"}``."""
    from skeleton_diffusion.methods.crossdiff.joints_sampling import maybe_load_crossdiff
    from skeleton_diffusion.utils.io import atomic_write

    captions = [str(c) for c in captions if str(c).strip()]
    if not captions:
        raise InputError("--captions needs at least one non-empty caption")
    gen = maybe_load_crossdiff(checkpoint, device, start=start, use_ema=use_ema)
    if gen is None:
        if start != "3d":
            raise InputError(f"--from {start} needs a CrossDiff checkpoint; '{checkpoint}' is not one")
        from skeleton_diffusion.methods.mdm.predictor import load_mdm

        gen = load_mdm(checkpoint, device, use_ema=use_ema)
        if gen.condition != "text":
            raise InputError(f"'{checkpoint}' is a {gen.condition}-conditioned MDM; generate needs a text model")
    g = torch.Generator(device=getattr(gen, "device", "cpu")).manual_seed(int(seed))
    motion = gen.generate(texts=captions, num_samples=int(num_samples), generator=g).numpy()
    sk = gen.skeleton
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "wb") as fh:
        np.savez_compressed(fh, motion=motion.astype(np.float32), captions=np.asarray(captions),
                            joint_names=np.asarray(list(sk.joint_names)), fps=np.float32(gen.fps),
                            start=np.asarray(start))
    print(f"wrote {out}: motion {tuple(motion.shape)} metres (B, S, T, J, 3), start={start}")
    gifs: list[Path] = []
    if gif:
        from skeleton_diffusion.viz.animation import animate_prediction

        base = Path(gif).expanduser()
        for i in range(len(captions) if gif_all else 1):
            path = base if not gif_all else base.with_name(f"{base.stem}_{i}{base.suffix}")
            gifs.append(Path(animate_prediction(motion[i, 0, :1], motion[i], sk, out_path=path, fps=float(gen.fps),
                                                highlight=None, max_samples=int(num_samples))))
            print(f"wrote {gifs[-1]}  ({captions[i]!r})")
    return {"output": out, "motion_shape": tuple(motion.shape), "gifs": gifs}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    from skeleton_diffusion.config.cli import run_cli

    p = argparse.ArgumentParser(prog="python -m skeleton_diffusion.apps.generate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="CrossDiff or text-MDM run folder / checkpoint file")
    p.add_argument("--captions", nargs="+", required=True)
    p.add_argument("--from", dest="start", choices=("3d", "2d"), default="3d",
                   help="start the reverse chain in the 3D domain, or from 2D noise (CrossDiff mixed sampling)")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="generated.npz")
    p.add_argument("--gif", default=None)
    p.add_argument("--gif-all", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--use-ema", action="store_true", help="sample with the EMA weights")
    a = p.parse_args(argv)
    return run_cli(generate, a.checkpoint, a.captions, start=a.start, num_samples=a.num_samples, seed=a.seed,
                   out=a.out, gif=a.gif, gif_all=a.gif_all, device=a.device, use_ema=a.use_ema)


if __name__ == "__main__":
    main()
