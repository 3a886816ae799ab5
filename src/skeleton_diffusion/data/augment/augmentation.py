"""Training-time augmentation and observation noise, in processed (world) space ``[..., T, J, 3]`` metres.

Official semantics (spec §5.3-§5.4), reproduced by default:

* mirroring: for coordinate 0 (x) then coordinate 1 (y), independently with probability ``p``, negate that
  coordinate of obs, future and mm_gt. Left/right labels are **not** swapped (a reflected body), unless
  ``swap_pairs`` is given (a label-swapping mirror, an option the official code lacks);
* rotation: with probability ``p``, rotate about the z axis (coordinate index 2) by a uniform integer degree
  in ``[0, 359]``;
* observation noise: per (frame, joint) of the observation except the root, with probability ``noise_level``,
  add ``N(0, noise_std^2)`` per coordinate (metres).

Random numbers come from ``rng``: ``None`` means numpy's global RNG (official behaviour; seed it with
``np.random.seed`` / the DataLoader ``worker_init_fn``), or pass a ``np.random.RandomState`` /
``np.random.Generator``. Inputs are never modified in place: every function returns new arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from skeleton_diffusion.data.augment.corruption import noisy_joints_np
from skeleton_diffusion.data.augment.rng import RNG, _rng, random_int, random_normal, random_uniform  # noqa: F401

__all__ = [
    "random_uniform",
    "random_int",
    "random_normal",
    "mirror",
    "rotate_z",
    "rotation_matrix_z",
    "add_observation_noise",
    "left_right_pairs",
]

def left_right_pairs(joint_names: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of left/right twin joints, from names (``LHip``/``RHip``, ``left_x``/``right_x``)."""
    idx = {n: i for i, n in enumerate(joint_names)}
    pairs = []
    for n, i in idx.items():
        if len(n) > 1 and n[0] == "L" and n[1].isupper() and ("R" + n[1:]) in idx:
            pairs.append((i, idx["R" + n[1:]]))
        elif n.startswith("left") and ("right" + n[4:]) in idx:
            pairs.append((i, idx["right" + n[4:]]))
    return pairs


def _swap(x: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    if not pairs:
        return x
    perm = np.arange(x.shape[-2])
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return x[..., perm, :]


def mirror(
    arrays: Sequence[np.ndarray | None],
    p: float,
    rng: RNG = None,
    swap_pairs: Sequence[tuple[int, int]] | None = None,
) -> list[np.ndarray | None]:
    """Official mirroring: for m in (0, 1), with probability ``p`` negate coordinate m of every array.

    Draws one uniform number per axis only when ``p != 0`` (official draw order). ``None`` entries pass through.
    """
    out = list(arrays)
    if p == 0:
        return out
    for m in (0, 1):
        if random_uniform(rng) < p:
            for k, a in enumerate(out):
                if a is None:
                    continue
                a = a.copy()
                a[..., m] *= -1
                if swap_pairs:
                    a = _swap(a, swap_pairs)
                out[k] = a
    return out


_INT_DEGREE_TABLE: np.ndarray | None = None


def rotation_matrix_z(degrees: float) -> np.ndarray:
    """3x3 float32 rotation about z (coordinate 2) by ``degrees`` (scipy ``from_euler('z', ...)``).

    Integer degrees in [0, 359] (the augmentation's) come from a table built once with the same scipy call."""
    global _INT_DEGREE_TABLE
    if float(degrees).is_integer() and 0 <= degrees < 360:
        if _INT_DEGREE_TABLE is None:
            _INT_DEGREE_TABLE = Rotation.from_euler("z", np.arange(360.0)[:, None], degrees=True).as_matrix().astype(np.float32)
            _INT_DEGREE_TABLE.flags.writeable = False
        return _INT_DEGREE_TABLE[int(degrees)]
    return Rotation.from_euler("z", degrees, degrees=True).as_matrix().astype(np.float32)


def rotate_z(arrays: Sequence[np.ndarray | None], p: float, rng: RNG = None) -> list[np.ndarray | None]:
    """Official rotation: with probability ``p``, rotate all arrays about z by a uniform integer degree [0, 359]."""
    out = list(arrays)
    if p == 0:
        return out
    if random_uniform(rng) < p:
        r = rotation_matrix_z(random_int(0, 360, rng))
        for k, a in enumerate(out):
            if a is not None:
                out[k] = (a.reshape(-1, 3) @ r.T).reshape(a.shape).astype(a.dtype, copy=False)
    return out


def add_observation_noise(obs: np.ndarray, noise_level: float, noise_std: float, rng: RNG = None) -> np.ndarray:
    """Return a noisy **copy** of ``obs [T, J, 3]`` (root, joint 0, untouched).

    Official draw order: Gaussian noise ``[T, J-1, 3]`` first, then the Bernoulli mask ``[T, J-1]``.
    Implemented by the shared corruption module (:func:`skeleton_diffusion.data.augment.corruption.noisy_joints_np`).
    """
    return noisy_joints_np(obs, noise_level, noise_std, rng, skip_root=True)
