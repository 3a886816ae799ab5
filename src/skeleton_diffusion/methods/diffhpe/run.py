"""Official DiffHPE checkpoints -> our run folders, and the lifter loaded from them.

``convert(src, out_dir)`` reads an official ``model.pth`` (``torch.save(LiftingDiffusionModel.state_dict())``,
no diffusion-embedding table; a ``module.`` prefix is stripped), takes the sizes from the state dict and the
rest (schedule, steps, heads) from the official YAML (``config=`` or a ``config.yaml`` / ``.hydra/config.yaml``
beside it; else the official defaults), checks that the network loads strictly, and writes
``out_dir/checkpoints/checkpoint_<epoch>.pt`` (``{"model", "meta"}``, weights_only-loadable) and
``out_dir/config.yaml``. ``load_run`` returns a :class:`DiffHPELifter`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from skeleton_diffusion.methods.diffhpe.files import (
    OFFICIAL_DIFFUSION_DEFAULTS,
    read_error_stats,
    read_official_config,
    safe_load_official,
)
from skeleton_diffusion.methods.diffhpe.model import LiftingDiffusionModel
from skeleton_diffusion.methods.diffhpe.occlusion import ALL_MISS_RATES, official_occlusion_mask
from skeleton_diffusion.methods.diffhpe.skeleton import official_bone_sides, official_bones
from skeleton_diffusion.tasks.lifting.official import OfficialLiftingProtocol
from skeleton_diffusion.methods.diffhpe.official import (
    load_diffhpe,
    strip_module_prefix,
)
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError

__all__ = ["DiffHPELifter", "convert", "infer_config", "load_run", "new_wrapper_model"]
_log = logging.getLogger(__name__)
OPTION_KEYS = ("bones_rewired", "anisotropic_step_noise")


def infer_config(state: Mapping[str, Tensor], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sizes read from an official state dict, over ``base`` (the YAML settings or the official defaults).
    A size given by ``base`` that disagrees with the weights raises :class:`CheckpointError`."""
    cfg = dict(OFFICIAL_DIFFUSION_DEFAULTS if base is None else base)
    try:
        found: dict[str, Any] = {
            "channels": int(state["diffmodel.input_projection.weight"].shape[0]),
            "diffusion_embedding_dim": int(state["diffmodel.diffusion_embedding.projection1.weight"].shape[1]),
            "layers": len({k.split(".")[2] for k in state if k.startswith("diffmodel.residual_layers.")}),
            "seq_len": int(state["diffmodel.residual_layers.0.time_layer.gconv.W"].shape[2]),
            "num_joints": int(state["diffmodel.residual_layers.0.time_layer.gconv.W"].shape[1]),
            "use_nonlocal": any(".non_local." in k for k in state),
        }
    except KeyError as exc:
        raise CheckpointError(f"not an official DiffHPE LiftCTGCN state dict: key {exc} is missing (keys start "
                              f"with {sorted({k.split('.')[0] for k in state})})") from exc
    if any(k.startswith("conditioning.") for k in state):
        found["conditioning"] = "pt_mixste"
        found["cond_channels"] = int(state["conditioning.Spatial_patch_to_embedding.weight"].shape[0])
        found["cond_layers"] = len({k.split(".")[2] for k in state if k.startswith("conditioning.STEblocks.")})
        found["cond_encode_3d"] = "conditioning.data_enc.weight" in state
    else:
        found["conditioning"] = "raw"
    if base is not None:
        clash = {k: (base[k], v) for k, v in found.items() if k in base and k in OFFICIAL_DIFFUSION_DEFAULTS
                 and base[k] != v and k != "conditioning"}
        if clash:
            _log.warning("config values differ from the weights, the weights win: %s", clash)
    cfg.update(found)
    return cfg


def _find_config(src: Path) -> Path | None:
    folder = src if src.is_dir() else src.parent
    for cand in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if cand.is_file():
            return cand
    return None


def _epoch(folder: Path) -> int:
    params = folder / "params.pth"
    if params.is_file():
        try:
            obj = safe_load_official(params)
            return int(obj.get("epoch", 0)) if isinstance(obj, Mapping) else 0
        except Exception:  # noqa: BLE001 - the epoch is only a file-name nicety
            return 0
    return 0


