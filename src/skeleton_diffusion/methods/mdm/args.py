"""Official ``args.json`` handling: defaults for keys older files lack, dataset dimensions, network kwargs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

__all__ = ["OFFICIAL_DEFAULTS", "DATASET_DIMS", "complete_args", "read_args_json", "cond_mode", "network_kwargs"]

#: official ``utils/parser_util.py`` defaults (commit d4fd88c) of the keys that shape the model / diffusion
OFFICIAL_DEFAULTS: dict[str, Any] = {
    "dataset": "humanml", "arch": "trans_enc", "text_encoder_type": "clip", "emb_trans_dec": False,
    "layers": 8, "latent_dim": 512, "cond_mask_prob": 0.1, "mask_frames": False, "unconstrained": False,
    "noise_schedule": "cosine", "diffusion_steps": 1000, "sigma_small": True,
    "lambda_rcxyz": 0.0, "lambda_vel": 0.0, "lambda_fc": 0.0, "lambda_target_loc": 0.0,
    "pos_embed_max_len": 5000, "context_len": 0, "pred_len": 0, "use_ema": False, "num_frames": 60,
    "multi_target_cond": False, "emb_policy": "add", "gen_guidance_param": 2.5, "avg_model_beta": 0.9999,
}

#: dataset -> (njoints, nfeats, data_rep, default number of actions)
DATASET_DIMS: dict[str, tuple[int, int, str, int]] = {
    "humanml": (263, 1, "hml_vec", 1), "kit": (251, 1, "hml_vec", 1),
    "humanact12": (25, 6, "rot6d", 12), "uestc": (25, 6, "rot6d", 40),
}


def complete_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with the official defaults filled in for missing keys (older ``args.json`` files) and the
    official ``pred_len = context_len`` rule when only ``context_len`` is given."""
    out = dict(OFFICIAL_DEFAULTS)
    out.update(dict(args))
    if out["dataset"] not in DATASET_DIMS:
        raise ConfigError(f"args.json 'dataset' must be one of {sorted(DATASET_DIMS)}, got {out['dataset']!r}")
    if int(out.get("context_len", 0)) > 0 and int(out.get("pred_len", 0)) == 0:
        out["pred_len"] = int(out["context_len"])
    return out


def read_args_json(path: Path) -> dict[str, Any]:
    """Read an official ``args.json`` (plain JSON) and complete it with :func:`complete_args`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no args.json at '{path}': the official loader reads the args.json written by "
                              "train_mdm.py beside the modelNNNNNNNNN.pt file; copy it there")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"'{path}' is not a readable JSON file ({exc}); expected the official args.json")
    if not isinstance(data, dict):
        raise CheckpointError(f"'{path}' holds a {type(data).__name__}; expected a JSON object (official args)")
    return complete_args(data)


def cond_mode(args: Mapping[str, Any]) -> str:
    """Official ``get_cond_mode``: ``no_cond`` (unconstrained), ``text`` (humanml/kit) or ``action``."""
    if args.get("unconstrained", False):
        return "no_cond"
    return "text" if args["dataset"] in ("humanml", "kit") else "action"


def network_kwargs(args: Mapping[str, Any], *, num_actions: Optional[int] = None) -> dict[str, Any]:
    """Keyword arguments of :class:`~skeleton_diffusion.methods.mdm.network.OfficialMDM` for official args."""
    args = complete_args(args)
    njoints, nfeats, _rep, n_act = DATASET_DIMS[args["dataset"]]
    bert = args["text_encoder_type"] == "bert"
    return dict(njoints=njoints, nfeats=nfeats, cond_mode=cond_mode(args), arch=args["arch"],
                latent_dim=int(args["latent_dim"]), num_layers=int(args["layers"]), ff_size=1024, num_heads=4,
                dropout=0.1, activation="gelu", num_actions=int(num_actions or n_act),
                clip_dim=768 if bert else 512, cond_mask_prob=float(args["cond_mask_prob"]),
                mask_frames=bool(args["mask_frames"]), context_len=int(args["context_len"]),
                pred_len=int(args["pred_len"]), emb_trans_dec=bool(args["emb_trans_dec"]),
                pos_embed_max_len=int(args["pos_embed_max_len"]), text_encoder_type=args["text_encoder_type"],
                num_frames=196 if args["dataset"] in ("humanml", "kit") else int(args.get("num_frames", 60)))
