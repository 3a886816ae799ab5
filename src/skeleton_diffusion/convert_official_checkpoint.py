"""Convert the official SkeletonDiffusion release (Hugging Face ``SkeletonDiffusion/ModelCheckpoints``) to our format.

    python -m skeleton_diffusion.convert_official_checkpoint \\
        trained_models/hmp/amass/diffusion/checkpoints/cvpr_release.pt output/official/amass
    python eval.py dataset=amass checkpoint_path=output/official/amass stats_mode=probabilistic
    python -m skeleton_diffusion.predict checkpoint_path=output/official/amass input=obs.npy output=pred.npz

The official release keeps one folder per stage, ``<ds>/{autoencoder,diffusion}/{config.yaml,checkpoints/*.pt}``,
where ``config.yaml`` is the *flat* official run config (Hydra groups merged into one level). A diffusion
checkpoint needs its autoencoder: it is taken from ``--autoencoder``, else from the diffusion config's
``pretrained_autoencoder_path``, else from the sibling ``../autoencoder/checkpoints/`` folder.

The result is ONE self-contained diffusion checkpoint ``OUT_DIR/checkpoints/checkpoint_<iteration>.pt``
(``model`` = online diffusion weights, ``autoencoder``, ``ema`` = EMA weights, ``meta`` with the full config)
plus ``OUT_DIR/config.yaml``, i.e. the layout of our own run folders. ``--stage autoencoder`` converts an
autoencoder file alone into an autoencoder run folder (usable as ``model.pretrained_autoencoder_path``).

Safety: official files are loaded with ``torch.load(weights_only=True)``. They hold numpy RNG states, so the
safe unpickler is additionally allowed exactly these numpy classes (:data:`OFFICIAL_NUMPY_GLOBALS`):
``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` and ``numpy.dtypes.UInt32DType``.
Nothing is ever unpickled without ``weights_only``; any other Python object makes the load fail.

Config: the flat official configs are mapped key-by-key onto our nested config (same key names; see
:func:`overlay_flat`). Without them, the paper recipe of ``--dataset`` is used (AMASS / AMASS-MANO:
``pose_box_size`` 1.2 and 2 encoder layers; H36M / FreeMan: 1.5 and 1 layer). Structural sizes (encoder /
decoder layers, hidden and latent widths) are always checked against the weights, and every converted model is
rebuilt and loaded (strictly) before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from .utils.errors import CheckpointError, ConfigError

_log = logging.getLogger("skeleton_diffusion.convert")

DATASETS = ("amass", "amass-mano", "h36m", "freeman")

#: Hydra overrides of the paper recipes (official README command lines) per dataset.
RECIPES: dict[str, dict[str, list[str]]] = {
    "amass": {
        "autoencoder": ["task.pose_box_size=1.2", "model.autoenc_arch.enc_num_layers=2", "model.num_epochs=300"],
        "diffusion": ["model.num_epochs=150", "model.lr_scheduler_kwargs.warmup_duration=75"],
    },
    "amass-mano": {
        "autoencoder": ["task.pose_box_size=1.2", "model.autoenc_arch.enc_num_layers=2", "model.num_epochs=300"],
        "diffusion": ["model.num_epochs=150", "model.lr_scheduler_kwargs.warmup_duration=75"],
    },
    "h36m": {
        "autoencoder": ["task.pose_box_size=1.5", "model.autoenc_arch.enc_num_layers=1", "model.num_epochs=200"],
        "diffusion": ["model.num_epochs=100", "model.diffusion_arch.attn_heads=8",
                      "model.lr_scheduler_kwargs.gamma_decay=0.85", "model.lr_scheduler_kwargs.warmup_duration=25"],
    },
    "freeman": {
        "autoencoder": ["task.pose_box_size=1.5", "model.autoenc_arch.enc_num_layers=1", "model.num_epochs=200"],
        "diffusion": ["model.num_epochs=200", "model.lr_scheduler_kwargs.gamma_decay=0.85",
                      "model.lr_scheduler_kwargs.warmup_duration=25", "model.lr_scheduler_kwargs.update_every=5"],
    },
}

# our object nodes (hydra `_target_` blocks) are derived from the plain keys and never taken from official files
_OBJECT_NODES = frozenset({"network", "diffusion", "optimizer"})


# ---------------------------------------------------------------------------------------------- safe loading
def _numpy_globals() -> list[Any]:
    """The numpy classes an official checkpoint's ``random_states`` needs (and nothing else)."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allowed: list[Any] = [
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),   # files written with numpy 1.x
        (_reconstruct, "numpy._core.multiarray._reconstruct"),  # files written with numpy 2.x
        np.ndarray,
        np.dtype,
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "UInt32DType"):
        allowed.append(dtypes.UInt32DType)
    return allowed


