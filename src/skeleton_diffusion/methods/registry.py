"""One way to choose a method: a name -> :class:`MethodSpec` table.

Every entry point (the training shims, ``eval.py``, ``predict``, ``generate``, ``edit`` and ``convert``) asks this
module which code serves a method; nothing else matches on method names. A spec names its hooks as
``"module:function"`` strings inside the method's package, imported only when used, so importing the registry
does not import every method.

Hooks (each optional; :meth:`MethodSpec.hook` says clearly when a method lacks one):

``train(cfg, overrides) -> dict``
    the training command of the method (``train_diffusion.py`` / ``train_lifting.py`` / ``apps.train``).
``load(path, device="auto", **options) -> object``
    our run folder or checkpoint -> the object serving the method's tasks (:mod:`skeleton_diffusion.tasks.base`).
``hmp_predictor(cfg, device) -> HMPPredictorBundle``
    the motion-prediction evaluation's predictor built from the eval config (checkpoint or baseline).
``build(cfg) -> nn.Module``
    the network from the method's model config (lifting methods: the trainer builds through it).
``convert(src, out_dir, *, config=None, force=False, **options) -> Path``
    an official release file -> our run folder.

Checkpoints record ``meta["method"]``; a checkpoint without it is SkeletonDiffusion (old files and the shipped demo
model), unless its stored run config names ``model.method``.

Adding a method: one folder ``methods/<name>/``, one config file, one :func:`register` call (or one line in
:data:`_BUILTIN`); see ``docs/adding_a_method.md``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from skeleton_diffusion.utils.errors import ConfigError

DEFAULT_METHOD = "skeleton_diffusion"
TASKS = ("hmp", "generation", "lifting")


@dataclass(frozen=True)
class MethodSpec:
    """What the codebase knows about one method.

    ``package``: the import path of its home (``skeleton_diffusion.methods.<name>`` for built-ins);
    ``hooks``: hook name -> ``"module:function"`` relative to ``package``; ``aliases``: other names that select it
    (official config values such as ``supervised`` or ``ZeroVelocityBaseline``)."""

    name: str
    tasks: tuple[str, ...]
    package: str
    summary: str
    hooks: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def has(self, hook: str) -> bool:
        return hook in self.hooks

    def hook(self, hook: str) -> Callable[..., Any]:
        """The callable behind ``hook`` (imported now)."""
        if hook not in self.hooks:
            offered = ", ".join(sorted(self.hooks)) or "none"
            raise ConfigError(f"method '{self.name}' has no '{hook}' ({_HOOK_WORDS.get(hook, hook)}); it offers: "
                              f"{offered}. Methods that do: {', '.join(methods_with(hook)) or 'none'}.")
        module, _, attr = self.hooks[hook].partition(":")
        mod = importlib.import_module(f"{self.package}.{module}" if module else self.package)
        try:
            return getattr(mod, attr)
        except AttributeError as exc:  # a registry line pointing nowhere is a bug of the entry, say which
            raise ConfigError(f"method '{self.name}': hook '{hook}' points at {self.package}.{module}:{attr}, "
                              "which does not exist") from exc


_HOOK_WORDS = {
    "train": "a training command",
    "load": "a loader of its run folders",
    "hmp_predictor": "a motion-prediction predictor for eval.py",
    "build": "a network builder",
    "convert": "a converter of official release files",
}

_PKG = "skeleton_diffusion.methods"

_BUILTIN: tuple[MethodSpec, ...] = (
    MethodSpec("skeleton_diffusion", ("hmp",), f"{_PKG}.skeleton_diffusion",
               "SkeletonDiffusion (CVPR 2025): latent nonisotropic diffusion on a recurrent graph autoencoder",
               {"train": "train_diffusion:main", "train_autoencoder": "train_autoencoder:main",
                "load": "predictor:load_run", "hmp_predictor": "predictor:hmp_predictor",
                "convert": "convert:convert"},
               aliases=("SkeletonDiffusion", "isotropic_diffusion")),
    MethodSpec("zero_velocity", ("hmp",), f"{_PKG}.zero_velocity",
               "zero-velocity baseline: the last observed pose, held",
               {"hmp_predictor": "predictor:hmp_predictor"}, aliases=("ZeroVelocityBaseline",)),
    MethodSpec("mdm", ("hmp", "generation"), f"{_PKG}.mdm",
               "MDM (ICLR 2023): motion-space transformer diffusion (prediction, text/action generation, editing)",
               {"train": "trainer:main", "load": "predictor:load_run", "hmp_predictor": "hmp_predictor:hmp_predictor",
                "convert": "convert:convert"}),
    MethodSpec("crossdiff", ("generation",), f"{_PKG}.crossdiff",
               "CrossDiff (ECCV 2024): 2D/3D cross-diffusion for text-to-motion",
               {"train": "trainer:main", "load": "joints_sampling:load_crossdiff", "convert": "run:convert"}),
    MethodSpec("supervised_lifter", ("lifting",), f"{_PKG}.supervised_lifter",
               "supervised 2D->3D lifter (residual MLP)",
               {"train": "lifter:train", "load": "lifter:load_run"}, aliases=("supervised",)),
    MethodSpec("diffpose", ("lifting",), f"{_PKG}.diffpose",
               "DiffPose (CVPR 2023): 2D->3D lifting by diffusion from a prior pose (official GCNdiff + GCNpose)",
               {"train": "lifter:train", "load": "lifter:load_run", "convert": "checkpoint:convert"},
               aliases=("gcnpose",)),
    MethodSpec("diffhpe", ("lifting",), f"{_PKG}.diffhpe",
               "DiffHPE (ICCV-W 2023): diffusion-based 3D human pose estimation (official LiftingDiffusionModel)",
               {"train": "lifter:train", "load": "lifter:load_run", "convert": "run:convert"}),
    MethodSpec("diffpose_ours", ("lifting",), f"{_PKG}.diffpose",
               "our DiffPose variant on the shared lifting core (prior trained jointly, noise options)",
               {"train": "lifter:train", "load": "lifter:load_run"}),
    MethodSpec("diffhpe_ours", ("lifting",), f"{_PKG}.diffhpe",
               "our DiffHPE variant on the shared lifting core (CSDI denoiser, x0 prediction, noise options)",
               {"train": "lifter:train", "load": "lifter:load_run"}),
)

_REGISTRY: dict[str, MethodSpec] = {}
_ALIASES: dict[str, str] = {}


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` (and its aliases). A name already taken is refused unless ``replace=True``."""
    bad = [t for t in spec.tasks if t not in TASKS]
    if bad:
        raise ConfigError(f"method '{spec.name}': unknown task(s) {bad}; tasks are {', '.join(TASKS)}")
    if not replace and (spec.name in _REGISTRY or spec.name in _ALIASES):
        raise ConfigError(f"a method named '{spec.name}' is already registered (pass replace=True to override)")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (tests, plug-ins)."""
    spec = _REGISTRY.pop(name, None)
    for alias in spec.aliases if spec else ():
        _ALIASES.pop(alias, None)


for _spec in _BUILTIN:
    register(_spec)

#: Out-of-tree methods: ``SKELETON_DIFFUSION_METHODS=pkg.module[,other.module]`` names modules that call
#: :func:`register` when imported; they are imported on the first registry look-up (every CLI then knows them).
PLUGIN_ENV = "SKELETON_DIFFUSION_METHODS"
_plugins_loaded: set[str] = set()


def _load_plugins() -> None:
    import os

    for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(","))):
        if module in _plugins_loaded:
            continue
        _plugins_loaded.add(module)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{PLUGIN_ENV} names the module '{module}', which cannot be imported ({exc}); "
                              "put its folder on PYTHONPATH or fix the name") from exc


def canonical_name(name: str | None) -> str:
    """The registered name for ``name`` or one of its aliases (empty/None -> ``skeleton_diffusion``)."""
    _load_plugins()
    key = str(name or "").strip() or DEFAULT_METHOD
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        known = sorted(_REGISTRY)
        near = difflib.get_close_matches(key, known + sorted(_ALIASES), n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise ConfigError(f"unknown method '{name}'.{hint} Registered methods: {', '.join(known)} "
                          "(see skeleton_diffusion.methods.registry).")
    return key


def get_method(name: str | None) -> MethodSpec:
    """The :class:`MethodSpec` registered under ``name`` (or an alias). Unknown names: one clear paragraph."""
    return _REGISTRY[canonical_name(name)]


def available_methods(task: str | None = None) -> list[str]:
    """Registered method names, optionally only those serving ``task``."""
    _load_plugins()
    return sorted(n for n, s in _REGISTRY.items() if task is None or task in s.tasks)


def methods_with(hook: str) -> list[str]:
    return sorted(n for n, s in _REGISTRY.items() if s.has(hook))


def method_of_meta(meta: Mapping[str, Any] | None) -> str:
    """The method a checkpoint's ``meta`` records; no ``meta.method`` -> the run config's ``model.method``, else
    ``skeleton_diffusion`` (files written before the key existed)."""
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("method")
    if not name:
        config = meta.get("config")
        model = config.get("model") if isinstance(config, Mapping) else None
        name = model.get("method") if isinstance(model, Mapping) else None
    return canonical_name(name or DEFAULT_METHOD)


def method_of_checkpoint(path: str | Path) -> str:
    """The method of our checkpoint file or run folder (reads ``meta`` with ``weights_only=True``)."""
    from skeleton_diffusion.checkpoints.format import read_meta

    return method_of_meta(read_meta(path))


def method_of_config(cfg: Any) -> str:
    """The method a training/eval config selects: ``model.method`` / ``method_specs.method_name``, else, for a
    resumed run, the run's saved ``model.method``; default ``skeleton_diffusion``."""
    from omegaconf import OmegaConf

    for key in ("model.method", "method_specs.method_name"):
        value = OmegaConf.select(cfg, key, default=None)
        if value:
            return canonical_name(str(value))
    lifter = OmegaConf.select(cfg, "model.lifter.method", default=None)
    if lifter:
        return canonical_name(str(lifter))
    from skeleton_diffusion.training.run_dir import resumed_run_config

    saved = resumed_run_config(cfg)
    if saved is not None:
        for key in ("model.method", "model.lifter.method"):
            value = OmegaConf.select(saved, key, default=None)
            if value:
                return canonical_name(str(value))
    return DEFAULT_METHOD


def load_model(path: str | Path, device: Any = "auto", **options: Any) -> Any:
    """Load any of our run folders / checkpoints with the method that wrote it (``meta.method``)."""
    return get_method(method_of_checkpoint(path)).hook("load")(path, device=device, **options)


def train(cfg: Any, overrides: list[str] | None = None, *, hook: str = "train") -> Any:
    """Run the training command of the method ``cfg`` selects."""
    return get_method(method_of_config(cfg)).hook(hook)(cfg, overrides)


def convert(method: str, src: str | Path, out_dir: str | Path, **options: Any) -> Path:
    """Convert an official release file of ``method`` into our run folder."""
    return get_method(method).hook("convert")(Path(src), Path(out_dir), **options)
