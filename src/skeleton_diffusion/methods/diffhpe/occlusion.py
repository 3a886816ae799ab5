"""DiffHPE's occlusion generator (``PoseSequenceGenerator``), draw for draw.

One call per window, one shared ``numpy.random.RandomState`` (``np.random.seed(s)`` ≡ ``RandomState(s)``).
Masks are ``[L, J]`` float64 (1 = visible); the masked 2D coordinates are set to 0 and the model gets no mask
channel. Official facts kept here (with their consequences documented in ``docs/methods/diffhpe.md``):

* ``random`` compares ``U(0,1) > miss_rate`` per joint and frame, so the root can be dropped, and the config's
  default ``miss_rate: 20`` masks *every* joint (only the occlusion configs set 0.2 / 0.4);
* ``structured_*`` blocks last ``int(L·rate)`` frames and start in ``[0, L − len − 1]``;
* ``random_left_arm_right_leg`` removes joints 1, 2, 3, 11, 12, 13 in ``floor(rate·L)`` random frames;
* ``noisy`` adds N(0, ``noise_sigma``) to the normalised coordinates; the official pipeline never passes the
  config's ``noise_sigma``, so it is always the default 5;
* ``all`` first draws one of five types, each with its own rate.
"""

from __future__ import annotations

import math

import numpy as np

from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["ALL_MISS_RATES", "LEFT_ARM_RIGHT_LEG", "MISS_TYPES", "RIGHT_LEG", "official_occlusion_mask"]

MISS_TYPES = ("no_miss", "random", "random_left_arm_right_leg", "structured_joint", "structured_frame", "noisy",
              "all")
ALL_MISS_RATES: dict[str, float] = {"no_miss": 0.2, "random": 0.2, "random_left_arm_right_leg": 0.4,
                                    "structured_joint": 0.4, "structured_frame": 0.2}
LEFT_ARM_RIGHT_LEG = (1, 2, 3, 11, 12, 13)
RIGHT_LEG = (1, 2, 3)


def official_occlusion_mask(miss_type: str, seq_len: int, num_joints: int, miss_rate: float,
                            rng: np.random.RandomState, noise_sigma: float = 5
                            ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The mask ``[L, J]`` of one window (``'noisy'``: ``(mask, noise [L, J, 2])``), consuming ``rng`` exactly
    as the official generator does."""
    if miss_type not in MISS_TYPES:
        raise ConfigError(f"miss_type must be one of {MISS_TYPES}, got {miss_type!r}")
    shape = (int(seq_len), int(num_joints))
    if miss_type == "all":
        miss_type = str(rng.choice(list(ALL_MISS_RATES.keys())))
        miss_rate = ALL_MISS_RATES[miss_type]
    if miss_type == "no_miss":
        return np.ones(shape)
    if miss_type == "random":
        mask = np.zeros(shape)
        mask[rng.uniform(0.0, 1.0, size=shape) > miss_rate] = 1.0
        return mask
    mask = np.ones(shape)
    if miss_type == "random_left_arm_right_leg":
        frames = rng.choice(shape[0], size=math.floor(miss_rate * shape[0]), replace=False).tolist()
        for j in LEFT_ARM_RIGHT_LEG:
            mask[frames, j] = 0.0
        return mask
    if miss_type in ("structured_joint", "structured_frame"):
        occl_len = int(shape[0] * miss_rate)
        start = int(rng.choice(shape[0] - occl_len, size=1, replace=False)[0])
        if miss_type == "structured_joint":
            mask[start:start + occl_len, list(RIGHT_LEG)] = 0.0
        else:
            mask[start:start + occl_len] = 0.0
        return mask
    noise = rng.normal(0, noise_sigma, size=shape + (2,))     # noisy
    return mask, noise
