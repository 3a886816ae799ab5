"""One observation-corruption module: missing joints / frames and noise, for lifting under occlusion and for the
motion-prediction noisy-observation evaluation.

Missing values are returned **with a visibility mask** (1 = observed, 0 = missing); the masked entries are set
to 0 so that nothing downstream reads stale values, and every lifting model takes the mask as an input channel
(the zero is never mistaken for an observation).

Occlusion types (DiffHPE's protocol, rates as its configs; joints found by name so any skeleton works):

==============  =====================  ============================================================================
name            DiffHPE ``miss_type``  what is removed
==============  =====================  ============================================================================
none            no_miss                nothing
rand_joints     random                 each (frame, joint) independently with probability ``rate`` (0.2)
struct_joints   structured_joint       the right leg (hip, knee, ankle/foot) over ``rate`` (0.4) of the window,
                                       one contiguous block of frames
frames          structured_frame       all joints over ``rate`` (0.2) of the window, one contiguous block
arms_legs       random_left_arm_       left arm (shoulder, elbow, wrist) and right leg in a random ``rate`` (0.4)
                right_leg              of the frames
noisy           noisy                  nothing missing; Gaussian noise of std ``noise_std`` (normalised 2D units;
                                       default 0.01 = 5 px on a 1000 px image) on every coordinate
==============  =====================  ============================================================================

``mixed`` draws one of none / rand_joints / arms_legs / struct_joints / frames per window (DiffHPE's training
mix). :func:`noisy_joints_np` is the motion-prediction noise (official draw order), used by
``data.augmentation.add_observation_noise``.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.data.augment.rng import random_normal, random_uniform
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["OCCLUSION_TYPES", "DEFAULT_RATES", "joint_groups", "corrupt_2d", "noisy_joints_np"]

OCCLUSION_TYPES = ("none", "rand_joints", "struct_joints", "frames", "arms_legs", "noisy", "mixed")
DEFAULT_RATES = {"rand_joints": 0.2, "struct_joints": 0.4, "frames": 0.2, "arms_legs": 0.4}
_MIXED = ("none", "rand_joints", "arms_legs", "struct_joints", "frames")


def joint_groups(joint_names: Sequence[str]) -> dict[str, list[int]]:
    """``right_leg`` and ``left_arm`` joint indices, found by name (``RHip/RKnee/RAnkle/RFoot/RHeel``,
    ``LShoulder/LElbow/LWrist``). Raises if the skeleton has neither."""
    leg = [i for i, n in enumerate(joint_names) if re.match(r"^R(Hip|Knee|Ankle|Heel|Foot)$", n)]
    arm = [i for i, n in enumerate(joint_names) if re.match(r"^L(Shoulder|Elbow|Wrist)$", n)]
    if not leg or not arm:
        raise ConfigError(f"cannot find the right leg / left arm joints by name in {list(joint_names)}")
    return {"right_leg": leg, "left_arm": arm}


def _block(n: int, length: int, gen: torch.Generator | None) -> slice:
    length = max(1, min(n, length))
    start = int(torch.randint(0, n - length + 1, (1,), generator=gen).item())
    return slice(start, start + length)


def corrupt_2d(pose_2d: Tensor, kind: str, joint_names: Sequence[str], *, rate: float | None = None,
               noise_std: float = 0.01, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Corrupt 2D windows ``pose_2d [B, F, J, 2]`` -> ``(corrupted [B, F, J, 2], mask [B, F, J])``.

    ``kind`` in :data:`OCCLUSION_TYPES`; ``rate`` overrides the default of :data:`DEFAULT_RATES`. The root
    (joint 0) is never removed for ``rand_joints`` (2D root-relative conventions need it). Draws use
    ``generator`` (CPU) so evaluation corruptions are reproducible. With F = 1, block/frame rates round up to
    the one frame (``frames`` then removes the whole pose)."""
    if kind not in OCCLUSION_TYPES:
        raise ConfigError(f"occlusion must be one of {OCCLUSION_TYPES}, got {kind!r}")
    if pose_2d.dim() != 4 or pose_2d.shape[-1] != 2 or pose_2d.shape[2] != len(joint_names):
        raise InputError(f"pose_2d must be [B, F, {len(joint_names)}, 2], got {tuple(pose_2d.shape)}")
    b, f, j, _ = pose_2d.shape
    mask = torch.ones((b, f, j), dtype=pose_2d.dtype)
    out = pose_2d.clone()
    if kind == "none":
        return out, mask.to(pose_2d.device)
    if kind == "noisy":
        noise = torch.randn(tuple(pose_2d.shape), generator=generator) * float(noise_std)
        return out + noise.to(out), mask.to(pose_2d.device)
    groups = joint_groups(joint_names) if kind in ("struct_joints", "arms_legs", "mixed") else {}
    kinds = [kind] * b
    if kind == "mixed":
        pick = torch.randint(0, len(_MIXED), (b,), generator=generator).tolist()
        kinds = [_MIXED[p] for p in pick]
    for i, k in enumerate(kinds):
        r = float(rate if rate is not None and kind != "mixed" else DEFAULT_RATES.get(k, 0.0))
        if k == "rand_joints":
            drop = torch.rand((f, j), generator=generator) < r
            drop[:, 0] = False
            mask[i][drop] = 0
        elif k == "struct_joints":
            mask[i, _block(f, int(np.ceil(f * r)), generator)][:, groups["right_leg"]] = 0
        elif k == "frames":
            mask[i, _block(f, int(np.ceil(f * r)), generator)] = 0
        elif k == "arms_legs":
            n = max(1, int(np.floor(f * r)))
            frames = torch.randperm(f, generator=generator)[:n]
            for jj in groups["right_leg"] + groups["left_arm"]:
                mask[i, frames, jj] = 0
    mask = mask.to(pose_2d.device)
    return out * mask.unsqueeze(-1), mask


def noisy_joints_np(x: np.ndarray, noise_level: float, noise_std: float, rng=None, *, skip_root: bool = True
                    ) -> np.ndarray:
    """Motion-prediction observation noise: a **copy** of ``x [T, J, 3]`` where each (frame, joint) except the
    root (``skip_root``) gets Gaussian noise of std ``noise_std`` (metres) with probability ``noise_level``.

    Official draw order: Gaussian noise ``[T, J', 3]`` first, then the uniform draws of the mask ``[T, J']``;
    ``rng`` None = numpy's global RNG (official), else a ``numpy.random.Generator``."""
    if not 0.0 <= noise_level <= 1.0:
        raise ValueError(f"noise_level must be a probability in [0, 1], got {noise_level}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0 metres, got {noise_std}")
    out = np.array(x, copy=True)
    body = out[..., 1:, :] if skip_root else out
    noise = random_normal(body.shape, rng) * noise_std
    mask = random_uniform(rng, body.shape[:-1]) < noise_level
    body[mask] += noise[mask]  # float64 noise added then cast back, exactly like the official in-place add
    return out
