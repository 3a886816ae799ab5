"""Datasets built by our builders are usable by name: ``dataset=<name>`` finds their config without a copy.

Every builder that makes a generic dataset (``create_bvh_dataset``, ``create_native_dataset``, ...) writes a
complete ``configs/dataset`` group beside the data::

    <dataset_main_path>/processed/<NAME>/hmp/dataset_config.yaml      # as configs/dataset/*.yaml, with dataset_name
    <dataset_main_path>/processed/<NAME>/lifting/dataset_config.yaml  # a lifting set built from that dataset

This module adds a Hydra config source (scheme ``sd-datasets://<datasets folder>``) that exposes each such file
as the config ``dataset/<dataset_name>`` (also under its folder name ``<NAME>``), and a search-path plugin that
appends it to every Hydra app of this project (after ``configs/``, so a file in ``configs/dataset/`` wins).

The datasets folder searched is, in order: a ``dataset_main_path=DIR`` command-line override (``+``/``++``
forms too), the environment variable ``SKELETON_DIFFUSION_DATASETS``, else ``./datasets``. Both classes are
registered by :func:`register` (called when :mod:`skeleton_diffusion.config` is imported, which every entry
script does), so no ``hydra_plugins`` package needs installing.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional

from hydra.core.object_type import ObjectType
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

__all__ = ["BUILT_CONFIG_FILE", "ENV_VAR", "SCHEME", "datasets_root", "find_built_datasets", "register"]

#: File a builder writes next to ``data_3d_<name>.npz`` (a full ``configs/dataset`` group).
BUILT_CONFIG_FILE = "dataset_config.yaml"
ENV_VAR = "SKELETON_DIFFUSION_DATASETS"
SCHEME = "sd-datasets"
GROUP = "dataset"
_ARG = re.compile(r"^\+{0,2}dataset_main_path=(.+)$")


def datasets_root(argv: Optional[list[str]] = None) -> Path:
    """The datasets folder to search: ``dataset_main_path=`` in ``argv`` (default ``sys.argv``), then
    ``$SKELETON_DIFFUSION_DATASETS``, then ``./datasets`` (absolute)."""
    for arg in reversed(list(sys.argv[1:] if argv is None else argv)):
        m = _ARG.match(arg)
        if m:
            return Path(m.group(1).strip("'\"")).expanduser().absolute()
    return Path(os.environ.get(ENV_VAR) or "datasets").expanduser().absolute()


def find_built_datasets(root: str | os.PathLike) -> dict[str, Path]:
    """``{name: <root>/processed/<NAME>/hmp/dataset_config.yaml}`` for every built dataset under ``root``, plus
    ``<root>/processed/<NAME>/lifting/dataset_config.yaml`` of lifting sets built from a processed dataset.

    Each motion dataset is listed under its ``dataset_name`` and, when different, under its folder name ``<NAME>``;
    a lifting set under its ``dataset_name`` (e.g. ``cmuassimp_lifting``).
    Unreadable files are skipped here (loading one by name reports the problem).
    """
    found: dict[str, Path] = {}
    processed = Path(root) / "processed"
    if not processed.is_dir():
        return found
    for path in sorted(processed.glob(f"*/hmp/{BUILT_CONFIG_FILE}")):
        folder = path.parent.parent.name
        for key in dict.fromkeys([_dataset_name(path, folder), folder]):
            found.setdefault(key, path)
    # 2D->3D lifting sets built from a processed dataset (create_synthetic_lifting_dataset --from-processed):
    # listed under their dataset_name only (the folder name is the motion dataset's)
    for path in sorted(processed.glob(f"*/lifting/{BUILT_CONFIG_FILE}")):
        found.setdefault(_dataset_name(path, f"{path.parent.parent.name.lower()}_lifting"), path)
    return found


_NAMES: dict[tuple[str, int], str] = {}


def _dataset_name(path: Path, folder: str) -> str:
    """``dataset_name`` of a built config (cached per file modification time; Hydra asks many times)."""
    try:
        key = (str(path), path.stat().st_mtime_ns)
        if key not in _NAMES:
            _NAMES[key] = str(OmegaConf.load(path).get("dataset_name") or folder)
        return _NAMES[key]
    except Exception:  # noqa: BLE001 - a broken file must not break every other config lookup
        return folder


class BuiltDatasetConfigSource(ConfigSource):
    """Read-only config source: group ``dataset`` -> the builders' ``dataset_config.yaml`` files."""

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _found(self) -> dict[str, Path]:
        return find_built_datasets(self.path or datasets_root())

    @staticmethod
    def _split(config_path: str) -> tuple[str, str]:
        group, _, name = config_path.strip("/").partition("/")
        return group, name.removesuffix(".yaml")

    def load_config(self, config_path: str) -> ConfigResult:
        group, name = self._split(config_path)
        path = self._found().get(name) if group == GROUP else None
        if path is None:
            raise ConfigLoadError(f"Config not found: {config_path}")
        try:
            text = path.read_text(encoding="utf-8")
            cfg = OmegaConf.create(text)
            header = ConfigSource._get_header_dict(text[:512])
        except Exception as exc:  # noqa: BLE001 - named file, clear message
            raise ConfigLoadError(f"'{path}' (dataset config written by the dataset builder) is not valid YAML: "
                                  f"{exc}. Rebuild the dataset with --force.") from exc
        return ConfigResult(config=cfg, path=f"{self.scheme()}://{path.parent}", provider=self.provider,
                            header=header)

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        group, name = self._split(config_path)
        return config_path.strip("/") == "" or (group == GROUP and name == "")

    def is_config(self, config_path: str) -> bool:
        group, name = self._split(config_path)
        return group == GROUP and bool(name) and name in self._found()

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> list[str]:
        path = config_path.strip("/")
        if path == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        if path == GROUP and results_filter in (None, ObjectType.CONFIG):
            return sorted(self._found())
        return []


class BuiltDatasetSearchPath(SearchPathPlugin):
    """Appends ``sd-datasets://<datasets folder>`` to the config search path of every Hydra app."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        root = datasets_root()
        # the provider text is what Hydra prints under "Config search path" when dataset=<name> is not found
        provider = (f"datasets built by create_*_dataset, found as {root}/processed/<NAME>/hmp/{BUILT_CONFIG_FILE}"
                    f" (built elsewhere? add dataset_main_path=<its --data-root>)")
        search_path.append(provider=provider, path=f"{SCHEME}://{root}")


def register() -> None:
    """Register the config source and the search-path plugin with Hydra (idempotent)."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()
    for cls in (BuiltDatasetConfigSource, BuiltDatasetSearchPath):
        if f"{cls.__module__}.{cls.__name__}" not in plugins.class_name_to_class:
            plugins.register(cls)
