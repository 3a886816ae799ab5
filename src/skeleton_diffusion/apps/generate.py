"""``generate``: captions (or action classes) -> 3D motion (npz + GIF) with a text-to-motion checkpoint (CrossDiff,
text MDM) or an action MDM, ours or a converted official run.

    python -m skeleton_diffusion.apps.generate --checkpoint <run or .pt> --captions "a person walks" "a person jumps" \
        [--from 3d|2d] [--num-samples 2] [--seed 0] [--out generated.npz] [--gif generated.gif]
    python -m skeleton_diffusion.apps.generate --checkpoint <converted official MDM> --captions "a person walks" \
        --text-encoder-path trained_models/clip-vit-base-patch32 --data-root datasets/raw/HumanML3D
    python -m skeleton_diffusion.apps.generate --checkpoint <converted official HumanAct12 MDM> --actions 0 3 \
        [--smpl-model SMPL_NEUTRAL.npz] [--num-frames 60]

``--from 2d`` (CrossDiff only) is the paper's mixed sampling: start from 2D noise, hand over to 3D at
``model.change_idx``. The npz holds ``motion [B, S, T, J, 3]`` metres (our runs: canonical frame, first-frame root
at the ground origin; official HumanML3D/KIT runs: ``recover_from_ric`` of the features de-normalised with
``--data-root``'s Mean/Std; official action runs: SMPL joints of ``--smpl-model``, root-centred), ``captions``
(or ``labels``), ``joint_names``, ``fps`` and ``start``; official runs also store ``features`` (the model's own
representation) and write ``motion`` only when the files for the joints are given. The GIF shows every sample of
the first caption (all of them with ``--gif-all``: one GIF per caption, ``<gif stem>_<i>.gif``), titled by it.
Official MDM text models pick their text encoder from ``args.json`` (``--text-encoder auto``: CLIP ViT-B/32 or
DistilBERT), loaded from the LOCAL folder ``--text-encoder-path``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = ["generate", "main"]
_log = logging.getLogger("skeleton_diffusion.apps.generate")
_OFFICIAL = {"humanml": (20.0, "amass"), "kit": (12.5, None), "humanact12": (20.0, None), "uestc": (20.0, None)}


def _official(gen: Any, captions: Sequence[str], actions: Optional[Sequence[int]], *, num_samples: int,
              generator: torch.Generator, text_encoder_path: Any, text_encoder: str, data_root: Any,
              smpl_model: Any, num_frames: Optional[int], guidance_param: Optional[float]) -> dict[str, Any]:  # fmt: skip
    """A converted official MDM: features (+ joints when the files for them are given)."""
    if gen.condition == "text":
        enc = gen.text_encoder(text_encoder_path, text_encoder)
        _log.info("text encoder: %s (text_encoder=%s, args.json text_encoder_type=%r)", type(enc).__name__,
                  text_encoder, gen.args.get("text_encoder_type", "clip"))  # fmt: skip
        print(f"text encoder: {type(enc).__name__} from {text_encoder_path} (text_encoder={text_encoder})")
    out = gen.motion(texts=list(captions) or None, actions=actions, num_samples=num_samples, generator=generator,
                     num_frames=num_frames, data_root=data_root, smpl_model=smpl_model,
                     guidance_param=guidance_param)  # fmt: skip
    fps, skeleton = _OFFICIAL.get(str(gen.args.get("dataset")), (20.0, None))
    out.update(fps=fps, skeleton=skeleton)
    return out


def _humanml_joints(features: np.ndarray, data_root: Any, get_skeleton: Any) -> tuple[Any, Any, Any, float]:
    """Normalised HumanML3D features -> ``(features, joints or None, skeleton or None, fps)``; joints need the
    dataset's ``Mean.npy``/``Std.npy`` in ``data_root`` (features are then stored de-normalised)."""
    from skeleton_diffusion.representations.humanml3d import recover_from_ric

    if data_root is None:
        return features, None, None, 20.0
    root = Path(str(data_root)).expanduser()
    try:
        mean, std = (np.load(root / f, allow_pickle=False) for f in ("Mean.npy", "Std.npy"))
    except OSError as exc:
        raise InputError(f"--data-root '{root}' must hold the dataset's Mean.npy and Std.npy: {exc}") from exc
    features = features * std + mean
    return features, recover_from_ric(torch.as_tensor(features)).numpy(), get_skeleton("amass"), 20.0


