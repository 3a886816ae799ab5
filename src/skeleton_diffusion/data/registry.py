"""Build window datasets from a Hydra ``dataset`` config group (``configs/dataset/*.yaml``).

>>> ds = build_dataset(cfg.dataset, "train", pose_box_size=1.5, dataset_main_path="./datasets")
>>> loader = build_dataloader(ds, batch_size=64, seed=0)     # shuffle/drop_last from data_loader_train

``split`` is ``train`` | ``train_eval`` | ``valid`` | ``test``; the block ``data_loader_<split>`` supplies stride,
augmentation, source datasets/subjects, ``segments_path`` etc. ``train_eval`` reads the training clips without
augmentation. Relative folders are resolved against ``dataset_main_path`` (default ``./datasets``); a bare
``segments_path`` file name is looked up in ``annotations_folder``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.data.windows.hmp import MotionWindowDataset, accepted_options, check_options
from skeleton_diffusion.data.windows.hmp_sources import DATASET_TYPES

__all__ = ["build_dataset", "dataset_cfg_to_dict", "resolve_dataset_path", "DEFAULT_DATASET_CFGS", "LOADER_ONLY_KEYS"]

LOADER_ONLY_KEYS = ("shuffle", "drop_last", "num_workers", "batch_size", "pin_memory")
SPLIT_NAMES = ("train", "train_eval", "valid", "test")

_AMASS_TEST = ["Transitions", "SSM", "DFaust", "DanceDB", "GRAB", "HUMAN4D", "SOMA"]

#: Minimal per-dataset settings (the ``configs/dataset`` values needed to build the *test* split); used by
#: :func:`skeleton_diffusion.data.side_files.build_side_files` when no config is given. Kept equal to the YAML
#: files by a test.
DEFAULT_DATASET_CFGS: dict[str, dict[str, Any]] = {
    "amass": dict(num_joints=22, fps=60, multimodal_threshold=0.4, dataset_type="AMASSDataset", dataset_name="amass",
                  skeleton_name="amass",
                  data_loader_test=dict(segments_path="segments_test.csv", datasets=_AMASS_TEST)),
    "amass-mano": dict(num_joints=52, fps=60, multimodal_threshold=0.4, dataset_type="AMASSDataset",
                       dataset_name="amass-mano", skeleton_name="amass-mano",
                       data_loader_test=dict(segments_path="segments_test.csv", datasets=_AMASS_TEST)),
    "h36m": dict(num_joints=17, fps=50, multimodal_threshold=0.5, dataset_type="H36MDataset", dataset_name="h36m",
                 skeleton_name="h36m",
                 data_loader_test=dict(segments_path="segments_test.csv", subjects=["S9", "S11"], actions="all")),
    "freeman": dict(num_joints=18, fps=30, multimodal_threshold=0.5, dataset_type="FreeManDataset",
                    dataset_name="freeman", skeleton_name="freeman",
                    data_loader_test=dict(segments_path="segments_test.csv", actions="all")),
    "3dpw": dict(num_joints=22, fps=60, multimodal_threshold=0.4, dataset_type="D3PWZeroShotDataset",
                 dataset_name="3dpw", skeleton_name="3dpw",
                 data_loader_test=dict(segments_path="segments_test_zero_shot.csv", actions="all")),
    "synthetic": dict(num_joints=22, fps=60, multimodal_threshold=0.4, dataset_type="GenericMotionDataset",
                      dataset_name="synthetic", skeleton_name="amass",
                      data_loader_test=dict(segments_path="segments_test.csv")),
}


def dataset_cfg_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, resolved ``dict`` from a ``DictConfig`` / mapping."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"dataset config must be a mapping, got {type(cfg).__name__}")
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in cfg.items()}


def resolve_dataset_path(p: str | os.PathLike, base: str | os.PathLike | None) -> Path:
    """Absolute paths unchanged; relative ones joined to ``base`` unless only the bare path exists."""
    path = Path(os.path.expanduser(str(p)))
    if path.is_absolute() or base is None:
        return path
    cand = Path(base) / path
    if cand.exists() or not path.exists():
        return cand
    return path


def _require_processed_first(cls: type, precomputed: Path, kwargs: Mapping[str, Any], cfg: Mapping[str, Any]) -> None:
    """A missing processed file is reported before anything else the dataset reads (e.g. the test-window CSV),
    with its path and the command that builds it; a missing segment CSV is listed alongside."""
    from skeleton_diffusion.data.processed import missing_dataset_error, processed_path

    if not (isinstance(cls, type) and issubclass(cls, MotionWindowDataset)):
        return
    name = str(kwargs.get("dataset_name") or getattr(cls, "dataset_name", None) or cfg["dataset_name"])
    data_file = Path(kwargs["processed_file"]) if kwargs.get("processed_file") else processed_path(precomputed, name)
    if data_file.is_file():
        return
    also = []
    seg = kwargs.get("segments_path")
    if seg and not Path(str(seg)).is_file():
        also.append(f"the window file '{seg}' (official datasets: "
                    "`python -m skeleton_diffusion.apps.fetch_annotations`; generic datasets write theirs when "
                    "created)")
    raise missing_dataset_error(data_file, str(cfg["dataset_name"]), also)


def build_dataset(
    dataset_cfg: Any,
    split: str,
    *,
    obs_length: int | None = None,
    pred_length: int | None = None,
    pose_box_size: float = 1.5,
    skeleton: Any = None,
    dataset_main_path: str | os.PathLike | None = None,
    history_sec: float = 0.5,
    prediction_horizon_sec: float = 2.0,
    **overrides: Any,
) -> MotionWindowDataset:
    """Instantiate the dataset of ``dataset_cfg`` for ``split`` (see module doc).

    ``obs_length`` / ``pred_length`` default to ``int(history_sec * fps)`` / ``int(prediction_horizon_sec * fps)``.
    ``overrides`` win over the config block (e.g. ``if_load_mmgt=True``, ``augmentation=0``, ``if_noisy_obs``,
    ``noise_level``, ``noise_std``, ``noise_seed``, ``if_long_term_test``, ``long_term_factor``, ``rng``,
    ``if_compute_cmd``, ``silent``). The returned dataset carries ``loader_options`` (shuffle, drop_last,
    num_workers of the block) for :func:`build_dataloader`.
    """
    cfg = dataset_cfg_to_dict(dataset_cfg)
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
    for key in ("dataset_type", "dataset_name", "fps", "precomputed_folder"):
        if key not in cfg:
            raise ConfigError(f"dataset config lacks '{key}' (keys found: {sorted(cfg)})")
    block_name = f"data_loader_{split}"
    if block_name not in cfg or cfg[block_name] is None:
        blocks = [k for k in cfg if k.startswith("data_loader_")]
        raise ConfigError(f"dataset '{cfg['dataset_name']}' has no '{block_name}' block (has {blocks})")
    block = dict(cfg[block_name])
    dtype_name = cfg["dataset_type"]
    if dtype_name not in DATASET_TYPES:
        raise ConfigError(f"unknown dataset_type {dtype_name!r}; expected one of {sorted(DATASET_TYPES)}")
    cls = DATASET_TYPES[dtype_name]

    main = dataset_main_path if dataset_main_path is not None else cfg.get("dataset_main_path", "./datasets")
    precomputed = resolve_dataset_path(cfg["precomputed_folder"], main)
    annotations = resolve_dataset_path(cfg["annotations_folder"], main) if cfg.get("annotations_folder") else None

    fps = int(cfg["fps"])
    obs_length = int(history_sec * fps) if obs_length is None else int(obs_length)
    pred_length = int(prediction_horizon_sec * fps) if pred_length is None else int(pred_length)

    if skeleton is None or isinstance(skeleton, str):
        from skeleton_diffusion.skeletons.lookup import get_skeleton

        skeleton = get_skeleton(skeleton or cfg.get("skeleton_name") or cfg["dataset_name"])
    if "num_joints" in cfg and int(cfg["num_joints"]) != int(skeleton.num_joints):
        raise ConfigError(
            f"dataset '{cfg['dataset_name']}' has num_joints={cfg['num_joints']} but skeleton "
            f"'{getattr(skeleton, 'name', skeleton)}' has {skeleton.num_joints} joints"
        )

    loader_options = {k: block.pop(k) for k in LOADER_ONLY_KEYS if k in block}
    kwargs: dict[str, Any] = {**block, **overrides}
    if kwargs.get("if_long_term_test") and split == "test":
        kwargs["segments_path"] = kwargs.pop("long_term_segments_path", None) or block.get(
            "long_term_segments_path", "segments_test_long_term_pred.csv"
        )
    kwargs.pop("long_term_segments_path", None)
    seg = kwargs.get("segments_path")
    if seg:
        seg_p = Path(str(seg))
        if not seg_p.is_absolute() and seg_p.parent == Path(".") and annotations is not None:
            kwargs["segments_path"] = annotations / seg_p
        else:
            kwargs["segments_path"] = resolve_dataset_path(seg_p, main)
    if (kwargs.get("if_long_term_test") and split == "test" and cls.__name__ == "GenericMotionDataset"
            and not Path(kwargs["segments_path"]).is_file()):  # say which command writes it (H16c)
        from skeleton_diffusion.utils.errors import DatasetNotPreparedError
        from skeleton_diffusion.data.long_term import missing_long_term_hint

        raise DatasetNotPreparedError(f"long-term test of dataset '{cfg['dataset_name']}': "
                                      + missing_long_term_hint(Path(kwargs["segments_path"]).parent,
                                                                             str(cfg["dataset_name"])))
    if cls.__name__ in ("AMASSDataset", "GenericMotionDataset"):
        kwargs.setdefault("dataset_name", cfg["dataset_name"])
    if cls.__name__ == "GenericMotionDataset":
        kwargs.setdefault("fps", fps)
    if "processed_file" in cfg and "processed_file" not in kwargs:
        kwargs["processed_file"] = resolve_dataset_path(cfg["processed_file"], precomputed)
    if split == "train_eval":
        kwargs.setdefault("in_eval", True)
    kwargs.setdefault("dtype", cfg.get("dtype", "float32"))

    if isinstance(cls, type) and issubclass(cls, MotionWindowDataset):
        if "if_long_term_test" not in accepted_options(cls):  # registry-level here: the horizon is already set
            kwargs.pop("if_long_term_test", None)
            kwargs.pop("long_term_factor", None)
        check_options(cls, [k for k in block if k in kwargs and k not in overrides],
                      f"{block_name} of dataset '{cfg['dataset_name']}'")
        check_options(cls, [k for k in overrides if k in kwargs],
                      f"the build_dataset options for dataset '{cfg['dataset_name']}'")
    _require_processed_first(cls, precomputed, kwargs, cfg)
    data_split = "train" if split == "train_eval" else split
    ds = cls(
        data_split,
        precomputed,
        skeleton,
        obs_length,
        pred_length,
        annotations_folder=annotations,
        pose_box_size=pose_box_size,
        **kwargs,
    )
    ds.loader_options = loader_options  # type: ignore[attr-defined]
    ds.multimodal_threshold = float(cfg.get("multimodal_threshold", 0.4))  # type: ignore[attr-defined]
    return ds
