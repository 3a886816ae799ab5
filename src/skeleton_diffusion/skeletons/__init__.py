"""Skeletons: joint sets, limbs, node types, adjacency and reachability matrices (pure data + functions).

Built-in tables (``amass``, ``amass-mano``, ``h36m``, ``freeman``) and skeletons defined at run time from a joint
hierarchy (:meth:`Skeleton.from_hierarchy`), a YAML/JSON file (:func:`load_skeleton_file`) or a BVH / URDF / MJCF
file (:func:`skeleton_from_bvh`, :func:`skeleton_from_urdf`, :func:`skeleton_from_mjcf`) share one mechanism.
"""

from skeleton_diffusion.skeletons.definitions import ALIASES, SPECS, SkeletonSpec
from skeleton_diffusion.skeletons.formats.files import SKELETON_FILE_NAME, describe_mismatch, load_skeleton_file, same_joint_order, save_skeleton_file, skeleton_from_bvh, skeleton_from_dict, skeleton_from_mjcf, skeleton_from_urdf, skeleton_to_dict
from skeleton_diffusion.skeletons.skeleton import SKELETON_NAMES, Skeleton, node_type_ids
from skeleton_diffusion.skeletons.lookup import get_skeleton, register_skeleton

__all__ = [
    "ALIASES", "SPECS", "SKELETON_NAMES", "SKELETON_FILE_NAME", "Skeleton", "SkeletonSpec", "get_skeleton",
    "node_type_ids", "register_skeleton", "load_skeleton_file", "save_skeleton_file", "skeleton_from_dict",
    "skeleton_to_dict", "skeleton_from_bvh", "skeleton_from_urdf", "skeleton_from_mjcf", "same_joint_order",
    "describe_mismatch",
]
