"""Joint tables of the supported skeletons (pure data).

Every table is the joint order of the processed arrays (``data_3d_<ds>.npz``): index 0 is always the root
(``GlobalRoot``), which the models and metrics drop. Limbs are ``(parent, child)`` pairs of joint indices in
the official order. ``hip_triangle`` names the three node pairs that replace the root's limbs in the node
graph (placed first in the node limb list). ``limb_angles_idx`` index the node limb list (used by MAE);
``kinchain`` lists node-index chains used for plotting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SkeletonSpec:
    """Raw description of one skeleton; :class:`~skeleton_diffusion.skeletons.Skeleton` derives the rest.

    Only ``name``, ``joint_names`` and ``limbs`` (or parents, see :meth:`Skeleton.from_hierarchy`) are needed;
    ``None`` fields are derived from the hierarchy (``skeletons/hierarchy.py``). The built-in skeletons give the
    official tables explicitly where the official *order* differs from the derived one.
    """

    name: str
    joint_names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    hip_triangle: tuple[tuple[str, str], ...] | None = None
    limb_angles_idx: tuple[tuple[int, ...], ...] | None = None
    kinchain: tuple[tuple[int, ...], ...] | None = None
    left_substring: str | None = None  # joints whose name contains this are "left" (besides the L-prefix rule)
    twin_rule: str = "auto"  # node types: 'auto' (any side marker), 'lr_prefix' (official), 'none'
    lr_pairs: tuple[tuple[str, str], ...] = ()  # explicit left/right twins (names), always share a node type
    node_types: tuple[int, ...] | None = None  # explicit node types (one per node) override the rule
    description: str = ""


_AMASS_JOINTS = (
    "GlobalRoot", "LHip", "RHip", "Spine1", "LKnee", "RKnee", "Spine3", "LHeel", "RHeel", "Neck",
    "LFoot", "RFoot", "BMN", "LSI", "RSI", "Head", "LShoulder", "RShoulder", "LElbow", "RElbow",
    "LWrist", "RWrist",
)
_AMASS_LIMBS = (
    (0, 3), (3, 6), (6, 9), (9, 12), (12, 15),  # body
    (9, 14), (14, 17), (17, 19), (19, 21),  # right arm
    (9, 13), (13, 16), (16, 18), (18, 20),  # left arm
    (0, 2), (2, 5), (5, 8), (8, 11),  # right leg
    (0, 1), (1, 4), (4, 7), (7, 10),  # left leg
)
_AMASS_ANGLES = ((0, 2, 3, 4, 5, 6), (0, 3), (4, 7, 8, 9, 10), (4, 11, 12, 13, 14), (0, 15, 16, 17), (18, 19, 20))
_AMASS_KINCHAIN = ((2, 5, 8, 11, 14), (8, 13, 16, 18, 20), (8, 12, 15, 17, 19), (1, 4, 7, 10), (0, 3, 6, 9), (0, 1, 2, 0))

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")
_MANO_JOINTS = _AMASS_JOINTS + tuple(
    f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS for k in (1, 2, 3)
)


def _mano_limbs() -> tuple[tuple[int, int], ...]:
    limbs: list[tuple[int, int]] = list(_AMASS_LIMBS)
    for wrist, first in ((20, 22), (21, 37)):
        bases = [first + 3 * f for f in range(5)]
        limbs += [(wrist, b) for b in bases]
        for b in bases:
            limbs += [(b, b + 1), (b + 1, b + 2)]
    return tuple(limbs)


_H36M_JOINTS = (
    "GlobalRoot", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Torso", "Neck", "Nose", "Head",
    "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)
_H36M_LIMBS = (
    (0, 1), (0, 4), (1, 2), (2, 3), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (8, 14),
    (11, 12), (12, 13), (14, 15), (15, 16),
)

_FREEMAN_JOINTS = (
    "GlobalRoot", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle", "Nose", "LEye", "REye", "LEar", "REar",
    "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist",
)
_FREEMAN_LIMBS = (
    (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (0, 7), (7, 8), (7, 9), (8, 10), (9, 11), (7, 12), (7, 13),
    (12, 14), (13, 15), (14, 16), (15, 17),
)

SPECS: dict[str, SkeletonSpec] = {
    "amass": SkeletonSpec(
        name="amass",
        joint_names=_AMASS_JOINTS,
        limbs=_AMASS_LIMBS,
        hip_triangle=(("LHip", "RHip"), ("LHip", "Spine1"), ("RHip", "Spine1")),
        limb_angles_idx=_AMASS_ANGLES,
        kinchain=_AMASS_KINCHAIN,
        left_substring="left",
        twin_rule="lr_prefix",
    ),
    "amass-mano": SkeletonSpec(
        name="amass-mano",
        joint_names=_MANO_JOINTS,
        limbs=_mano_limbs(),
        hip_triangle=(("LHip", "RHip"), ("LHip", "Spine1"), ("RHip", "Spine1")),
        limb_angles_idx=_AMASS_ANGLES,
        kinchain=_AMASS_KINCHAIN,
        left_substring="left",
        twin_rule="lr_prefix",
    ),
    "h36m": SkeletonSpec(
        name="h36m",
        joint_names=_H36M_JOINTS,
        limbs=_H36M_LIMBS,
        hip_triangle=(("RHip", "LHip"), ("RHip", "Torso"), ("LHip", "Torso")),
        limb_angles_idx=((3, 4), (0, 2, 7, 8, 9), (1, 7, 10, 12, 13), (7, 11, 14, 15)),
        kinchain=((0, 6, 7, 8, 9), (7, 10, 11, 12), (7, 13, 14, 15), (3, 4, 5), (0, 1, 2), (0, 3, 6)),
        twin_rule="lr_prefix",
    ),
    "freeman": SkeletonSpec(
        name="freeman",
        joint_names=_FREEMAN_JOINTS,
        limbs=_FREEMAN_LIMBS,
        hip_triangle=(("RHip", "LHip"), ("RHip", "Nose"), ("LHip", "Nose")),
        limb_angles_idx=((0, 1, 7, 9), (0, 4, 6), (1, 8, 10), (3, 5), (2, 11, 13, 15), (1, 12, 14, 16)),
        kinchain=((0, 6, 7, 9, 10, 8), (6, 11, 13, 15), (6, 12, 14, 16), (0, 2, 4), (1, 3, 5), (0, 1), (7, 8)),
        twin_rule="lr_prefix",
    ),
}

#: Dataset names that share another dataset's skeleton (3DPW is converted to the AMASS-22 layout; the
#: embedded synthetic dataset and BVH-derived datasets use it too).
ALIASES: dict[str, str] = {"3dpw": "amass", "synthetic": "amass", "bvh": "amass"}
