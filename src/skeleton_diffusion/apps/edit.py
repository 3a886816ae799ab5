"""Edit motion with a trained MDM by inpainting in motion space (prefix completion, in-betweening, body-part
editing): the known part of x_t is replaced by its forward-noised copy at every step, and the result keeps it
exactly.

    python -m skeleton_diffusion.apps.edit checkpoint_path=<MDM run or .pt> input=motion.npy mode=inbetween \\
        keep=[0,1,2,117,118,119] output=edit.npz gif=edit.gif
    python -m skeleton_diffusion.apps.edit checkpoint_path=<converted official MDM> input=<new_joint_vecs/X.npy> \\
        data_root=<HumanML3D> mode=upper_body text="a person waves" text_encoder_path=<CLIP folder>

Converted official MDM runs edit HumanML3D/KIT features ``[T, F]`` as ``sample/edit.py`` (the known part overwrites
x̂₀): ``mode`` = inbetween | prefix | upper_body (``joints`` is read as upper_body); ``edited`` holds the joints
``recover_from_ric`` gives, ``features`` the de-normalised features, ``known_mask [T, F]``.

Options: ``configs/edit.yaml``. ``output`` (``.npz``): ``edited [S, T, J, 3]`` metres, ``input``,
``known_mask [T, J]`` (True = kept), ``joint_names``, ``fps``, ``mode``; loads with ``numpy.load`` (no pickle).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from omegaconf import DictConfig

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, InputError

_log = logging.getLogger("skeleton_diffusion.apps.edit")


def load_motion(path: str | Path, *, features: bool = False) -> np.ndarray:
    """``[T, J, 3]`` float32 (``features=True``: ``[T, F]``) from an ``.npy`` or ``.npz`` (key ``motion``, or its
    only array), no pickle; an empty or unreadable file -> :class:`DataFormatError` naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"input file not found: '{path}'")
    if path.stat().st_size == 0:
        raise DataFormatError(f"input file '{path}' is empty; expected a motion [T, J, 3] metres (.npy, or .npz with "
                              "key 'motion'), or for an official MDM a features file [T, F] (.npy)")  # fmt: skip
    try:
        data = np.load(path, allow_pickle=False)
    except (EOFError, ValueError, OSError) as exc:
        raise DataFormatError(f"input file '{path}' is not a readable .npy/.npz array ({type(exc).__name__}: {exc}); "
                              "expected a motion [T, J, 3] metres (.npy, or .npz with key 'motion')") from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.files)
            if "motion" not in keys and len(keys) != 1:
                raise DataFormatError(f"'{path}' has arrays {keys}; name the motion 'motion'")
            arr = data["motion" if "motion" in keys else keys[0]]
    else:
        arr = data
    arr = np.asarray(arr, dtype=np.float32)
    if features:
        if arr.ndim != 2:
            raise DataFormatError(f"'{path}': an official MDM edits features [T, F] (a new_joint_vecs file); got "
                                  f"shape {arr.shape}")  # fmt: skip
        return arr
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataFormatError(f"'{path}': motion must be [T, J, 3] metres, got shape {arr.shape}")
    return arr


