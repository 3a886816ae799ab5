"""Official MDM checkpoints -> our run folders, and loading a run (or an official file) for sampling.

Official layout: ``<dir>/modelNNNNNNNNN.pt`` written by ``TrainLoop.save`` (a flat state dict incl. both
positional tables ``sequence_pos_encoder.pe`` / ``embed_timestep.sequence_pos_encoder.pe``, no ``clip_model.*``;
or ``{'model': ..., 'model_avg': ...}`` with ``--use_ema``) and ``<dir>/args.json`` (``vars(args)``).
Our run folder: ``OUT/checkpoints/checkpoint_<step>.pt`` (``model`` [+ ``model_avg``] state dicts, ``meta``
with ``method='mdm'``, ``variant='official'`` and the completed official args) + ``OUT/config.yaml``.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
import yaml
from torch import nn

from skeleton_diffusion.methods.mdm.args import complete_args, read_args_json
from skeleton_diffusion.methods.mdm.gaussian import OfficialMDMDiffusion, SectionCounts
from skeleton_diffusion.methods.mdm.editing import official_edit
from skeleton_diffusion.methods.mdm.generation import MDMT2MGenerator, dataset_stats, official_motion
from skeleton_diffusion.methods.mdm.network import OfficialMDM
from skeleton_diffusion.methods.mdm.prefix import OfficialPrefixPredictor
from skeleton_diffusion.checkpoints.format import make_meta, resolve_checkpoint, save_checkpoint
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.utils.io import safe_torch_load

__all__ = ["convert", "load_run", "load_model", "OfficialMDMRun", "read_official", "build_network",
           "build_diffusion"]

_log = logging.getLogger(__name__)
_PE_KEYS = ("sequence_pos_encoder.pe", "embed_timestep.sequence_pos_encoder.pe")
_SKELETON = {"humanml": "humanml3d", "kit": "kit", "humanact12": "humanact12", "uestc": "uestc"}


def _clean(state: Mapping[str, Any], source: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"'{source}' {what} is not a state dict of tensors (official TrainLoop.save format)")
    return {k: v for k, v in state.items() if not k.startswith("clip_model.")}


def read_official(src: Union[str, Path], config: Optional[Union[str, Path]] = None
                  ) -> tuple[dict[str, Any], dict[str, torch.Tensor], Optional[dict[str, torch.Tensor]]]:
    """``(completed args, weights, EMA weights or None)`` of an official ``modelN.pt`` (+ ``args.json`` beside it,
    or ``config``). CLIP weights are dropped (the text encoder is external); the positional tables are kept
    (see :func:`build_network`)."""
    src = Path(src).expanduser()
    if src.is_dir():
        found = sorted(src.glob("model*.pt"))
        if not found:
            raise CheckpointError(f"'{src}' holds no official modelNNNNNNNNN.pt file")
        src = found[-1]
    args = read_args_json(Path(config) if config is not None else src.parent / "args.json")
    loaded = safe_torch_load(src)
    if isinstance(loaded, Mapping) and ("model" in loaded or "model_avg" in loaded) and \
            not isinstance(loaded.get("model", loaded.get("model_avg")), torch.Tensor):
        weights = loaded.get("model")
        ema = loaded.get("model_avg")
        weights = _clean(weights if weights is not None else ema, src, "['model']")
        ema = None if ema is None else _clean(ema, src, "['model_avg']")
    else:
        weights, ema = _clean(loaded, src, "contents"), None
    return args, weights, ema


def _num_actions(weights: Mapping[str, torch.Tensor]) -> Optional[int]:
    table = weights.get("embed_action.action_embedding")
    return None if table is None else int(table.shape[0])


def build_network(args: Mapping[str, Any], weights: Optional[Mapping[str, torch.Tensor]] = None,
                  source: Union[str, Path] = "<weights>") -> OfficialMDM:
    """The official network for ``args``, loaded strictly from ``weights``.

    Positional tables: the official loader deletes them and recomputes the sin/cos table, whose last bits depend
    on the machine's ``sin``/``exp`` kernels (up to 3e-5 in the first 1000 rows). A stored table of the built
    shape is the exact one the weights were trained with, so it is kept; otherwise (absent, or another
    ``pos_embed_max_len``) the recomputed table is used, as officially."""
    net = OfficialMDM.from_official_args(args, num_actions=None if weights is None else _num_actions(weights))
    if weights is not None:
        expected = {k for k in net.state_dict() if k not in _PE_KEYS}
        got = {k for k in weights if k not in _PE_KEYS}
        if expected != got:
            missing, extra = sorted(expected - got), sorted(got - expected)
            raise CheckpointError(f"weights in '{source}' do not match the MDM its args.json describes "
                                  f"(dataset={args.get('dataset')!r}, arch={args.get('arch')!r}, "
                                  f"layers={args.get('layers')}): missing {missing[:4]}, unexpected {extra[:4]}")
        try:
            own = net.state_dict()
            keep = {k: v for k, v in weights.items() if k not in _PE_KEYS or v.shape == own[k].shape}
            net.load_state_dict(keep, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"weights in '{source}' do not fit the network of its args.json "
                                  f"(latent_dim={args.get('latent_dim')}): {str(exc).splitlines()[-1].strip()}")
    return net


def build_diffusion(net: nn.Module, args: Mapping[str, Any], *, timestep_respacing: SectionCounts = None
                    ) -> OfficialMDMDiffusion:
    """Official ``create_gaussian_diffusion(args)`` around ``net`` (respacing off unless asked)."""
    args = complete_args(args)
    return OfficialMDMDiffusion(net, diffusion_steps=int(args["diffusion_steps"]),
                                noise_schedule=str(args["noise_schedule"]), sigma_small=bool(args["sigma_small"]),
                                timestep_respacing=timestep_respacing, lambda_vel=float(args["lambda_vel"]),
                                lambda_rcxyz=float(args["lambda_rcxyz"]), lambda_fc=float(args["lambda_fc"]))


def convert(src: Path, out_dir: Path, *, config: Optional[Path] = None, force: bool = False,
            **options: Any) -> Path:
    """Convert an official ``modelNNNNNNNNN.pt`` (+ ``args.json`` beside it, or ``config``) into the run folder
    ``out_dir``; returns the checkpoint written. EMA files keep both weight sets (``model``, ``model_avg``)."""
    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise CheckpointError(f"output folder '{out_dir}' is not empty; pass force=True (--force) to replace it")
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    args, weights, ema = read_official(src, config)
    if options:
        args.update({k: v for k, v in options.items() if k in args})
    net = build_network(args, weights, src)
    objects: dict[str, Any] = {"model": net}
    if ema is not None:
        objects["model_avg"] = build_network(args, ema, src)
    match = re.search(r"(\d+)", src.stem)
    step = int(match.group(1)) if match else 0
    meta = make_meta("diffusion", _SKELETON[args["dataset"]], method="mdm", variant="official",
                     official_args=dict(args), has_ema=ema is not None, source=str(src.name),
                     num_params=sum(p.numel() for p in net.parameters()))
    out = save_checkpoint(out_dir / "checkpoints" / f"checkpoint_{step}.pt", objects, meta)
    (out_dir / "config.yaml").write_text(yaml.safe_dump({"method": "mdm", "variant": "official",
                                                         "official_args": dict(args)}, sort_keys=True))
    return out


@dataclass
class OfficialMDMRun:
    """A loaded MDM: ``diffusion`` (:class:`OfficialMDMDiffusion`; ``diffusion.model`` is the network),
    ``args`` (official), ``device``, ``checkpoint``."""

    diffusion: OfficialMDMDiffusion
    args: dict[str, Any]
    device: torch.device
    checkpoint: Path
    use_ema: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> OfficialMDM:
        return self.diffusion.model  # type: ignore[return-value]

    @property
    def guidance_param(self) -> Optional[float]:
        """Default CFG scale: the official 2.5 for text models trained with condition dropping, else None."""
        if self.model.cond_mode == "no_cond" or self.model.cond_mask_prob <= 0:
            return None
        return float(self.args.get("gen_guidance_param", 2.5))

    @torch.no_grad()
    def sample(self, batch_size: int, x_cond: Any = None, **kwargs: Any) -> torch.Tensor:
        """:func:`~skeleton_diffusion.methods.mdm.sampling.sample_motion` with this run's defaults
        (``guidance_param`` official, ``clip_denoised=False`` as ``sample/generate.py``) -> ``[B, J, T*C]``."""
        from skeleton_diffusion.methods.mdm.sampling import sample_motion

        kwargs.setdefault("guidance_param", self.guidance_param if x_cond is not None else None)
        self.model.eval()
        return sample_motion(self.diffusion, batch_size, x_cond=x_cond, **kwargs)

    @property
    def condition(self) -> str:
        """``text`` | ``action`` | ``no_cond`` (official ``cond_mode``)."""
        return str(self.model.cond_mode)

    def text_encoder(self, path: Union[str, Path, None] = None, kind: str = "auto") -> nn.Module:
        """MDM's text encoder (``kind='auto'``: the run's ``text_encoder_type``, CLIP or DistilBERT) from the local
        folder ``path`` (default: ``extra['text_encoder_path']``), on the run's device; cached."""
        from skeleton_diffusion.nn.text_encoders import build_mdm_text_encoder

        kind = str(self.args.get("text_encoder_type", "clip")) if kind in (None, "auto") else str(kind)
        path = path or self.extra.get("text_encoder_path")
        if path is None and self.extra.get("_encoder_key", (None,))[0] == kind:
            return self.extra["_encoder"]  # the encoder built before (e.g. by the app that logged it)
        key = (kind, str(path))
        if self.extra.get("_encoder_key") != key:
            _log.info("MDM text encoder: %s from '%s' (text_encoder_type=%r in args.json)", kind, path,
                      self.args.get("text_encoder_type", "clip"))  # fmt: skip
            self.extra["_encoder"] = build_mdm_text_encoder(kind, path, str(self.args["dataset"])).to(self.device)
            self.extra["_encoder_key"] = key
        return self.extra["_encoder"]

    def t2m_generator(self, text_encoder_path: Union[str, Path, None] = None, *, text_encoder: str = "auto",
                      **options: Any) -> MDMT2MGenerator:
        """The generator the official T2M evaluation calls (:class:`~.generation.MDMT2MGenerator`; options:
        ``guidance_param``, ``steps``, ``eta``, ``max_batch``, ``seed``)."""
        return MDMT2MGenerator(self, self.text_encoder(text_encoder_path, text_encoder), **options)

    def motion(self, **kwargs: Any) -> dict[str, Any]:
        """Captions / action indices -> features and joints for the apps (:func:`~.generation.official_motion`)."""
        return official_motion(self, **kwargs)

    def edit(self, features: Any, mode: str, keep: Any = (), **kwargs: Any) -> dict[str, Any]:
        """Official editing of HumanML3D/KIT features (:func:`~.editing.official_edit`)."""
        return official_edit(self, features, mode, keep, **kwargs)

    def as_predictor(self, *, data_root: Any = None, text: str = "", text_encoder_path: Any = None,
                     steps: SectionCounts = None, guidance_param: Optional[float] = None,
                     eta: float = 1.0) -> OfficialPrefixPredictor:
        """A prefix-completion HumanML3D run as a motion predictor (:class:`~.prefix.OfficialPrefixPredictor`;
        ``data_root``: folder with the dataset's ``Mean.npy``/``Std.npy``). Other runs: ``ConfigError`` (not a
        prediction model, use generate)."""
        if not getattr(self.model, "is_prefix_comp", False):
            return OfficialPrefixPredictor(self, torch.zeros(0), torch.zeros(0))  # raises the ConfigError
        if data_root is None:
            raise ConfigError(f"'{self.checkpoint}' is an official prefix MDM: its features are normalised with the "
                              "dataset's Mean.npy/Std.npy; pass data_root=<HumanML3D folder holding them>")
        if text_encoder_path:
            self.extra["text_encoder_path"] = text_encoder_path
        mean, std = dataset_stats(data_root)
        return OfficialPrefixPredictor(self, mean, std, text=text, steps=steps, guidance_param=guidance_param,
                                       eta=eta)

    def generate(self, captions: Any, lengths: Any = None, num_samples: int = 1, *,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalised features ``[B, S, T, F]`` for ``captions`` (text models; the text encoder folder from
        ``extra['text_encoder_path']``) — the official T2M evaluation's generator interface."""
        return self.t2m_generator().generate(captions, lengths, num_samples, generator=generator)


def load_run(run_dir_or_checkpoint: Union[str, Path], device: Union[str, torch.device] = "auto", *,
             use_ema: bool = False, timestep_respacing: SectionCounts = None, config: Optional[Path] = None,
             **options: Any) -> OfficialMDMRun:
    """Load a converted run folder / checkpoint, or an official ``modelN.pt`` directly -> :class:`OfficialMDMRun`.
    ``use_ema=True`` takes ``model_avg`` (what ``sample/generate.py`` uses for EMA runs)."""
    path = Path(run_dir_or_checkpoint).expanduser()
    dev = resolve_device(device)
    if path.is_file() and path.with_name("args.json").is_file() and path.name.startswith("model"):
        args, weights, ema = read_official(path, config)
    else:
        path = resolve_checkpoint(path)
        ckpt = safe_torch_load(path)
        meta = ckpt.get("meta") if isinstance(ckpt, Mapping) else None
        if not isinstance(meta, Mapping) or meta.get("method") != "mdm" or meta.get("variant") != "official":
            raise CheckpointError(f"'{path}' is not a converted official MDM checkpoint (meta.method='mdm', "
                                  "meta.variant='official'); convert it with convert --method mdm")
        args = complete_args(meta["official_args"])
        weights = _clean(ckpt["model"], path, "['model']")
        ema = _clean(ckpt["model_avg"], path, "['model_avg']") if "model_avg" in ckpt else None
    if use_ema and ema is None:
        raise CheckpointError(f"'{path}' holds no EMA weights (model_avg); it was trained without --use_ema")
    net = build_network(args, ema if use_ema else weights, path)
    diffusion = build_diffusion(net, args, timestep_respacing=timestep_respacing).to(dev)
    net.eval()
    extra = {"text_encoder_path": options["text_encoder_path"]} if options.get("text_encoder_path") else {}
    return OfficialMDMRun(diffusion=diffusion, args=args, device=dev, checkpoint=path, use_ema=use_ema, extra=extra)


#: alias under the generic loader name
load_model = load_run
