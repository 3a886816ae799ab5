"""``eval.py``: evaluate any registered method on its task with the official protocol.

    python eval.py dataset=amass checkpoint_path=<run or checkpoint> stats_mode=probabilistic     # task=hmp
    python eval.py dataset=h36m method_specs=zero_velocity                                         # baseline
    python eval.py task=generation dataset=synthetic checkpoint_path=<MDM text / CrossDiff run>
    python eval.py task=lifting checkpoint_path=<lifting run> occlusion=all

The task comes from ``task.task_name``; the model from the checkpoint's ``meta.method`` (or, without a checkpoint,
``method_specs.method_name``) through :mod:`skeleton_diffusion.methods.registry`.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from skeleton_diffusion.methods import registry
from skeleton_diffusion.utils.errors import ConfigError

TASKS = ("hmp", "generation", "lifting")


def eval_method(cfg: DictConfig) -> str:
    """The method to evaluate: the checkpoint's recorded method, else ``method_specs.method_name``."""
    if cfg.get("checkpoint_path"):
        return registry.method_of_checkpoint(cfg.checkpoint_path)
    name = (cfg.get("method_specs") or {}).get("method_name")
    if not name or registry.canonical_name(str(name)) == registry.DEFAULT_METHOD:
        raise ConfigError("checkpoint_path=<run folder or checkpoint> is required "
                          "(or method_specs=zero_velocity for the baseline)")
    return registry.canonical_name(str(name))


def hmp_predictor(cfg: DictConfig, device: torch.device) -> Any:
    """The predictor of ``cfg`` for the motion-prediction protocol (each method's ``hmp_predictor`` hook)."""
    spec = registry.get_method(eval_method(cfg))
    if "hmp" not in spec.tasks:
        raise ConfigError(f"'{spec.name}' is not a motion-prediction method (it serves: {', '.join(spec.tasks)}); "
                          f"evaluate it with task={spec.tasks[0]}")
    return spec.hook("hmp_predictor")(cfg, device)


def load_generator(path: Any, device: torch.device) -> Any:
    """A generator from a run folder or checkpoint (each method's ``load`` hook); refuses non-generation methods."""
    spec = registry.get_method(registry.method_of_checkpoint(path))
    if "generation" not in spec.tasks:
        raise ConfigError(f"checkpoint '{path}' is a {spec.name} model, which does not generate motion "
                          f"(it serves: {', '.join(spec.tasks)}); generation methods: "
                          f"{', '.join(registry.available_methods('generation'))}")
    model = spec.hook("load")(path, device=device)
    if not hasattr(model, "generate"):
        raise ConfigError(f"checkpoint '{path}' is not a generation model (its {spec.name} predictor has no "
                          "generate(); train it with condition=text or condition=action)")
    return model


def load_lifter(path: Any, device: torch.device) -> Any:
    """A lifter from a run folder or checkpoint (each method's ``load`` hook): converted official DiffPose / DiffHPE
    runs get their authors' protocol, our lifting runs ours."""
    spec = registry.get_method(registry.method_of_checkpoint(path))
    if "lifting" not in spec.tasks:
        raise ConfigError(f"checkpoint '{path}' is a {spec.name} model, not a 2D->3D lifter (lifting methods: "
                          f"{', '.join(registry.available_methods('lifting'))})")
    return spec.hook("load")(path, device=device)


def main(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation ``cfg`` describes (``configs/eval.yaml``); writes and returns the summary."""
    task = str((cfg.get("task") or {}).get("task_name", "hmp"))
    if task == "hmp":
        from skeleton_diffusion.tasks.hmp.protocol import main as evaluate_hmp

        return evaluate_hmp(cfg, hmp_predictor)
    if task == "generation":
        from skeleton_diffusion.tasks.generation.protocol import main as evaluate_generation

        return evaluate_generation(cfg, load_generator)
    if task == "lifting":
        from skeleton_diffusion.tasks.lifting.protocol import main as evaluate_lifting

        return evaluate_lifting(cfg, load_lifter)
    raise ConfigError(f"task={task} has no evaluation protocol; known: {', '.join(TASKS)}")
