"""Body parts for part-wise generation scores (CrossDiff's ``eval_part=all|upper|lower``; H19).

The official CrossDiff evaluation scores the upper and the lower body with evaluators trained on that part's
features only; the lower body is the root, hips, knees, ankles and feet (SMPL joints 0, 1, 2, 4, 5, 7, 8, 10, 11),
the upper body the rest. Here parts are found by joint name, so any skeleton works; for the 22-joint SMPL/AMASS
order the split equals the official one. A part-wise score = an evaluator trained on ``select_part`` motions
(``train_generation_evaluator ... eval_part=upper``) applied to real and generated motions
(``eval.py task=generation eval_part=upper``); the evaluator selects its part's features itself
(:func:`~skeleton_diffusion.tasks.generation.evaluator_networks.part_feature_indices`).
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from skeleton_diffusion.utils.errors import ConfigError

__all__ = ["EVAL_PARTS", "part_joint_indices", "select_part", "skeleton_part_joints"]

EVAL_PARTS = ("all", "upper", "lower")
_LOWER_KEYS = ("root", "pelvis", "hip", "knee", "ankle", "heel", "foot", "toe", "leg")


def part_joint_indices(joint_names: Sequence[str], part: str) -> list[int]:
    """Indices (ascending) of the joints of ``part`` (``all`` | ``upper`` | ``lower``) in ``joint_names``."""
    if part not in EVAL_PARTS:
        raise ConfigError(f"eval_part must be one of {EVAL_PARTS}, got {part!r}")
    lower = [i for i, n in enumerate(joint_names) if any(k in n.lower() for k in _LOWER_KEYS)]
    if part == "all":
        return list(range(len(joint_names)))
    if part == "lower":
        idx = lower
    else:
        idx = [i for i in range(len(joint_names)) if i not in set(lower)]
    if not idx:
        raise ConfigError(f"no {part}-body joints found by name in {list(joint_names)}")
    return idx


def select_part(motion: Tensor, joint_names: Sequence[str], part: str) -> Tensor:
    """``motion [..., T, J, C]`` -> ``[..., T, J_part, C]`` (the joints of ``part``)."""
    if motion.shape[-2] != len(joint_names):
        raise ConfigError(f"motion has {motion.shape[-2]} joints but {len(joint_names)} joint names were given")
    return motion[..., part_joint_indices(joint_names, part), :]


def skeleton_part_joints(skeleton_name: str, num_joints: int, part: str) -> list[int]:
    """Joint indices of ``part`` for a dataset's skeleton (``GenerationDataset.skeleton_name``, ``num_joints``)."""
    if part == "all":
        return list(range(int(num_joints)))
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    names = list(get_skeleton(skeleton_name).joint_names)
    if len(names) != int(num_joints):
        raise ConfigError(f"skeleton '{skeleton_name}' has {len(names)} joints but the motions have {num_joints}; "
                          f"cannot split them into eval_part={part!r}.")  # fmt: skip
    return part_joint_indices(names, part)
