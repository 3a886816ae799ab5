"""Predict futures for your own observed motion from the command line (or Python).

    python -m skeleton_diffusion.apps.predict checkpoint_path=output/official/amass input=obs.npy output=pred.npz \\
        num_samples=50 seed=0 gif=pred.gif device=auto

``input``: ``(T_obs, J, 3)`` or ``(B, T_obs, J, 3)`` metres in the dataset's joint order, root (hip) first, as an
``.npy`` file or an ``.npz`` with key ``obs``. ``output`` (``.npz``): ``pred`` ``(B, S, T_pred, J, 3)`` metres
(hip-relative poses placed at the last observed hip position), ``obs`` ``(B, T_obs, J, 3)``, ``joint_names``,
``fps`` and the run settings. All keys load with ``numpy.load(path)`` (no pickle). Options: ``configs/predict.yaml``
(Hydra override syntax).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, InputError

_log = logging.getLogger("skeleton_diffusion.apps.predict")


#: What an observation file must hold (appended to every error about one).
OBSERVATION_EXPECTED = ("expected a float array (T_obs, J, 3) or (B, T_obs, J, 3) in metres, saved with "
                        "numpy.save (.npy) or numpy.savez (.npz, key 'obs')")


def _observation_error(path: Path, problem: str) -> DataFormatError:
    return DataFormatError(f"observation file '{path}': {problem}; {OBSERVATION_EXPECTED}.")


def _file_kind(path: Path) -> str:
    """``npy`` / ``npz`` / ``empty`` / ``other`` from the file's first bytes (not its name)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz"
    return "pickle" if head[:1] == b"\x80" else "other"


