"""Official CrossDiff checkpoints -> our run folders, and loading them back.

The official trainer saves ``torch.save(model.state_dict(), "<save_dir>/<NAME>/checkpoint/model%04d.pt")``: a
bare state dict (the positional table under both ``sequence_pos_encoder.pe`` and
``embed_timestep.sequence_pos_encoder.pe``). The run's settings are not in the file; they are the YAML that
``utils/parser_util.parse_args`` merges (``configs/base.yaml`` + the experiment yaml + CLI). :func:`convert` reads
the file with ``weights_only=True`` and the YAML with ``yaml.safe_load``, takes every size from the tensors (and
checks the YAML against them), and writes ``OUT/checkpoints/checkpoint_<epoch>.pt`` + ``OUT/config.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from skeleton_diffusion.methods.crossdiff.diffusion import (
    OFFICIAL_STEPS,
    OfficialDiffusion,
)
from skeleton_diffusion.methods.crossdiff.network import (
    DOMAIN_SIZES,
    OfficialCrossDiffNet,
)
from skeleton_diffusion.utils.errors import (
    CheckpointError,
    ConfigError,
    DataFormatError,
)

__all__ = [
    "PE_KEYS",
    "OfficialCrossDiff",
    "arch_from_state",
    "build_official",
    "convert",
    "load_official_model",
    "read_official_config",
]

PE_KEYS = ("sequence_pos_encoder.pe", "embed_timestep.sequence_pos_encoder.pe")
#: official ``configs/base.yaml`` values used when no config is given (sizes always come from the tensors)
BASE_DEFAULTS: dict[str, Any] = {"model_type": "crossdiff", "dataset": "humanml", "cond_mask_prob": 0.1,
                                 "noise_schedule": "cosine", "diffusion_steps": 1000, "sigma_small": True,
                                 "w_m2j": 1, "w_j2m": 1, "mode": "pretrain", "eval_part": "all",
                                 "classifier_free": False, "test_generatefrom2d": False, "change_idx": 300}
SKELETONS = {"humanml": "amass", "kit": "kit"}


class OfficialCrossDiff(nn.Module):
    """A converted official CrossDiff: ``.net`` (:class:`OfficialCrossDiffNet`), ``.diff3d`` / ``.diff2d``
    (:class:`OfficialDiffusion`, the official code uses one diffusion for both domains) and ``.args`` (the
    official run config)."""

    def __init__(self, net: OfficialCrossDiffNet, diffusion: OfficialDiffusion, args: Mapping[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.diff3d = diffusion
        self.diff2d = diffusion
        self.args = dict(args)


def read_official_config(path: str | Path) -> dict[str, Any]:
    """The merged official run config (one YAML mapping), read with ``yaml.safe_load``."""
    p = Path(path).expanduser()
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise CheckpointError(f"cannot read the CrossDiff config '{p}': {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise DataFormatError(f"'{p}' is not valid YAML ({str(exc).splitlines()[0]}); expected the merged "
                              "official config (configs/base.yaml + the experiment yaml)") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"'{p}' holds a {type(data).__name__}; expected a YAML mapping of the official "
                              "CrossDiff options (latent_dim, layers, layers2, cond_mask_prob, ...)")
    return data


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in state if (m := pat.match(k))})


def arch_from_state(state: Mapping[str, torch.Tensor], where: str = "state dict") -> dict[str, Any]:
    """Network sizes read from an official state dict: dataset, latent_dim, layers, layers2, num_frames, ..."""
    need = ("embed_text.weight", "p_linear_m.weight", "p_linear_j.weight", "motion_token",
            "seqTransEncoder_m.layers.0.linear1.weight", "r_encoder_m.layers.0.linear1.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise CheckpointError(f"{where} is not an official CrossDiff state dict: it lacks {missing} (has "
                              f"{len(state)} keys, e.g. {sorted(state)[:3]}); expected model####.pt written by "
                              "the official TrainLoop.save")
    f3, f2 = state["p_linear_m.weight"].shape[1] + 4, state["p_linear_j.weight"].shape[1] + 2
    dataset = next((name for name, sizes in DOMAIN_SIZES.items() if sizes == (f3, f2)), None)
    if dataset is None:
        raise CheckpointError(f"{where}: feature sizes 3D={f3}, 2D={f2} match no official dataset "
                              f"({DOMAIN_SIZES})")
    return {"dataset": dataset, "latent_dim": int(state["embed_text.weight"].shape[0]),
            "clip_dim": int(state["embed_text.weight"].shape[1]),
            "layers": _count(state, "seqTransEncoder_m.layers."), "layers2": _count(state, "decoder_m."),
            "root_layers": _count(state, "r_decoder_m."), "num_frames": int(state["motion_token"].shape[0]),
            "ff_size": int(state["seqTransEncoder_m.layers.0.linear1.weight"].shape[0]),
            "root_ff_size": int(state["r_encoder_m.layers.0.linear1.weight"].shape[0])}


def _merge_args(arch: Mapping[str, Any], config: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    args = dict(BASE_DEFAULTS)
    if config is not None:
        if config.get("model_type", "crossdiff") != "crossdiff":
            raise ConfigError(f"{where}: model_type is {config.get('model_type')!r}; this converter reads "
                              "CrossDiff runs (model_type: crossdiff); convert MDM runs with --method mdm")
        for key in ("dataset", "latent_dim", "layers", "layers2"):
            if key in config and config[key] != arch[key]:
                raise ConfigError(f"{where}: {key}={config[key]!r} but the checkpoint's tensors give "
                                  f"{key}={arch[key]!r}; pass the config of the run that wrote this checkpoint")
        args.update(config)
    args.update({k: v for k, v in arch.items()})
    return args


def build_official(args: Mapping[str, Any], *, strict_frames: bool = True) -> OfficialCrossDiff:
    """An (untrained) official CrossDiff from official args (+ the sizes of :func:`arch_from_state`)."""
    net = OfficialCrossDiffNet(
        dataset=str(args.get("dataset", "humanml")), latent_dim=int(args.get("latent_dim", 512)),
        layers=int(args.get("layers", 4)), layers2=int(args.get("layers2", 6)),
        cond_mask_prob=float(args.get("cond_mask_prob", 0.1)), num_frames=int(args.get("num_frames", 196)),
        ff_size=int(args.get("ff_size", 1024)), root_ff_size=int(args.get("root_ff_size", 512)),
        root_layers=int(args.get("root_layers", 2)), clip_dim=int(args.get("clip_dim", 512)),
        strict_frames=strict_frames)
    # official create_gaussian_diffusion fixes 1000 steps whatever diffusion_steps says
    return OfficialCrossDiff(net, OfficialDiffusion(str(args.get("noise_schedule", "cosine")), OFFICIAL_STEPS), args)


def _plain_state(obj: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]  # tolerate a wrapped state dict
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{where} holds a {type(obj).__name__}, expected the bare state dict of the "
                              "official CrossDiff (torch.save(model.state_dict(), 'model####.pt'))")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def load_official_model(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None = None, *,
                        where: str = "state dict", strict_frames: bool = True) -> OfficialCrossDiff:
    """Build the network sized from ``state`` and load it (strict; both positional-table keys must agree)."""
    arch = arch_from_state(state, where)
    args = _merge_args(arch, config, where)
    model = build_official(args, strict_frames=strict_frames)
    state = dict(state)
    present = [k for k in PE_KEYS if k in state]
    if not present:
        raise CheckpointError(f"{where} lacks the positional table ({PE_KEYS[0]})")
    for k in PE_KEYS:
        state.setdefault(k, state[present[0]])
    if not torch.equal(state[PE_KEYS[0]], state[PE_KEYS[1]]):
        raise CheckpointError(f"{where}: {PE_KEYS[0]} and {PE_KEYS[1]} differ; officially they are one table")
    try:
        model.net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where} does not fit the official CrossDiff sized {arch}: "
                              f"{str(exc).splitlines()[0]} ...") from exc
    return model


def _epoch_of(src: Path) -> int:
    m = re.search(r"(\d+)\.pt$", src.name)
    return int(m.group(1)) if m else 0


def convert(src: Path, out_dir: Path, *, config: Path | None = None, force: bool = False,
            **options: Any) -> Path:
    """Official ``model####.pt`` (+ the merged official YAML ``config``) -> our run folder ``out_dir``.

    Writes ``out_dir/checkpoints/checkpoint_<epoch>.pt`` (``meta.method = 'crossdiff'``, ``meta.representation
    = 'official'``, the official args in ``meta.official_args``) and ``out_dir/config.yaml``; returns the
    checkpoint path. Refuses a non-empty ``out_dir`` unless ``force``. Without ``config`` the sizes come from the
    tensors and the rest from the official ``configs/base.yaml`` defaults."""
    from skeleton_diffusion.checkpoints.format import make_meta, save_checkpoint
    from skeleton_diffusion.utils.io import atomic_write, safe_torch_load

    if options:
        raise ConfigError(f"convert (crossdiff) takes no options {sorted(options)}")
    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    if out_dir.is_file():
        raise CheckpointError(f"output '{out_dir}' is a file; give a folder for the converted run")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise CheckpointError(f"'{out_dir}' is not empty; choose a new output folder or pass force=True "
                              "(--force) to replace its run")
    cfg = read_official_config(config) if config is not None else None
    state = _plain_state(safe_torch_load(src), f"'{src}'")
    model = load_official_model(state, cfg, where=f"'{src}'")
    args = {k: v for k, v in model.args.items()}
    ck_dir = out_dir / "checkpoints"
    if force and ck_dir.is_dir():
        for old in ck_dir.glob("*.pt"):
            old.unlink()
    epoch = _epoch_of(src)
    meta = make_meta("diffusion", SKELETONS.get(args["dataset"], args["dataset"]), method="crossdiff",
                     representation="official", official_args=_yaml_plain(args), source=str(src),
                     epoch=epoch, dataset=str(args["dataset"]))
    out = save_checkpoint(ck_dir / f"checkpoint_{epoch}.pt", {"model": model.net}, meta)
    text = yaml.safe_dump({"method": "crossdiff", "representation": "official",
                           "official": _yaml_plain(args)}, sort_keys=False)
    with atomic_write(out_dir / "config.yaml", "w") as fh:
        fh.write(text)
    return out


def _yaml_plain(obj: Any) -> Any:
    """YAML/``weights_only``-safe copy: dicts, lists, str, int, float, bool, None (others -> str)."""
    if isinstance(obj, Mapping):
        return {str(k): _yaml_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_yaml_plain(v) for v in obj]
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    return str(obj)