def convert(src: Path, out_dir: Path, *, config: Path | None = None, force: bool = False,
            err_var: Path | None = None, err_ave: Path | None = None, **options: Any) -> Path:
    """Official DiffHPE ``model.pth`` (or its folder) -> our run folder; returns the checkpoint written.

    ``err_var``/``err_ave``: the anisotropic ``.npy`` files (default: the YAML's ``err_var_path`` /
    ``err_ave_path`` when ``anisotropic: True``); ``options``: ``bones_rewired``, ``anisotropic_step_noise``."""
    from skeleton_diffusion.checkpoints.format import make_meta, save_checkpoint

    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    model_file = src / "model.pth" if src.is_dir() else src
    unknown = set(options) - set(OPTION_KEYS)
    if unknown:
        raise ConfigError(f"unknown DiffHPE convert options {sorted(unknown)}; known: {OPTION_KEYS}")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise CheckpointError(f"output folder '{out_dir}' is not empty; pass force=True (--force) to overwrite")
    raw = safe_load_official(model_file)
    if not isinstance(raw, Mapping) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise CheckpointError(f"'{model_file}' is not a state dict of tensors (official DiffHPE model.pth)")
    state = strip_module_prefix(raw)
    cfg_path = Path(config).expanduser() if config is not None else _find_config(model_file)
    cfg = infer_config(state, read_official_config(cfg_path) if cfg_path is not None else None)
    stats: dict[str, Tensor] = {}
    var_path = err_var or (cfg.get("err_var_path") if cfg.get("anisotropic") else None)
    ave_path = err_ave or (cfg.get("err_ave_path") if cfg.get("anisotropic") else None)
    if var_path:
        stats["err_var"] = read_error_stats(var_path, cfg["num_joints"])
    if ave_path:
        stats["err_mean"] = read_error_stats(ave_path, cfg["num_joints"])
    model = load_diffhpe(state, cfg, cfg["seq_len"], **options)        # strict: proves the weights fit
    cfg = {k: v for k, v in cfg.items() if isinstance(v, (int, float, str, bool, type(None)))}
    meta = make_meta("lifting", "h36m17", method="diffhpe", official_config=cfg, seq_len=int(cfg["seq_len"]),
                     num_joints=int(cfg["num_joints"]), options={k: bool(options.get(k, False)) for k in OPTION_KEYS},
                     anisotropic=stats, converted_from={"model": str(model_file), "config": str(cfg_path or "")})
    out = out_dir / "checkpoints" / f"checkpoint_{_epoch(model_file.parent)}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    if force:
        for old in out.parent.glob("checkpoint_*.pt"):
            old.unlink()
    save_checkpoint(out, {"model": model}, meta)
    _write_config(out_dir / "config.yaml", cfg, options)
    _log.info("wrote %s and %s", out, out_dir / "config.yaml")
    return out