#: Names of the extra globals allowed when reading official files (for messages and docs).
OFFICIAL_NUMPY_GLOBALS = ("numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
                          "numpy.dtypes.UInt32DType")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "Unsupported global" in line or "GLOBAL" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_official_file(path: str | Path) -> dict[str, Any]:
    """Load an official (or our) checkpoint safely: ``weights_only=True``, retried with only the numpy RNG-state
    classes allow-listed. Raises :class:`CheckpointError` naming the file for anything else."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: '{path}'")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        if not isinstance(exc, __import__("pickle").UnpicklingError) and "weights_only" not in str(exc):
            raise CheckpointError(f"could not read '{path}': {_first_line(exc)} (corrupt or not a torch file?)") from exc
        _log.info("'%s' holds numpy objects (official RNG states); loading with weights_only=True and only these "
                  "numpy classes allow-listed: %s", path.name, ", ".join(OFFICIAL_NUMPY_GLOBALS))
        try:
            with torch.serialization.safe_globals(_numpy_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc2:  # noqa: BLE001
            raise CheckpointError(
                f"refusing to load '{path}': it contains Python objects beyond tensors, containers and the numpy "
                f"RNG-state classes ({_first_line(exc2)}). Only weights_only-safe files are accepted; this is not "
                "an official SkeletonDiffusion checkpoint, or it was modified.") from exc2
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, expected a checkpoint dictionary")
    return dict(obj)


def _state_dict(ckpt: Mapping[str, Any], path: Path, what: str) -> dict[str, torch.Tensor]:
    state = ckpt.get("model")
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"'{path}' has no 'model' state dict (top-level keys: {sorted(map(str, ckpt))}); "
                              f"expected an official {what} checkpoint")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"'{path}': 'model' entries {bad[:3]} are not tensors")
    return {str(k): v for k, v in state.items()}


def detect_stage(state: Mapping[str, torch.Tensor]) -> str:
    """'autoencoder' (``encoder.*``/``decoder.*`` keys) or 'diffusion' (``model.*`` + schedule buffers)."""
    keys = list(state)
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys):
        return "autoencoder"
    if any(k.startswith("model.") for k in keys) and "betas" in state:
        return "diffusion"
    raise CheckpointError(f"cannot tell whether this is an autoencoder or a diffusion state dict "
                          f"(first keys: {keys[:4]})")


# ---------------------------------------------------------------------------------------------- configs
def read_flat_config(path: str | Path) -> dict[str, Any]:
    """An official ``config.yaml`` as one flat dict (plain YAML, interpolations kept as strings). Nested configs
    (ours, or a Hydra dump) are flattened like the official ``flat_hydra_config``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"could not read config '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config '{path}' is not a mapping")
    for group in ("model", "task", "dataset", "cov_matrix"):
        if isinstance(data.get(group), dict):
            sub = data.pop(group)
            data = {**data, **sub}
    return data


def _is_literal(value: Any) -> bool:
    if isinstance(value, str):
        return "${" not in value
    if isinstance(value, dict):
        return True
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    return value is None or isinstance(value, (int, float, bool))