def load_observation(path: str | Path) -> np.ndarray:
    """Read ``obs`` from an ``.npy`` or ``.npz`` (key ``obs``, or its only array) without unpickling.

    Raises :class:`InputError` when the file is missing and :class:`DataFormatError` (naming the file and what
    was expected) when it is empty, truncated, not an npy/npz file, pickled, or holds no numeric array.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"input file not found: '{path}'; {OBSERVATION_EXPECTED}")
    kind = _file_kind(path)
    if kind == "empty":
        raise _observation_error(path, "the file is empty (0 bytes)")
    if kind == "pickle":
        raise _observation_error(path, "it is a Python pickle, which is refused (it could run code)")
    if kind == "other":
        raise _observation_error(path, "not an .npy or .npz file (wrong file type, whatever its name)")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                keys = list(data.files)
                if not keys:
                    raise _observation_error(path, "the .npz holds no arrays")
                if "obs" in keys:
                    arr = data["obs"]
                elif len(keys) == 1:
                    arr = data[keys[0]]
                else:
                    raise _observation_error(path, f"it has arrays {keys}; name the observation 'obs'")
        else:
            arr = data
    except DataFormatError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # object arrays need pickle: refused
            raise _observation_error(path, "it holds Python objects (pickled), which are refused") from exc
        raise _observation_error(path, f"corrupt or truncated ({str(exc).splitlines()[0]})") from exc
    except Exception as exc:  # noqa: BLE001 - zipfile.BadZipFile, EOFError, OSError, ...: named, not a traceback
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise _observation_error(path, f"corrupt or truncated ({type(exc).__name__}{': ' + msg if msg else ''})") \
            from exc
    if not np.issubdtype(arr.dtype, np.number):
        raise _observation_error(path, f"the observation has dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float32)


def load_observation_joint_names(path: str | Path) -> list[str] | None:
    """The ``joint_names`` array of an ``.npz`` observation (e.g. a prediction file), else ``None``."""
    path = Path(path).expanduser()
    if path.suffix != ".npz" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if "joint_names" not in data.files:
                return None
            return [str(n) for n in data["joint_names"].reshape(-1).tolist()]
    except (ValueError, OSError):
        return None


def save_prediction(path: str | Path, pred: np.ndarray, obs: np.ndarray, *, joint_names: Sequence[str],
                    fps: float, **extra: Any) -> Path:
    """Write the prediction ``.npz`` atomically (``pred``, ``obs``, ``joint_names``, ``fps`` + ``extra``)."""
    from skeleton_diffusion.utils.io import atomic_write

    path = Path(path).expanduser()
    arrays = {"pred": np.asarray(pred, dtype=np.float32), "obs": np.asarray(obs, dtype=np.float32),
              "joint_names": np.asarray(list(joint_names), dtype=str), "fps": np.float32(fps)}
    for key, value in extra.items():
        arrays[key] = np.asarray("" if value is None else value)
        if arrays[key].dtype == object:
            raise DataFormatError(f"prediction field {key!r} is not a plain number/string array")
    with atomic_write(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def gif_paths(gif: str | Path, batch: int) -> list[Path]:
    """One animation per observation: ``pred.gif`` for B=1, else ``pred_0.gif``, ``pred_1.gif``, ..."""
    gif = Path(gif).expanduser()
    if batch == 1:
        return [gif]
    return [gif.with_name(f"{gif.stem}_{b}{gif.suffix}") for b in range(batch)]


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        return cfg[key]
    except MissingMandatoryValue:
        raise ConfigError(f"'{key}=' is required, e.g. python -m skeleton_diffusion.apps.predict "
                          "checkpoint_path=<run dir or .pt> input=obs.npy output=pred.npz") from None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load the model, predict, write ``output`` (and ``gif``); returns a summary dict."""
    from skeleton_diffusion.methods.registry import load_model

    ckpt, inp, out = _get(cfg, "checkpoint_path"), _get(cfg, "input"), _get(cfg, "output")
    num_samples = int(cfg.get("num_samples", 50))
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    seed = cfg.get("seed", 0)
    obs = load_observation(inp)
    predictor = load_model(ckpt, device=cfg.get("device", "auto"), use_ema=bool(cfg.get("use_ema", False)))
    if hasattr(predictor, "as_predictor"):  # a converted official MDM: prefix models predict, the others generate
        gp = cfg.get("guidance_param")
        predictor = predictor.as_predictor(data_root=cfg.get("data_root"), text=str(cfg.get("text") or ""),
                                           text_encoder_path=cfg.get("text_encoder_path"),
                                           steps=cfg.get("sampling_steps"),
                                           guidance_param=None if gp is None else float(gp))
    condition = getattr(predictor, "condition", None)
    if isinstance(condition, str) and condition != "past":  # a generation model (action / text MDM, CrossDiff)
        raise ConfigError(
            f"'{ckpt}' is a {condition}-conditioned generation model: it generates motion from a "
            f"{'caption' if condition == 'text' else 'label' if condition == 'action' else condition}, it does not "
            "continue an observed motion, so it is not a prediction model. Use generate instead: python -m "
            f"skeleton_diffusion.apps.generate --checkpoint {ckpt} ... (see its --help), or in Python "
            f"load_model('{ckpt}').generate(...). predict needs a motion-prediction model (MDM condition=past, "
            "SkeletonDiffusion).")
    sk = predictor.skeleton
    _log.info("model: %s (skeleton %s, %d observed -> %d predicted frames at %g fps) on %s", predictor.checkpoint,
              sk.name, predictor.obs_length, predictor.pred_length, predictor.fps, predictor.device)
    from skeleton_diffusion.tasks.hmp.input_checks import check_joint_names, validate_observation

    obs_names = load_observation_joint_names(inp)
    if obs_names is not None:  # an observation file that names its joints must match the model's order (H17)
        check_joint_names(obs_names, sk, f"the observation '{inp}'")
    allow_longer = bool(cfg.get("allow_longer", False))
    obs_used = np.asarray(validate_observation(obs, sk, predictor.obs_length, allow_longer=allow_longer),
                          dtype=np.float32)
    pred_length = cfg.get("pred_length")
    pred = predictor.predict(obs_used, num_samples=num_samples, seed=None if seed is None else int(seed),
                             pred_length=None if pred_length is None else int(pred_length))
    out_path = save_prediction(out, pred, obs_used, joint_names=sk.joint_names, fps=predictor.fps,
                               num_samples=num_samples, seed=-1 if seed is None else int(seed),
                               skeleton=sk.name, checkpoint=str(predictor.checkpoint),
                               pose_box_size=getattr(getattr(predictor, "model", None), "pose_box_size", None))
    summary: dict[str, Any] = {"output": out_path, "pred_shape": tuple(pred.shape), "gifs": []}
    print(f"wrote {out_path}: pred {tuple(pred.shape)} metres (B, S, T_pred, J, 3), joints of '{sk.name}'")
    if cfg.get("gif"):
        from skeleton_diffusion.viz.animation import animate_prediction

        fps = float(cfg.get("gif_fps") or predictor.fps)
        for b, path in enumerate(gif_paths(cfg.gif, pred.shape[0])):
            written = animate_prediction(obs_used[b], pred[b], sk, out_path=path, fps=fps,
                                         max_samples=int(cfg.get("gif_max_samples", 6)),
                                         mode=str(cfg.get("gif_mode", "side_by_side")),
                                         up=str(cfg.get("gif_up") or getattr(predictor, "up", "z")))
            summary["gifs"].append(Path(written))
            print(f"wrote {written}")
    return summary


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """``configs/predict.yaml`` with Hydra command-line overrides (``key=value``)."""
    from skeleton_diffusion.config import compose_cli_config

    return compose_cli_config("predict", list(overrides))


def main(argv: Optional[Sequence[str]] = None) -> Optional[dict[str, Any]]:
    from skeleton_diffusion.config.cli import run_config_cli

    def predict(args: list[str]) -> dict[str, Any]:
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
        return run(compose_config(args))

    return run_config_cli(argv, "predict", __doc__, predict)


if __name__ == "__main__":  # pragma: no cover
    main()