def _gif_label(label: str, width: int = 40) -> str:
    """The GIF's frame-counter word for a generated motion: its caption / label (shortened), else "generated"."""
    label = " ".join(str(label).split())
    if not label:
        return "generated"
    return label if len(label) <= width else label[: width - 1].rstrip() + "…"


def generate(checkpoint: str | Path, captions: Sequence[str] = (), *, actions: Optional[Sequence[int]] = None,
             start: str = "3d", num_samples: int = 1, seed: int = 0, out: str | Path = "generated.npz",
             gif: Optional[str | Path] = None, gif_all: bool = False, device: str = "auto", use_ema: bool = False,
             text_encoder_path: Optional[str | Path] = None, text_encoder: str = "auto",
             data_root: Optional[str | Path] = None, smpl_model: Optional[str | Path] = None,
             num_frames: Optional[int] = None, guidance_param: Optional[float] = None) -> dict[str, Any]:
    """Generate and write ``out`` (+ GIF); returns ``{"output", "motion_shape", "gifs"}`` (see module doc).
    ``seed`` seeds the sampling generator, so equal seeds give equal motions."""
    from skeleton_diffusion.methods.crossdiff.joints_sampling import maybe_load_crossdiff
    from skeleton_diffusion.methods.mdm.predictor import load_mdm
    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.utils.io import atomic_write

    captions = [str(c) for c in (captions or ()) if str(c).strip()]
    if not captions and not actions:
        raise InputError("--captions (text models) or --actions (action models) needs at least one entry")
    gen = maybe_load_crossdiff(checkpoint, device, start=start, use_ema=use_ema)
    if gen is None:
        if start != "3d":
            raise InputError(f"--from {start} needs a CrossDiff checkpoint; '{checkpoint}' is not one")
        gen = load_mdm(checkpoint, device, use_ema=use_ema)
    if hasattr(gen, "t2m_generator") and getattr(gen, "text_encoder", None) is None and not hasattr(gen, "motion"):
        gen.t2m_generator(text_encoder_path, text_encoder=text_encoder)  # official CrossDiff: attach its CLIP
    dev = getattr(gen, "device", "cpu")
    g = torch.Generator(device=dev).manual_seed(int(seed))
    features = None
    if hasattr(gen, "motion"):  # a converted official MDM
        res = _official(gen, captions, actions, num_samples=int(num_samples), generator=g,
                        text_encoder_path=text_encoder_path, text_encoder=text_encoder, data_root=data_root,
                        smpl_model=smpl_model, num_frames=num_frames, guidance_param=guidance_param)  # fmt: skip
        features, motion, labels = res["features"].numpy(), res["joints"], res["labels"]
        motion = None if motion is None else motion.numpy()
        sk = None if res["skeleton"] is None or motion is None else get_skeleton(res["skeleton"])
        fps = res["fps"]
    else:
        if gen.condition == "action" or actions:
            if gen.condition != "action":
                raise InputError(f"'{checkpoint}' is a {gen.condition}-conditioned model; --actions needs an action "
                                 "MDM")  # fmt: skip
            motion = gen.generate(actions=torch.tensor([int(a) for a in actions]), num_samples=int(num_samples),
                                  generator=g).numpy()  # fmt: skip
            labels = [f"action {int(a)}" for a in actions]
        else:
            if gen.condition != "text":
                raise InputError(f"'{checkpoint}' is a {gen.condition}-conditioned MDM; generate needs a text or "
                                 "action model")  # fmt: skip
            motion = gen.generate(texts=captions, num_samples=int(num_samples), generator=g).numpy()
            labels = captions
        if hasattr(gen, "skeleton"):
            sk, fps = gen.skeleton, float(gen.fps)
        else:  # a converted official CrossDiff: normalised HumanML3D features [B, S, 196, 263]
            features, motion, sk, fps = _humanml_joints(motion, data_root, get_skeleton)
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"captions": np.asarray(labels), "fps": np.float32(fps), "start": np.asarray(start)}
    if motion is not None:
        arrays["motion"] = motion.astype(np.float32)
    if features is not None:
        arrays["features"] = features.astype(np.float32)
    if sk is not None:
        arrays["joint_names"] = np.asarray(list(sk.joint_names))
    with atomic_write(out, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    shape = tuple(motion.shape) if motion is not None else tuple(features.shape)
    what = "motion (B, S, T, J, 3) metres" if motion is not None else "features (B, S, T, F), no joints"
    print(f"wrote {out}: {what} {shape}, start={start}")
    gifs: list[Path] = []
    if gif and (sk is None or motion is None):
        print("no GIF: joint positions need --data-root (HumanML3D) / a skeleton for this dataset")
    elif gif:
        from skeleton_diffusion.viz.animation import animate_prediction

        base = Path(gif).expanduser()
        for i in range(len(labels) if gif_all else 1):
            path = base if not gif_all else base.with_name(f"{base.stem}_{i}{base.suffix}")
            word = _gif_label(labels[i])
            gifs.append(Path(animate_prediction(motion[i, 0, :1], motion[i, :, 1:], sk, out_path=path,
                                                fps=float(fps), highlight=None, max_samples=int(num_samples),
                                                title=f"generated: {labels[i]}", obs_panel=False,
                                                phase_labels=(word, word))))  # fmt: skip
            print(f"wrote {gifs[-1]}  ({labels[i]!r})")
    return {"output": out, "motion_shape": shape, "gifs": gifs}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    from skeleton_diffusion.config.cli import run_cli

    p = argparse.ArgumentParser(prog="python -m skeleton_diffusion.apps.generate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="CrossDiff or MDM (text / action) run folder / checkpoint")
    p.add_argument("--captions", nargs="+", default=[])
    p.add_argument("--actions", nargs="+", type=int, default=None, help="action class indices (action MDMs)")
    p.add_argument("--from", dest="start", choices=("3d", "2d"), default="3d",
                   help="start the reverse chain in the 3D domain, or from 2D noise (CrossDiff mixed sampling)")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="generated.npz")
    p.add_argument("--gif", default=None)
    p.add_argument("--gif-all", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--use-ema", action="store_true", help="sample with the EMA weights")
    p.add_argument("--text-encoder-path", default=None, help="official MDM: local CLIP / DistilBERT folder")
    p.add_argument("--text-encoder", default="auto", choices=("auto", "clip", "bert"))
    p.add_argument("--data-root", default=None, help="official HumanML3D/KIT MDM: folder with Mean.npy, Std.npy")
    p.add_argument("--smpl-model", default=None, help="official action MDM: SMPL .npz for joint positions")
    p.add_argument("--num-frames", type=int, default=None, help="official action MDM: frames (default args.json)")
    p.add_argument("--guidance-param", type=float, default=None)
    a = p.parse_args(argv)
    return run_cli(generate, a.checkpoint, a.captions, actions=a.actions, start=a.start, num_samples=a.num_samples,
                   seed=a.seed, out=a.out, gif=a.gif, gif_all=a.gif_all, device=a.device, use_ema=a.use_ema,
                   text_encoder_path=a.text_encoder_path, text_encoder=a.text_encoder, data_root=a.data_root,
                   smpl_model=a.smpl_model, num_frames=a.num_frames, guidance_param=a.guidance_param)


if __name__ == "__main__":
    main()
