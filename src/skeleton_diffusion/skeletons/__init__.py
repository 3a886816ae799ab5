"""Skeletons: joint sets, limbs, node types, adjacency and reachability matrices (pure data + functions)."""

from .definitions import ALIASES, SPECS, SkeletonSpec
from .skeleton import SKELETON_NAMES, Skeleton, get_skeleton, node_type_ids

__all__ = ["ALIASES", "SPECS", "SKELETON_NAMES", "Skeleton", "SkeletonSpec", "get_skeleton", "node_type_ids"]
