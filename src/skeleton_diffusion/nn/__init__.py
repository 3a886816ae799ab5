"""Networks: static-graph layers, the recurrent skeleton autoencoder and the diffusion denoiser."""

from skeleton_diffusion.nn.autoencoder import AutoEncoder, Decoder, Encoder, pose_loss
from skeleton_diffusion.nn.denoiser import Denoiser
from skeleton_diffusion.nn.graph_layers import (
    StaticGraphGRU,
    StaticGraphGRUCell,
    StaticGraphLinear,
    StaticGraphLSTM,
    StaticGraphLSTMCell,
    row_l1_normalise,
)

__all__ = [
    "AutoEncoder",
    "Decoder",
    "Denoiser",
    "Encoder",
    "StaticGraphGRU",
    "StaticGraphGRUCell",
    "StaticGraphLinear",
    "StaticGraphLSTM",
    "StaticGraphLSTMCell",
    "pose_loss",
    "row_l1_normalise",
]
