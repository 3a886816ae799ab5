"""Finding a skeleton by name: the built-ins, skeletons registered in this process, and skeleton files."""

from __future__ import annotations

from skeleton_diffusion.skeletons.definitions import ALIASES, SPECS
from skeleton_diffusion.skeletons.skeleton import SKELETON_NAMES
from skeleton_diffusion.skeletons.formats.files import load_skeleton_file
from skeleton_diffusion.skeletons.skeleton import Skeleton, builtin_skeleton

_REGISTRY: dict[str, Skeleton] = {}
_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def register_skeleton(skeleton: Skeleton, *aliases: str) -> Skeleton:
    """Make ``skeleton`` available to :func:`get_skeleton` under its name (and ``aliases``) in this process.

    Re-registering the same name with a different joint order is refused (``ValueError`` naming both)."""
    for key in (skeleton.name, *aliases):
        k = str(key).lower()
        if k in SPECS or k in ALIASES:
            if k == skeleton.name.lower() and skeleton.is_builtin:
                continue
            raise ValueError(f"cannot register skeleton {skeleton.name!r} as {key!r}: a built-in skeleton has that name")
        old = _REGISTRY.get(k)
        if old is not None and old.joint_names != skeleton.joint_names:
            raise ValueError(f"skeleton name {key!r} is already registered with joints {list(old.joint_names)}; "
                             f"refusing {list(skeleton.joint_names)} (rename one of them)")
        _REGISTRY[k] = skeleton
    return skeleton


def get_skeleton(name: "str | Skeleton") -> Skeleton:
    """Return the skeleton for a dataset/skeleton name (``amass``, ``amass-mano``, ``h36m``, ``freeman``,
    ``3dpw``, ``synthetic``), a name registered with :func:`register_skeleton`, or a skeleton file path
    (``.json`` / ``.yaml``, see ``skeletons.io``; loaded and registered). Raises ``ValueError`` listing the valid
    names otherwise."""
    if isinstance(name, Skeleton):
        return name
    key = str(name).lower()
    key = ALIASES.get(key, key)
    builtin = builtin_skeleton(key)
    if builtin is not None:
        return builtin
    if key in _REGISTRY:
        return _REGISTRY[key]
    if str(name).lower().endswith(_FILE_SUFFIXES):
        from pathlib import Path

        path = Path(str(name)).expanduser()
        if path.is_file():
            sk = load_skeleton_file(path)
            return register_skeleton(sk, str(name))
        raise ValueError(f"skeleton file not found: '{path}' (a skeleton name or a .json/.yaml skeleton file)")
    known = list(SKELETON_NAMES) + sorted(_REGISTRY)
    raise ValueError(f"Unknown skeleton {name!r}; expected one of {', '.join(known)} or a skeleton file "
                     "(.json/.yaml, see docs/any_skeleton.md)")
