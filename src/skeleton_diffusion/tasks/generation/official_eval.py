"""``eval.py task=generation evaluator=official``: MDM's HumanML3D / KIT-ML table with the official files.

Config keys (under ``task``; defaults = MDM's layout relative to ``task.official_root``):

* ``evaluator: official`` selects this path (our trained evaluator stays the default);
* ``official_root``: the folder holding MDM's downloads (``t2m/`` or ``kit/`` from
  ``prepare/download_t2m_evaluators.sh``, ``glove/`` from ``prepare/download_glove.sh``, ``dataset/`` with
  ``t2m_mean.npy``/``t2m_std.npy``); ``official_checkpoint``, ``glove_dir``, ``meta_dir`` override single paths;
* ``dataset_main_path`` / ``dataset.data_root``: the HumanML3D (KIT-ML) folder with ``Mean.npy``/``Std.npy``,
  ``new_joint_vecs/``, ``texts/``, ``test.txt``;
* ``eval_mode``: ``wo_mm`` (20 replications), ``mm_short`` / ``mm`` (5, with MultiModality), ``debug``;
  ``caption_length``: ``eos`` (MDM after fix #182) | ``padded`` (the MDM paper); ``seed`` (MDM 10).

The generator comes from the caller (the method registry's loader) and follows
:class:`~skeleton_diffusion.tasks.generation.official_protocol.OfficialGenerationProtocol`'s interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skeleton_diffusion.tasks.generation.official_protocol import protocol_from_files
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["official_paths", "main_official"]


def official_paths(task: Any, dataset_name: str = "humanml3d") -> dict[str, Path]:
    """Resolve ``finest.tar``, the GloVe folder and the evaluator statistics folder from the task config."""
    kind = "kit" if "kit" in str(dataset_name).lower() else "t2m"
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


def main_official(cfg: Any, generator: Any, *, data_root: str | Path | None = None) -> dict[str, Any]:
    """Run the official protocol for ``generator``; print the official summary block; return the result dict."""
    task = cfg.task
    name = str(cfg.dataset.get("dataset_name", "humanml3d")) if "dataset" in cfg else "humanml3d"
    paths = official_paths(task, name)
    root = data_root or cfg.get("dataset_main_path") or cfg.dataset.get("data_root")
    if root is None:
        raise ConfigError("evaluator=official needs dataset_main_path=<HumanML3D folder with Mean.npy, Std.npy, "
                          "new_joint_vecs/, texts/, test.txt>.")  # fmt: skip
    proto = protocol_from_files(paths["checkpoint"], paths["glove"], paths["meta"], root,
                                dataset=str(paths["dataset"]), device=resolve_device(cfg.get("device", "auto")),
                                mode=str(task.get("eval_mode", "wo_mm")), seed=int(cfg.get("seed", 10)),
                                caption_length=str(task.get("caption_length", "eos")))  # fmt: skip
    out = proto.run(generator)
    if not cfg.get("silent", False):
        print(out["table"])
    return out