def overlay_flat(ours: DictConfig, flat: Mapping[str, Any], *, skip: Iterable[str] = (), prefix: str = "") -> list[str]:
    """Set every key of ``ours`` (recursively into sub-dicts) that ``flat`` also has to the official value.

    Values that are interpolations in the official file (``${eval:...}``) are ignored; our object nodes
    (``network``, ``diffusion``, ``optimizer``) are never replaced. Returns the dotted keys that changed."""
    changed: list[str] = []
    skip = set(skip) | _OBJECT_NODES
    for key in list(ours.keys()):
        key = str(key)
        if key in skip or key not in flat or not _is_literal(flat[key]):
            continue
        node = ours._get_node(key)
        val = flat[key]
        if isinstance(node, DictConfig):
            if isinstance(val, Mapping):
                changed += overlay_flat(node, val, prefix=f"{prefix}{key}.")
            continue
        old = None if OmegaConf.is_interpolation(ours, key) else ours[key]
        if OmegaConf.is_interpolation(ours, key) or old != val:
            ours[key] = val
            changed.append(f"{prefix}{key}")
    return changed


def _compose(config_name: str, overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .config import CONFIG_DIR

    if GlobalHydra.instance().is_initialized():  # e.g. called from inside another Hydra app
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name, overrides=list(overrides))
    return cfg


def _check_dataset(dataset: Optional[str], flat: Optional[Mapping[str, Any]], where: str) -> str:
    found = None
    if flat is not None:
        found = flat.get("dataset_name") or None
    if dataset and found and str(found) != dataset:
        raise ConfigError(f"--dataset {dataset} contradicts dataset_name={found!r} in {where}")
    name = dataset or found
    if not name:
        raise ConfigError("cannot tell the dataset: pass --dataset amass|amass-mano|h36m|freeman "
                          "(or the official autoencoder config.yaml with --autoencoder-config)")
    name = str(name)
    if name not in DATASETS:
        raise ConfigError(f"dataset {name!r} has no official checkpoint; expected one of {DATASETS}")
    return name