def _write_config(path: Path, cfg: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    import yaml

    from skeleton_diffusion.utils.io import atomic_write

    doc = {"method": "diffhpe", "task": "lifting", "seq_len": int(cfg["seq_len"]), "diffusion": dict(cfg),
           **{k: bool(options.get(k, False)) for k in OPTION_KEYS}}
    with atomic_write(path, "w") as fh:
        fh.write(yaml.safe_dump(doc, sort_keys=False))


class DiffHPELifter:
    """A converted DiffHPE: ``lift(keypoints_2d [..., T, J, 2] screen-normalised, num_samples)`` ->
    ``[..., S, T, J, 3]`` root-relative camera-frame metres. Windows of ``seq_len`` frames, non-overlapping;
    the last one is padded by repeating its final frame (the official ``drop_last=False``)."""

    def __init__(self, model: LiftingDiffusionModel, err_var: Tensor | None = None,
                 err_mean: Tensor | None = None) -> None:
        self.model = model.eval()
        self.seq_len = model.seq_len
        self.err_var, self.err_mean = err_var, err_mean

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def official_protocol(self) -> OfficialLiftingProtocol:
        """``main_h36m_lifting.py run.mode=test``: CPN detections, non-overlapping ``seq_len`` windows
        (``drop_last``), 5 samples averaged, uncentred MPJPE, Sag. sym / Seg. std on the official (not rewired
        unless ``bones_rewired``) bones, plain mean over the actions; occlusions from the official generator
        with the ``conf/data`` rates."""
        rewired = self.model.bones == official_bones(rewired=True)
        return OfficialLiftingProtocol("diffhpe", "windows", "data_2d_h36m_cpn_ft_h36m_dbb.npz", num_samples=5,
                                       frames=self.seq_len, action_average="present", mpjpe_root=None,
                                       n_mpjpe_root=0, miss_rates=dict(ALL_MISS_RATES),
                                       occlusion_mask=official_occlusion_mask, limbs=official_bones(rewired),
                                       sides=official_bone_sides(rewired), cpu_generator=True)

    @torch.no_grad()
    def lift(self, keypoints_2d: Tensor, num_samples: int = 5, *, mask: Tensor | None = None,
             generator: torch.Generator | None = None, n_steps: int | None = None) -> Tensor:
        """``mask [..., T, J]`` (1 = visible) zeroes the occluded 2D joints, as the official pipeline does."""
        x = torch.as_tensor(keypoints_2d, dtype=torch.float32)
        if x.dim() < 3 or x.shape[-1] != 2 or x.shape[-2] != 17:
            raise InputError(f"keypoints_2d must be [..., T, 17, 2] screen-normalised, got {tuple(x.shape)}")
        if mask is not None:
            x = x * torch.as_tensor(mask, dtype=x.dtype)[..., None]
        lead, t_len = x.shape[:-3], x.shape[-3]
        x = x.reshape(-1, t_len, 17, 2)
        n_win = -(-t_len // self.seq_len)
        pad = n_win * self.seq_len - t_len
        if pad:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1, -1)], dim=1)
        windows = x.reshape(-1, self.seq_len, 17, 2).permute(0, 3, 2, 1).to(self.device)   # [N, 2, J, L]
        out = self.model.impute(windows, num_samples, err_var=self.err_var, err_mean=self.err_mean,
                                n_steps=n_steps, generator=generator)                     # [N, S, 3, J, L]
        out = out.permute(0, 1, 4, 3, 2).reshape(x.shape[0], n_win, num_samples, self.seq_len, 17, 3)
        out = out.permute(0, 2, 1, 3, 4, 5).reshape(x.shape[0], num_samples, n_win * self.seq_len, 17, 3)
        return out[:, :, :t_len].reshape(*lead, num_samples, t_len, 17, 3).cpu()


def _resolve(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted((path / "checkpoints").glob("checkpoint_*.pt")) if path.is_dir() else []
    if not found:
        raise CheckpointError(f"no DiffHPE checkpoint at '{path}' (expected a file or a run folder with "
                              "checkpoints/checkpoint_*.pt; convert the official model.pth first)")
    return found[-1]


def load_run(run_dir_or_checkpoint: Path | str, device: str = "auto", **options: Any) -> DiffHPELifter:
    """A run folder / checkpoint written by :func:`convert` -> :class:`DiffHPELifter` on ``device``."""
    from skeleton_diffusion.utils.io import safe_torch_load

    path = _resolve(Path(run_dir_or_checkpoint).expanduser())
    ckpt = safe_torch_load(path)
    meta = ckpt.get("meta") if isinstance(ckpt, Mapping) else None
    if not isinstance(meta, Mapping) or meta.get("method") != "diffhpe":
        raise CheckpointError(f"'{path}' is not a converted DiffHPE checkpoint (meta.method = "
                              f"{meta.get('method') if isinstance(meta, Mapping) else None!r})")
    opts = {**dict(meta.get("options", {})), **options}
    model = load_diffhpe(ckpt["model"], meta["official_config"], int(meta["seq_len"]), **opts)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    stats = meta.get("anisotropic") or {}
    return DiffHPELifter(model.to(dev), stats.get("err_var"), stats.get("err_mean"))


def new_wrapper_model(config: Mapping[str, Any], seq_len: int, mixste_checkpoint: Path | str,
                      **options: Any) -> LiftingDiffusionModel:
    """A fresh DiffHPE-Wrapper (``conditioning: pt_mixste``) whose frozen conditioner is loaded from an official
    ``prt_mixste_*.pt`` (key ``model_pos``), ready for training."""
    from skeleton_diffusion.methods.diffhpe.mixste import load_mixste_state

    cfg = {**OFFICIAL_DIFFUSION_DEFAULTS, **dict(config), "conditioning": "pt_mixste"}
    model = LiftingDiffusionModel(cfg, seq_len, **options)
    model.conditioning.load_pretrained(load_mixste_state(mixste_checkpoint))
    return model