def _keep_list(keep: Any) -> list[int]:
    if keep is None:
        raise ConfigError("keep=[...] is required (frame or joint indices)")
    if isinstance(keep, (int, float)):
        return [int(keep)]
    return [int(k) for k in keep]


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load the MDM, edit ``input`` and write ``output`` (+ ``gif``); returns a summary dict."""
    from skeleton_diffusion.methods.mdm.predictor import MDMPredictor, edit_mask
    from skeleton_diffusion.methods.registry import load_model
    from skeleton_diffusion.utils.io import atomic_write

    predictor = load_model(str(cfg.checkpoint_path), device=cfg.get("device", "auto"),
                           use_ema=bool(cfg.get("use_ema", False)))
    if hasattr(predictor, "motion") and hasattr(predictor, "edit"):  # a converted official MDM
        return _run_official(cfg, predictor)
    if not isinstance(predictor, MDMPredictor):
        raise ConfigError(f"'{cfg.checkpoint_path}' is not an MDM checkpoint; editing needs one "
                          "(train with `python train_diffusion.py model=mdm dataset=<name>`)")
    motion = load_motion(cfg.input)
    mode = str(cfg.mode)
    keep = _keep_list(cfg.keep)
    actions = None if cfg.get("action") is None else [int(cfg.action)]
    texts = None if cfg.get("text") is None else [str(cfg.text)]
    gp = cfg.get("guidance_param")
    edited = predictor.edit(motion, mode, keep, num_samples=int(cfg.num_samples),
                            seed=None if cfg.get("seed") is None else int(cfg.seed), texts=texts, actions=actions,
                            guidance_param=None if gp is None else float(gp))
    sk = predictor.skeleton
    past = predictor.condition == "past"
    t_edit = edited.shape[1]
    mask = edit_mask(mode, t_edit, edited.shape[2], keep).numpy()   # [T, J] over the written joints
    out = Path(str(cfg.output)).expanduser()
    arrays = {"edited": edited.astype(np.float32), "input": motion, "known_mask": mask,
              "joint_names": np.asarray(list(sk.joint_names), dtype=str), "fps": np.float32(predictor.fps),
              "mode": np.asarray(mode), "keep": np.asarray(keep, dtype=np.int64)}
    with atomic_write(out, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    print(f"wrote {out}: edited {tuple(edited.shape)} metres (S, T, J, 3), mode={mode}, keep={keep}")
    summary: dict[str, Any] = {"output": out, "edited_shape": tuple(edited.shape), "gif": None}
    if cfg.get("gif"):
        from skeleton_diffusion.viz.animation import animate_prediction

        obs = motion[: predictor.obs_length] if past else motion[:1]
        gt = motion[predictor.obs_length:] if past else motion
        written = animate_prediction(obs, edited, sk, out_path=Path(str(cfg.gif)).expanduser(), gt=gt,
                                     fps=float(cfg.get("gif_fps") or predictor.fps), up=str(cfg.get("gif_up", "z")),
                                     highlight=None, max_samples=int(cfg.num_samples))
        summary["gif"] = Path(written)
        print(f"wrote {written}")
    return summary


def _run_official(cfg: DictConfig, run: Any) -> dict[str, Any]:
    """Official editing (``sample/edit.py``) of a HumanML3D/KIT features file; writes ``output``."""
    import torch

    from skeleton_diffusion.utils.io import atomic_write

    feats = load_motion(cfg.input, features=True)
    if not cfg.get("data_root"):
        raise ConfigError("an official MDM edits normalised features: set data_root=<HumanML3D folder with Mean.npy, "
                          "Std.npy>")  # fmt: skip
    mode = {"joints": "upper_body"}.get(str(cfg.mode), str(cfg.mode))
    keep = [] if mode == "upper_body" else _keep_list(cfg.keep)
    texts = None
    if cfg.get("text") is not None:
        enc = run.text_encoder(cfg.get("text_encoder_path"), str(cfg.get("text_encoder", "auto")))
        print(f"text encoder: {type(enc).__name__} from {cfg.get('text_encoder_path')}")
        texts = [str(cfg.text)]
    gp = cfg.get("guidance_param")
    g = torch.Generator(device=run.device).manual_seed(int(cfg.seed)) if cfg.get("seed") is not None else None
    res = run.edit(feats, mode, keep, data_root=cfg.data_root, texts=texts, num_samples=int(cfg.num_samples),
                   generator=g, guidance_param=None if gp is None else float(gp))  # fmt: skip
    out = Path(str(cfg.output)).expanduser()
    arrays = {"edited": res["joints"].numpy().astype(np.float32), "features": res["features"].numpy(),
              "input": feats, "known_mask": res["known_mask"].numpy(), "mode": np.asarray(mode),
              "keep": np.asarray(keep, dtype=np.int64), "fps": np.float32(20.0)}  # fmt: skip
    with atomic_write(out, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    print(f"wrote {out}: edited {tuple(arrays['edited'].shape)} metres (S, T, J, 3), mode={mode}, keep={keep}")
    return {"output": out, "edited_shape": tuple(arrays["edited"].shape), "gif": None}


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """``configs/edit.yaml`` with command-line overrides (``key=value``)."""
    from skeleton_diffusion.config import compose_cli_config

    return compose_cli_config("edit", list(overrides))


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    from skeleton_diffusion.config.cli import run_config_cli

    return run_config_cli(argv, "edit", __doc__, lambda args: run(compose_config(args)))


if __name__ == "__main__":  # pragma: no cover
    main()