def ae_arch_from_weights(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Structural sizes that the autoencoder weights fix (encoder/decoder depth, widths, nodes)."""
    def layers(prefix: str) -> int:
        idx = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
        return max(idx) + 1 if idx else 0

    try:
        return {
            "enc_num_layers": layers("encoder.rnn.layers."),
            "dec_num_layers": layers("decoder.rnn.layers."),
            "encoder_hidden_size": int(state["encoder.rnn.layers.0.weight_hh"].shape[-1]),
            "decoder_hidden_size": int(state["decoder.rnn.layers.0.weight_hh"].shape[-1]),
            "latent_size": int(state["encoder.fc.weight"].shape[1]),
            "num_nodes": int(state["encoder.rnn.layers.0.G"].shape[0]),
        }
    except KeyError as exc:
        raise CheckpointError(f"autoencoder state dict lacks {exc}; is this an official autoencoder checkpoint?") from exc


def build_autoencoder_config(dataset: Optional[str], ae_state: Mapping[str, torch.Tensor],
                             flat: Optional[Mapping[str, Any]] = None, *, out_dir: Optional[Path] = None,
                             where: str = "the autoencoder config") -> DictConfig:
    """Our resolved autoencoder run config for official weights (flat official config, else paper recipe)."""
    from .skeletons import get_skeleton

    name = _check_dataset(dataset, flat, where)
    overrides = [f"dataset={name}"]
    if flat is None:
        overrides += RECIPES[name]["autoencoder"]
        _log.warning("no official autoencoder config.yaml: using the paper recipe of %s (%s). pose_box_size "
                     "cannot be read from weights; pass --autoencoder-config if the model was trained otherwise.",
                     name, " ".join(RECIPES[name]["autoencoder"]))
    cfg = _compose("train_autoencoder", overrides)
    with open_dict(cfg):
        if flat is not None:
            changed = overlay_flat(cfg.task, flat, prefix="task.") + overlay_flat(cfg.model, flat, prefix="model.")
            _log.info("autoencoder config from %s: %d keys taken over (%s)", where, len(changed),
                      ", ".join(changed[:12]) + (" ..." if len(changed) > 12 else ""))
            for key in ("num_joints", "fps"):
                if key in flat and _is_literal(flat[key]) and flat[key] != cfg.dataset[key]:
                    raise ConfigError(f"{where}: {key}={flat[key]} differs from our '{name}' dataset ({key}="
                                      f"{cfg.dataset[key]}); the joint layout/frame rate would not match")
        arch = ae_arch_from_weights(ae_state)
        skeleton = get_skeleton(cfg.dataset.get("skeleton_name") or name)
        if arch["num_nodes"] != skeleton.num_nodes:
            raise CheckpointError(f"the autoencoder weights have {arch['num_nodes']} nodes but skeleton "
                                  f"'{skeleton.name}' has {skeleton.num_nodes}: wrong --dataset?")
        fixes = {"model.latent_size": arch["latent_size"]}
        fixes.update({f"model.autoenc_arch.{k}": arch[k] for k in
                      ("enc_num_layers", "dec_num_layers", "encoder_hidden_size", "decoder_hidden_size")})
        for dotted, value in fixes.items():
            if OmegaConf.select(cfg, dotted) != value:
                _log.warning("%s=%s from the config does not match the weights; using %s (from the weights)",
                             dotted, OmegaConf.select(cfg, dotted), value)
                OmegaConf.update(cfg, dotted, value, merge=False)
        cfg.output_log_path = str(out_dir) if out_dir is not None else "converted"
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(resolved, DictConfig)
    return resolved


def _diffusion_groups(flat: Optional[Mapping[str, Any]]) -> list[str]:
    if flat is None:
        return ["model=skeleton_diffusion", "cov_matrix=adjacency"]
    dtype = str(flat.get("diffusion_type", "NonisotropicGaussianDiffusion"))
    if dtype == "IsotropicGaussianDiffusion":
        model = "isotropic_diffusion"
    elif dtype == "NonisotropicGaussianDiffusion":
        model = ("skeleton_diffusion_run_code_as_isotropic" if bool(flat.get("if_run_as_isotropic", False))
                 else "skeleton_diffusion")
    else:
        raise ConfigError(f"unknown diffusion_type {dtype!r} in the official diffusion config")
    cov = str(flat.get("covariance_matrix_type", "adjacency"))
    if cov not in ("adjacency", "reachability"):
        raise ConfigError(f"unknown covariance_matrix_type {cov!r} in the official diffusion config")
    return [f"model={model}", f"cov_matrix={cov}"]


def build_diffusion_config(ae_cfg: DictConfig, flat: Optional[Mapping[str, Any]] = None, *,
                           out_dir: Optional[Path] = None, autoencoder_checkpoint: str = "",
                           where: str = "the diffusion config") -> DictConfig:
    """Our resolved diffusion run config (``autoencoder`` = ``ae_cfg``) for official diffusion weights."""
    name = str(ae_cfg.dataset.dataset_name)
    overrides = _diffusion_groups(flat)
    if flat is None:
        overrides += RECIPES[name]["diffusion"]
        _log.warning("no official diffusion config.yaml: using the paper recipe (%s)", " ".join(overrides))
    cfg = _compose("train_diffusion", overrides)
    with open_dict(cfg):
        if flat is not None:
            changed = overlay_flat(cfg.model, flat, skip={"pretrained_autoencoder_path"}, prefix="model.")
            if "cov_matrix" in cfg and cfg.cov_matrix is not None:
                changed += overlay_flat(cfg.cov_matrix, flat, prefix="cov_matrix.")
            _log.info("diffusion config from %s: %d keys taken over (%s)", where, len(changed),
                      ", ".join(changed[:12]) + (" ..." if len(changed) > 12 else ""))
        cfg.model.pretrained_autoencoder_path = autoencoder_checkpoint
        cfg.dataset_folder_log_path = name
        cfg.output_log_path = str(out_dir) if out_dir is not None else "converted"
        cfg.autoencoder = ae_cfg
        cfg.autoencoder_checkpoint = autoencoder_checkpoint
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(resolved, DictConfig)
    return resolved


# ---------------------------------------------------------------------------------------------- discovery
def _run_config_beside(ckpt: Path) -> Optional[Path]:
    for cand in (ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"):
        if cand.is_file():
            return cand
    return None


def find_autoencoder_checkpoint(diffusion_path: Path, flat: Optional[Mapping[str, Any]]) -> Path:
    """The official autoencoder file of a diffusion checkpoint: ``pretrained_autoencoder_path`` of its config
    (as given, or its tail re-rooted at an ancestor folder of the diffusion file), else the sibling
    ``<ds>/autoencoder/checkpoints/`` folder of the release layout."""
    tried: list[str] = []
    recorded = flat.get("pretrained_autoencoder_path") if flat else None
    if isinstance(recorded, str) and recorded and "${" not in recorded:
        p = Path(recorded).expanduser()
        tried.append(str(p))
        if p.is_file():
            return p
        parts = p.parts
        for anc in diffusion_path.resolve().parents:
            for i in range(max(0, len(parts) - 6), max(0, len(parts) - 2)):
                cand = anc.joinpath(*parts[i:])
                if cand.is_file():
                    return cand
    run = diffusion_path.resolve().parent.parent  # <ds>/diffusion
    folder = run.parent / "autoencoder" / "checkpoints"
    tried.append(str(folder))
    if folder.is_dir():
        found = sorted(folder.glob("*.pt"))
        pref = [p for p in found if p.name == diffusion_path.name] or found
        if len(pref) == 1:
            return pref[0]
        if len(pref) > 1:
            raise CheckpointError(f"several autoencoder checkpoints in '{folder}': pass --autoencoder")
    raise CheckpointError(f"cannot find the autoencoder checkpoint of '{diffusion_path}' (tried {tried}); "
                          "pass --autoencoder <official autoencoder .pt>")


# ---------------------------------------------------------------------------------------------- conversion
def _plain_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # no copies: tensors shared between entries (e.g. identical EMA/online weights) stay shared on disk
    return {str(k): v.detach() for k, v in state.items()}


def _iteration(ckpt: Mapping[str, Any]) -> int:
    tr = ckpt.get("trainer")
    if isinstance(tr, Mapping) and isinstance(tr.get("iteration"), int):
        return int(tr["iteration"])
    return 0


def _check_out_dir(out_dir: Path, force: bool) -> list[Path]:
    """Existing checkpoints of ``out_dir``; refuses a folder that holds a run unless ``force``."""
    ck = out_dir / "checkpoints"
    existing = sorted(ck.glob("*.pt")) if ck.is_dir() else []
    if (existing or (out_dir / "config.yaml").exists()) and not force:
        raise CheckpointError(f"'{out_dir}' already holds a run ({len(existing)} checkpoint(s) / config.yaml); "
                              "choose a new OUT_DIR or pass --force to replace it")
    return existing


def _prepare_out_dir(out_dir: Path, force: bool) -> Path:
    existing = _check_out_dir(out_dir, force)
    ck = out_dir / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    if force:
        for p in existing:
            p.unlink()
    return ck


def _validate_models(cfg: DictConfig, ae_state: Mapping[str, torch.Tensor],
                     diff_state: Optional[Mapping[str, torch.Tensor]] = None,
                     ema_state: Optional[Mapping[str, torch.Tensor]] = None) -> bool:
    """Rebuild our models from ``cfg`` and load the weights strictly; returns whether the EMA weights load."""
    from .factories import build_autoencoder, build_diffusion
    from .skeletons import get_skeleton

    ae_cfg = cfg.autoencoder if diff_state is not None else cfg
    skeleton = get_skeleton(ae_cfg.dataset.get("skeleton_name") or ae_cfg.dataset.dataset_name)
    ae = build_autoencoder(ae_cfg.model, skeleton)
    try:
        ae.load_state_dict(ae_state)
    except RuntimeError as exc:
        raise CheckpointError(f"the autoencoder weights do not fit the converted config: "
                              f"{str(exc).splitlines()[0]} ... (check --autoencoder-config / --dataset)") from exc
    if diff_state is None:
        return False
    diffusion = build_diffusion(cfg.model, cfg.get("cov_matrix"), skeleton, latent_size=int(ae_cfg.model.latent_size))
    try:
        diffusion.load_state_dict(diff_state)
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        raise CheckpointError(f"the diffusion weights do not fit the converted config: {' '.join(lines[:2])[:600]} "
                              "(check --config / --dataset)") from exc
    if ema_state:
        try:
            diffusion.load_state_dict(ema_state)
            return True
        except RuntimeError as exc:
            _log.warning("EMA weights do not load (%s); they are left out", str(exc).splitlines()[0])
    return False


def convert_autoencoder(ae_path: str | Path, out_dir: str | Path, *, dataset: Optional[str] = None,
                        ae_config: Optional[str | Path] = None, force: bool = False,
                        loaded: Optional[Mapping[str, Any]] = None) -> Path:
    """Official autoencoder checkpoint -> our autoencoder run folder; returns the checkpoint written.
    ``loaded``: the file's content when the caller already read it (with :func:`load_official_file`)."""
    from .config import save_config
    from .training.checkpoint import make_meta
    from .utils.io import atomic_torch_save

    ae_path, out_dir = Path(ae_path).expanduser(), Path(out_dir).expanduser()
    _check_out_dir(out_dir, force)
    ckpt = dict(loaded) if loaded is not None else load_official_file(ae_path)
    state = _state_dict(ckpt, ae_path, "autoencoder")
    if detect_stage(state) != "autoencoder":
        raise CheckpointError(f"'{ae_path}' is a diffusion checkpoint; drop --stage autoencoder")
    cfg_path = Path(ae_config) if ae_config else _run_config_beside(ae_path)
    flat = read_flat_config(cfg_path) if cfg_path else None
    cfg = build_autoencoder_config(dataset, state, flat, out_dir=out_dir.resolve(), where=str(cfg_path or "recipe"))
    _validate_models(cfg, state)
    meta = make_meta("autoencoder", str(cfg.dataset.get("skeleton_name") or cfg.dataset.dataset_name),
                     dataset=str(cfg.dataset.dataset_name), pose_box_size=float(cfg.task.pose_box_size),
                     obs_length=int(cfg.model.obs_length), pred_length=int(cfg.model.pred_length),
                     config=OmegaConf.to_container(cfg, resolve=True),
                     converted_from={"autoencoder": str(ae_path), "autoencoder_config": str(cfg_path or "")},
                     iteration=_iteration(ckpt))
    ck_dir = _prepare_out_dir(out_dir, force)
    out = ck_dir / f"checkpoint_{_iteration(ckpt)}.pt"
    atomic_torch_save({"model": _plain_state(state), "meta": meta}, out)
    save_config(cfg, out_dir / "config.yaml")
    _log.info("wrote %s and %s", out, out_dir / "config.yaml")
    return out


def convert_diffusion(diff_path: str | Path, out_dir: str | Path, *, autoencoder: Optional[str | Path] = None,
                      dataset: Optional[str] = None, config: Optional[str | Path] = None,
                      ae_config: Optional[str | Path] = None, force: bool = False,
                      loaded: Optional[Mapping[str, Any]] = None) -> Path:
    """Official diffusion checkpoint (+ its autoencoder) -> one self-contained checkpoint of ours in
    ``out_dir/checkpoints/`` and ``out_dir/config.yaml``; returns the checkpoint path."""
    from .config import save_config
    from .training.checkpoint import make_meta
    from .utils.io import atomic_torch_save

    diff_path, out_dir = Path(diff_path).expanduser(), Path(out_dir).expanduser()
    _check_out_dir(out_dir, force)
    ckpt = dict(loaded) if loaded is not None else load_official_file(diff_path)
    state = _state_dict(ckpt, diff_path, "diffusion")
    if detect_stage(state) != "diffusion":
        raise CheckpointError(f"'{diff_path}' is an autoencoder checkpoint; convert it with --stage autoencoder")
    cfg_path = Path(config) if config else _run_config_beside(diff_path)
    flat = read_flat_config(cfg_path) if cfg_path else None
    ae_path = Path(autoencoder).expanduser() if autoencoder else find_autoencoder_checkpoint(diff_path, flat)
    _log.info("diffusion: %s (config: %s); autoencoder: %s", diff_path, cfg_path or "paper recipe", ae_path)
    ae_ckpt = load_official_file(ae_path)
    ae_state = _state_dict(ae_ckpt, ae_path, "autoencoder")
    if detect_stage(ae_state) != "autoencoder":
        raise CheckpointError(f"--autoencoder '{ae_path}' is not an autoencoder checkpoint")
    ae_cfg_path = Path(ae_config) if ae_config else _run_config_beside(ae_path)
    ae_flat = read_flat_config(ae_cfg_path) if ae_cfg_path else None
    if dataset is None and ae_flat is None and flat is not None and flat.get("dataset_folder_log_path") in DATASETS:
        dataset = str(flat["dataset_folder_log_path"])
    ae_cfg = build_autoencoder_config(dataset, ae_state, ae_flat, where=str(ae_cfg_path or "recipe"))
    cfg = build_diffusion_config(ae_cfg, flat, out_dir=out_dir.resolve(), autoencoder_checkpoint=str(ae_path),
                                 where=str(cfg_path or "recipe"))
    with open_dict(cfg):
        cfg.autoencoder.output_log_path = str(ae_path.resolve().parent.parent)

    ema_raw = ckpt.get("ema") if isinstance(ckpt.get("ema"), Mapping) else None
    ema_state = ({k[len("ema_model."):]: v for k, v in ema_raw.items() if str(k).startswith("ema_model.")}
                 if ema_raw else None)
    ema_ok = _validate_models(cfg, ae_state, state, ema_state)
    skeleton_name = str(ae_cfg.dataset.get("skeleton_name") or ae_cfg.dataset.dataset_name)
    meta = make_meta("diffusion", skeleton_name, dataset=str(ae_cfg.dataset.dataset_name),
                     pose_box_size=float(ae_cfg.task.pose_box_size), obs_length=int(ae_cfg.model.obs_length),
                     pred_length=int(ae_cfg.model.pred_length), config=OmegaConf.to_container(cfg, resolve=True),
                     converted_from={"diffusion": str(diff_path), "autoencoder": str(ae_path),
                                     "diffusion_config": str(cfg_path or ""), "autoencoder_config": str(ae_cfg_path or "")},
                     iteration=_iteration(ckpt))
    out_ckpt: dict[str, Any] = {"model": _plain_state(state), "autoencoder": _plain_state(ae_state), "meta": meta}
    if ema_ok and ema_raw is not None:
        ema: dict[str, Any] = {f"ema_model.{k}": v.detach() for k, v in ema_state.items()}  # type: ignore[union-attr]
        for k in ("initted", "step"):
            if isinstance(ema_raw.get(k), torch.Tensor):
                ema[k] = ema_raw[k].detach()
        out_ckpt["ema"] = ema
    ck_dir = _prepare_out_dir(out_dir, force)
    out = ck_dir / f"checkpoint_{_iteration(ckpt)}.pt"
    atomic_torch_save(out_ckpt, out)
    save_config(cfg, out_dir / "config.yaml")
    _log.info("wrote %s (%s EMA weights) and %s", out, "with" if "ema" in out_ckpt else "without",
              out_dir / "config.yaml")
    return out


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m skeleton_diffusion.convert_official_checkpoint",
        description="Convert an official SkeletonDiffusion checkpoint (Hugging Face release) into a run folder "
                    "of this code base (OUT_DIR/checkpoints/*.pt + OUT_DIR/config.yaml).")
    p.add_argument("checkpoint", help="official diffusion checkpoint (e.g. .../diffusion/checkpoints/cvpr_release.pt), "
                                      "or an autoencoder checkpoint with --stage autoencoder")
    p.add_argument("out_dir", help="output run folder (must not hold a run yet, unless --force)")
    p.add_argument("--stage", choices=("auto", "diffusion", "autoencoder"), default="auto",
                   help="what CHECKPOINT is (auto: detected from its keys)")
    p.add_argument("--autoencoder", help="official autoencoder checkpoint of the diffusion model "
                                         "(default: the config's pretrained_autoencoder_path or ../autoencoder/)")
    p.add_argument("--dataset", choices=DATASETS, help="dataset / paper recipe when no official config.yaml is found")
    p.add_argument("--config", help="official flat diffusion config.yaml (default: found beside the checkpoint)")
    p.add_argument("--autoencoder-config", help="official flat autoencoder config.yaml (default: beside it)")
    p.add_argument("--force", action="store_true", help="replace an existing run in OUT_DIR")
    p.add_argument("--method", choices=("skeleton_diffusion", "crossdiff"), default="skeleton_diffusion",
                   help="whose checkpoint: SkeletonDiffusion (default) or an official CrossDiff model####.pt "
                        "(with --config <merged official yaml>)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Path:
    from .cli import run_cli

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(min(2, torch.get_num_threads()))

    def _run() -> Path:
        if args.method == "crossdiff":
            from .methods.crossdiff import convert as convert_crossdiff

            config = Path(args.config) if args.config else None
            out = convert_crossdiff(Path(args.checkpoint), Path(args.out_dir), config=config, force=args.force)
            print(f"converted official CrossDiff -> {out}")
            return out
        stage = args.stage
        _check_out_dir(Path(args.out_dir).expanduser(), args.force)  # before reading a large file
        loaded = load_official_file(args.checkpoint)
        if stage == "auto":
            stage = detect_stage(_state_dict(loaded, Path(args.checkpoint), "official"))
        if stage == "autoencoder":
            if args.autoencoder or args.config:
                raise ConfigError("--autoencoder/--config apply to diffusion checkpoints; for an autoencoder file "
                                  "use --autoencoder-config")
            out = convert_autoencoder(args.checkpoint, args.out_dir, dataset=args.dataset,
                                      ae_config=args.autoencoder_config, force=args.force, loaded=loaded)
            print(f"converted autoencoder -> {out}\nuse it with: python train_diffusion.py "
                  f"model.pretrained_autoencoder_path={Path(args.out_dir)}")
            return out
        out = convert_diffusion(args.checkpoint, args.out_dir, autoencoder=args.autoencoder, dataset=args.dataset,
                                config=args.config, ae_config=args.autoencoder_config, force=args.force,
                                loaded=loaded)
        print(f"converted diffusion model -> {out}\n"
              f"evaluate: python eval.py dataset=<dataset> checkpoint_path={Path(args.out_dir)}\n"
              f"predict:  python -m skeleton_diffusion.predict checkpoint_path={Path(args.out_dir)} "
              "input=obs.npy output=pred.npz")
        return out

    return run_cli(_run)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
