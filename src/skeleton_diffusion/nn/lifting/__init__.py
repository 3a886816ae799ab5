"""2D->3D lifting models: supervised lifter (baseline and prior), graph denoiser, DiffPose / DiffHPE wrappers."""

from skeleton_diffusion.nn.lifting.csdi import CSDIDenoiser
from skeleton_diffusion.nn.lifting.denoiser import GraphDenoiser
from skeleton_diffusion.nn.lifting.features import condition_features, from_nodes, to_nodes
from skeleton_diffusion.nn.lifting.lifter import DiffusionLifter, build_lifter
from skeleton_diffusion.nn.lifting.supervised import ResidualMLPLifter

__all__ = ["GraphDenoiser", "CSDIDenoiser", "ResidualMLPLifter", "DiffusionLifter", "build_lifter", "condition_features",
           "to_nodes", "from_nodes"]
