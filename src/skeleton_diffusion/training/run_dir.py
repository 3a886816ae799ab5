"""Run folders and resume resolution (spec §7.2, §7.4, §9.13).

Layout: ``<root>/<task>/<dataset>/<stage>/<%B%d_%H-%M-%S>/`` with ``config.yaml`` (resolved), ``checkpoints/``
and ``tb/``. Only rank 0 creates or writes anything; the folder name is decided once on rank 0 and
broadcast (avoids Hydra's per-process ``${now:}`` trap under DDP). A folder that already holds another run
is never overwritten: resume it instead.

Resume forms (both return the saved config so CLI overrides can be merged on top — the official code says
it reloads the config but does not):

* ``resume=<run dir>`` (latest checkpoint) or ``resume=<checkpoint file>``; ``resume=auto``: resume
  ``output_log_path`` when it holds a checkpoint, else start fresh;
* the official four: ``if_resume_training=True load=True output_log_path=<run dir> load_path=<ckpt or ''>``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from omegaconf import DictConfig, OmegaConf

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.utils.io import atomic_write
from skeleton_diffusion.checkpoints.format import LAST_NAME, find_latest_checkpoint, list_checkpoints

__all__ = [
    "TIMESTAMP_FORMAT",
    "RunDir",
    "ResumeSpec",
    "timestamp",
    "run_dir_path",
    "prepare_run_dir",
    "resolve_resume",
    "apply_overrides",
    "RESUME_KEYS",
    "broadcast_path",
    "is_rank_zero",
    "VOLATILE_CONFIG_KEYS",
    "check_resume_stage",
]

_log = logging.getLogger(__name__)
TIMESTAMP_FORMAT = "%B%d_%H-%M-%S"  # official, e.g. June30_11-35-08
#: Top-level config keys that may differ between the original run and its resumption.
VOLATILE_CONFIG_KEYS = frozenset({
    "output_log_path", "resume", "if_resume_training", "load", "load_path", "progress", "silent", "device",
    "nproc_per_node", "dist_backend", "hydra",
})


def is_rank_zero() -> bool:
    try:
        import ignite.distributed as idist

        return idist.get_rank() == 0
    except Exception:  # noqa: BLE001
        return True


def broadcast_path(path: str | os.PathLike | None) -> Path | None:
    """Rank 0's ``path`` on every rank (no-op without a distributed context)."""
    import ignite.distributed as idist

    if idist.get_world_size() > 1:
        value = idist.broadcast(str(path) if path is not None else "", src=0, safe_mode=True)
        return Path(value) if value else None
    return None if path is None else Path(path)


def timestamp(now: _dt.datetime | None = None) -> str:
    """Official run-folder timestamp, e.g. ``June30_11-35-08``."""
    return (now or _dt.datetime.now()).strftime(TIMESTAMP_FORMAT)


def run_dir_path(root: str | os.PathLike, task: str, dataset: str, stage: str, stamp: str | None = None) -> Path:
    """``<root>/<task>/<dataset>/<stage>/<stamp>``; appends ``_1``, ``_2`` ... if that folder already exists
    (several jobs started in the same second)."""
    base = Path(root) / task / dataset / stage / (stamp or timestamp())
    path, i = base, 0
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}_{i}")
    return path


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tb(self) -> Path:
        return self.root / "tb"


def _as_container(cfg: Any) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def _strip(cfg: Mapping, ignore: Iterable[str]) -> dict:
    ignore = set(ignore)
    return {k: v for k, v in cfg.items() if k not in ignore}


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{prefix}{k}")
            else:
                out.extend(_diff_keys(a[k], b[k], f"{prefix}{k}."))
        return out
    return [] if a == b else [prefix.rstrip(".")]


