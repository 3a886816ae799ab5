"""``eval.py task=generation evaluator=official``: MDM's HumanML3D / KIT-ML table with the official files.

Config keys (under ``task``; defaults = MDM's layout relative to ``task.official_root``):

* ``evaluator: official`` selects this path (our trained evaluator stays the default);
* ``official_root``: the folder holding MDM's downloads (``t2m/`` or ``kit/`` from
  ``prepare/download_t2m_evaluators.sh``, ``glove/`` from ``prepare/download_glove.sh``, ``dataset/`` with
  ``t2m_mean.npy``/``t2m_std.npy``); ``official_checkpoint``, ``glove_dir``, ``meta_dir`` override single paths;
* ``dataset_main_path`` / ``dataset.data_root``: the HumanML3D (KIT-ML) folder with ``Mean.npy``/``Std.npy``,
  ``new_joint_vecs/``, ``texts/``, ``test.txt``;
* ``eval_mode``: ``wo_mm`` (20 replications), ``mm_short`` / ``mm`` (5, with MultiModality), ``debug``;
  ``caption_length``: ``eos`` (MDM after fix #182) | ``padded`` (the MDM paper); ``seed`` (MDM 10);
* ``official_protocol``: ``mdm`` (``eval_humanml.py``) | ``crossdiff`` (CrossDiff's ``test.py`` differences,
  :data:`~skeleton_diffusion.tasks.generation.official_protocol.PROTOCOLS`); ``official_options``: any other
  keyword of the runner (e.g. ``replication_times`` for a short run);
* ``text_encoder_path`` (+ ``text_encoder: auto|clip|bert``): the local CLIP ViT-B/32 / DistilBERT folder the
  generator's text encoder loads from; ``guidance_param`` / ``sampling_steps``: null = the official ones.

:func:`run_official` loads the generator through the caller's ``load_generator`` (the method registry), asks it
for its T2M adapter (``t2m_generator(text_encoder_path, ...)``, which converted official MDM / CrossDiff runs
offer) and writes ``results.{json,csv,md}`` plus ``official_table.txt`` (the official summary block).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from skeleton_diffusion.tasks.generation.official_protocol import PROTOCOLS, protocol_from_files
from skeleton_diffusion.tasks.results import summarize, write_results
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.utils.io import atomic_write

__all__ = ["official_paths", "official_data_root", "main_official", "run_official"]


def official_paths(task: Any, dataset_name: str = "humanml3d") -> dict[str, Path]:
    """Resolve ``finest.tar``, the GloVe folder and the evaluator statistics folder from the task config."""
    kind = str(task.get("official_dataset") or ("kit" if "kit" in str(dataset_name).lower() else "t2m"))
    if kind not in ("t2m", "kit"):
        raise ConfigError(f"task.official_dataset must be t2m (HumanML3D) or kit (KIT-ML); got {kind!r}.")
    root = task.get("official_root")
    explicit = {k: task.get(k) for k in ("official_checkpoint", "glove_dir", "meta_dir")}
    if root is None and not all(explicit.values()):
        raise ConfigError("evaluator=official needs task.official_root=<folder with MDM's t2m/, glove/, dataset/> "
                          "(or task.official_checkpoint, task.glove_dir and task.meta_dir).")  # fmt: skip
    base = Path(str(root)) if root is not None else Path(".")
    return {
        "checkpoint": Path(str(explicit["official_checkpoint"] or base / kind / "text_mot_match/model/finest.tar")),
        "glove": Path(str(explicit["glove_dir"] or base / "glove")),
        "meta": Path(str(explicit["meta_dir"] or base / "dataset")),
        "dataset": Path(kind),
    }


def official_data_root(cfg: Any) -> Path:
    """The HumanML3D (KIT-ML) folder: ``task.official_data_root``, else ``<dataset_main_path>/<dataset.
    precomputed_folder>`` when it holds ``Mean.npy``, else ``dataset_main_path``."""
    task = cfg.task
    if task.get("official_data_root"):
        return Path(str(task.official_data_root)).expanduser()
    main = cfg.get("dataset_main_path") or (cfg.dataset.get("data_root") if "dataset" in cfg else None)
    if main is None:
        raise ConfigError("evaluator=official needs dataset_main_path=<folder> or task.official_data_root=<HumanML3D "
                          "folder with Mean.npy, Std.npy, new_joint_vecs/, texts/, test.txt>.")  # fmt: skip
    sub = cfg.dataset.get("precomputed_folder") if "dataset" in cfg else None
    if sub and (Path(str(main)) / str(sub) / "Mean.npy").is_file():
        return Path(str(main)) / str(sub)
    return Path(str(main))


def _protocol_options(task: Any) -> dict[str, Any]:
    name = str(task.get("official_protocol", "mdm"))
    if name not in PROTOCOLS:
        raise ConfigError(f"task.official_protocol must be one of {sorted(PROTOCOLS)}; got {name!r}.")
    opts = dict(PROTOCOLS[name])
    if not str(task.get("eval_mode", "wo_mm")).startswith("mm"):
        opts = {k: v for k, v in opts.items() if not k.startswith("mm_")}
    extra = task.get("official_options") or {}
    opts.update({str(k): v for k, v in dict(extra).items()})
    return opts


def main_official(cfg: Any, generator: Any, *, data_root: str | Path | None = None) -> dict[str, Any]:
    """Run the official protocol for ``generator``; print the official summary block; return the result dict."""
    task = cfg.task
    name = str(cfg.dataset.get("dataset_name", "humanml3d")) if "dataset" in cfg else "humanml3d"
    paths = official_paths(task, name)
    root = data_root or official_data_root(cfg)
    proto = protocol_from_files(paths["checkpoint"], paths["glove"], paths["meta"], root,
                                dataset=str(paths["dataset"]), device=resolve_device(cfg.get("device", "auto")),
                                mode=str(task.get("eval_mode", "wo_mm")), seed=int(cfg.get("seed", 10)),
                                caption_length=str(task.get("caption_length", "eos")),
                                **_protocol_options(task))  # fmt: skip
    out = proto.run(generator)
    if not cfg.get("silent", False):
        print(out["table"])
    return out


def run_official(cfg: Any, load_generator: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """``eval.py task=generation evaluator=official``: load ``checkpoint_path`` (registry), wrap it as a T2M
    generator, run :func:`main_official`, write the results folder; returns the summary (+ ``table``)."""
    task = cfg.task
    if not cfg.get("checkpoint_path"):
        raise ConfigError("evaluator=official needs checkpoint_path=<converted official MDM / CrossDiff run>.")
    device = resolve_device(cfg.get("device", "auto"))
    model = load_generator(cfg.checkpoint_path, device)
    options = {k: task.get(k) for k in ("guidance_param",) if task.get(k) is not None}
    if task.get("sampling_steps") is not None:
        options["steps"] = task.sampling_steps
    if hasattr(model, "t2m_generator"):
        generator = model.t2m_generator(task.get("text_encoder_path"), text_encoder=str(task.get("text_encoder",
                                                                                                  "auto")), **options)
    elif options:
        raise ConfigError(f"'{cfg.checkpoint_path}' offers no t2m_generator(); guidance_param / sampling_steps "
                          "apply only to converted official MDM / CrossDiff runs.")  # fmt: skip
    else:
        generator = model
    out = main_official(cfg, generator)
    dataset = str(cfg.dataset.get("dataset_name", "humanml3d"))
    protocol = str(task.get("official_protocol", "mdm"))
    if cfg.get("results_path"):
        p = Path(str(cfg.results_path))
        out_dir = p.parent if p.suffix == ".json" else p
    else:
        out_dir = Path("output") / "eval" / "generation" / f"{dataset}_official_{protocol}_{task.get('eval_mode')}"
    method = getattr(generator, "method_name", None) or type(generator).__name__
    extra = {"task": "generation", "evaluator": "official", "official_protocol": protocol, "method": method,
             "eval_mode": str(task.get("eval_mode", "wo_mm")), "caption_length": str(task.get("caption_length")),
             "official_summary": _plain(out["summary"])}  # fmt: skip
    runs = out["runs"]["vald"]
    write_results(out_dir, runs, dataset=dataset, checkpoint=str(cfg.checkpoint_path), extra=extra)
    with atomic_write(Path(out_dir) / "official_table.txt", "w") as fh:
        fh.write(out["table"] + "\n")
    summary = summarize(runs, dataset=dataset, checkpoint=str(cfg.checkpoint_path), extra=extra)
    summary.update({"table": out["table"], "results_dir": str(out_dir), "replications": out["replications"]})
    if not cfg.get("silent", False):
        print(f"results -> {out_dir}")
    return summary


def _plain(obj: Any) -> Any:
    """numpy scalars / arrays -> JSON-friendly floats and lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj
