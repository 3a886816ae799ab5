"""2D->3D lifting models: supervised lifter (baseline and prior), graph denoiser, DiffPose / DiffHPE wrappers."""

from .csdi import CSDIDenoiser
from .denoiser import GraphDenoiser
from .features import condition_features, from_nodes, to_nodes
from .lifter import DiffusionLifter, build_lifter
from .supervised import ResidualMLPLifter

__all__ = ["GraphDenoiser", "CSDIDenoiser", "ResidualMLPLifter", "DiffusionLifter", "build_lifter", "condition_features",
           "to_nodes", "from_nodes"]