def prepare_run_dir(
    path: str | os.PathLike,
    config: DictConfig | Mapping[str, Any],
    *,
    resume: bool = False,
    ignore_keys: Iterable[str] = VOLATILE_CONFIG_KEYS,
) -> RunDir:
    """Create (rank 0) ``path`` with ``config.yaml``, ``checkpoints/`` and ``tb/``; returns its :class:`RunDir`.

    Fresh start (``resume=False``): refuses a folder that already holds checkpoints (resume it or choose another
    folder). A folder whose run never wrote a checkpoint (a failed start) does not block: a differing
    ``config.yaml`` (ignoring ``ignore_keys``) is kept as ``config_unstarted_<timestamp>.yaml``.
    Resume: the folder must exist; ``config.yaml`` becomes the effective config (overrides given on resume
    included, so that a later ``resume=auto`` trains on with them) and, if it differs, the previous one is kept as
    ``config_before_resume_<timestamp>.yaml``.
    """
    run = RunDir(Path(path))
    cfg_obj = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
    if not is_rank_zero():
        return run
    if resume:
        if not run.root.is_dir():
            raise CheckpointError(f"cannot resume: run folder '{run.root}' does not exist")
    elif run.root.exists():
        has_ckpt = run.checkpoints.is_dir() and (bool(list_checkpoints(run.root)) or (run.checkpoints / LAST_NAME).exists())
        if has_ckpt:
            raise ConfigError(
                f"'{run.root}' already holds a training run with checkpoints. To continue it pass "
                f"resume={run.root}; to start a new run choose another output_log_path."
            )
        if run.config_path.is_file():  # a start that never wrote a checkpoint (e.g. failed on bad data)
            old = _strip(_as_container(_load_run_config(run.config_path)), ignore_keys)
            new = _strip(_as_container(cfg_obj), ignore_keys)
            diff = _diff_keys(old, new)
            if diff:  # does not block a fresh start; its config is kept, never lost
                kept = run.root / f"config_unstarted_{timestamp()}.yaml"
                os.replace(run.config_path, kept)
                _log.warning("'%s' held a run that never wrote a checkpoint (config differs in %s); starting "
                             "afresh there, its config kept as %s", run.root, diff[:8], kept.name)
    run.root.mkdir(parents=True, exist_ok=True)
    run.checkpoints.mkdir(exist_ok=True)
    run.tb.mkdir(exist_ok=True)
    text = OmegaConf.to_yaml(cfg_obj, resolve=True)
    if resume and run.config_path.exists():
        old = _strip(_as_container(_load_run_config(run.config_path)), ignore_keys)
        if not _diff_keys(old, _strip(_as_container(cfg_obj), ignore_keys)):
            return run
        with atomic_write(run.root / f"config_before_resume_{timestamp()}.yaml", "w") as fh:
            fh.write(run.config_path.read_text())
    with atomic_write(run.config_path, "w") as fh:
        fh.write(text)
    return run


@dataclass(frozen=True)
class ResumeSpec:
    """Where to resume from: the run folder, the checkpoint file and the run's saved config (or None)."""

    run_dir: Path
    checkpoint: Path
    config: DictConfig | None


def _run_dir_of(ckpt: Path) -> Path:
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


#: Top-level keys every saved training-run config has (autoencoder, diffusion, MDM and lifting runs); checked
#: when the saved config names its ``stage`` (other configs are not assumed to be training runs).
RUN_CONFIG_KEYS = ("stage", "task", "model")


def _load_run_config(path: Path) -> DictConfig:
    from skeleton_diffusion.config import load_config

    return load_config(path, what="run config")


def _load_saved_config(run_dir: Path) -> DictConfig | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        _log.warning("run folder '%s' has no config.yaml; repeat the original overrides on the command line", run_dir)
        return None
    from skeleton_diffusion.config import load_config  # a clear error naming the file when it is empty/corrupt/not a mapping

    cfg = load_config(path, what="run config")
    missing = [key for key in RUN_CONFIG_KEYS if key not in cfg]
    if "stage" in cfg and missing:  # a training run's config (they all have 'stage') that lost keys
        raise ConfigError(f"'{path}' lacks {missing}: not a complete run config (expected the config.yaml that "
                          f"train_*.py writes, with keys {list(RUN_CONFIG_KEYS)} and more). Restore it, or delete it "
                          "and repeat the run's original overrides on the resume command line.")
    return cfg


#: The script that trains (and resumes) each stage.
STAGE_SCRIPTS = {"autoencoder": "train_autoencoder.py", "diffusion": "train_diffusion.py",
                 "lifting": "train_lifting.py"}


def _nothing_to_resume(target: Path) -> str:
    """A run folder without checkpoint: the one command that works (start afresh in the same folder)."""
    stage = None
    if (target / "config.yaml").is_file():
        try:
            stage = _load_run_config(target / "config.yaml").get("stage")
        except Exception:  # noqa: BLE001  (the message below is the point; a broken config names no stage)
            stage = None
    script = STAGE_SCRIPTS.get(str(stage), "train_<stage>.py")
    return (f"cannot resume: '{target}' holds no checkpoint (looked in {target}/checkpoints): its run never "
            f"finished a training step, so there is nothing to resume. Start it afresh in the same folder (a folder "
            f"without checkpoints does not block a new start): python {script} output_log_path={target} "
            "<the run's overrides>")


def _from_target(target: Path) -> ResumeSpec:
    if target.is_file():
        return ResumeSpec(_run_dir_of(target), target, _load_saved_config(_run_dir_of(target)))
    if target.is_dir():
        ckpt = find_latest_checkpoint(target)
        if ckpt is None:
            raise CheckpointError(_nothing_to_resume(target))
        run_dir = _run_dir_of(ckpt)
        return ResumeSpec(run_dir, ckpt, _load_saved_config(run_dir))
    raise CheckpointError(f"cannot resume: '{target}' is neither a run folder nor a checkpoint file")


def resolve_resume(
    resume: str | os.PathLike | None = None,
    *,
    if_resume_training: bool = False,
    output_log_path: str | os.PathLike | None = None,
    load_path: str | os.PathLike | None = None,
) -> ResumeSpec | None:
    """Decide whether and from where to resume; ``None`` means a fresh run.

    ``resume`` wins over the official keys. ``resume='auto'`` resumes ``output_log_path`` if it has a
    checkpoint, else returns None. Official form: ``load_path`` empty -> latest checkpoint of
    ``output_log_path``; otherwise ``output_log_path`` must be ``dirname(dirname(load_path))``.
    """
    if resume not in (None, "", "null", "None"):
        if str(resume) == "auto":
            if output_log_path and Path(output_log_path).is_dir():
                ckpt = find_latest_checkpoint(output_log_path)
                if ckpt is not None:
                    return ResumeSpec(_run_dir_of(ckpt), ckpt, _load_saved_config(_run_dir_of(ckpt)))
            return None
        return _from_target(Path(resume).expanduser())
    if not if_resume_training:
        return None
    if not output_log_path:
        raise ConfigError("if_resume_training=True needs output_log_path=<run folder> (or use resume=<run folder>)")
    out = Path(output_log_path).expanduser()
    if load_path in (None, "", "null", "None"):
        if not out.is_dir():
            raise CheckpointError(f"cannot resume: output_log_path '{out}' does not exist")
        return _from_target(out)
    ckpt = Path(load_path).expanduser()
    if not ckpt.is_file():
        raise CheckpointError(f"cannot resume: load_path '{ckpt}' is not a file")
    if _run_dir_of(ckpt).resolve() != out.resolve():
        raise ConfigError(
            f"output_log_path '{out}' is not the run folder of load_path '{ckpt}' "
            f"(expected output_log_path={_run_dir_of(ckpt)}); or simply pass resume={ckpt}"
        )
    return ResumeSpec(out, ckpt, _load_saved_config(out))


#: Command-line keys that select the resume itself; never copied into the resumed run's config.
RESUME_KEYS = frozenset({"resume", "if_resume_training", "load", "load_path", "output_log_path"})


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], *, skip_keys: Iterable[str] = RESUME_KEYS) -> DictConfig:
    """Apply Hydra-style CLI overrides (``k=v``, ``+k=v``, ``++k=v``, ``~k``) to a resumed run's saved config.

    Returns a new config. ``skip_keys`` (the resume selectors) and ``hydra.*`` are ignored. Swapping a
    config group on resume (``dataset=h36m`` where ``dataset`` is a mapping) is refused with a clear error.
    Typical use: ``apply_overrides(spec.config, HydraConfig.get().overrides.task)``.
    """
    out = cfg.copy()
    skip = set(skip_keys)
    for raw in overrides:
        item = raw.strip()
        if item.startswith("~"):
            key = item[1:].split("=", 1)[0]
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(out, parent) if parent else out
            if isinstance(node, DictConfig) and leaf in node:
                node.pop(leaf)
            continue
        if "=" not in item:
            raise ConfigError(f"override {raw!r} is not of the form key=value")
        key, value = item.lstrip("+").split("=", 1)
        if key in skip or key.split(".")[0] in skip or key.startswith("hydra"):
            continue
        parsed = yaml.safe_load(value) if value != "" else ""
        current = OmegaConf.select(out, key, default=None)
        if isinstance(current, DictConfig) and not isinstance(parsed, dict):
            raise ConfigError(
                f"override {raw!r} swaps the config group '{key}' of the resumed run; a resumed run keeps its "
                "groups (start a new run to change them)"
            )
        OmegaConf.update(out, key, parsed, merge=True, force_add=True)
    return out


def check_resume_stage(cfg: DictConfig) -> None:
    """Refuse (one paragraph with the right command) to resume a run of another stage than ``cfg.stage``: e.g.
    ``train_autoencoder.py resume=<diffusion run>``. No-op when not resuming or when the run's stage is unknown."""
    _none = (None, "", "null", "None")
    want = cfg.get("stage")
    resume = cfg.get("resume")
    if resume in _none:
        if not bool(cfg.get("if_resume_training", False)):
            return
        target = cfg.get("load_path") if cfg.get("load_path") not in _none else cfg.get("output_log_path")
    else:
        target = cfg.get("output_log_path") if str(resume) == "auto" else resume
    if want in _none or target in _none:
        return
    path = Path(str(target)).expanduser()
    run = path if path.is_dir() else _run_dir_of(path)
    if not (run / "config.yaml").is_file():
        return
    saved = _load_run_config(run / "config.yaml").get("stage")
    if saved in _none or str(saved) == str(want):
        return
    script = STAGE_SCRIPTS.get(str(saved), f"train_{saved}.py")
    raise ConfigError(f"'{target}' is a {saved} run (stage: {saved} in {run / 'config.yaml'}), but this command "
                      f"trains the {want} stage. Resume it with its own script: python {script} resume={target}")


def resumed_run_config(cfg: DictConfig) -> DictConfig | None:
    """The saved config of the run ``resume=`` / ``if_resume_training`` points at (None when not resuming), so that
    ``python train_diffusion.py resume=<MDM run>`` needs no ``model=mdm``: the registry reads the method from it."""
    if cfg.get("resume") in (None, "", "null", "None") and not bool(cfg.get("if_resume_training", False)):
        return None
    spec = resolve_resume(cfg.get("resume"), if_resume_training=bool(cfg.get("if_resume_training", False)),
                          output_log_path=cfg.get("output_log_path"), load_path=cfg.get("load_path"))
    return spec.config if spec is not None else None
