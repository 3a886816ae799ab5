"""The official DiffPose networks: the denoiser ``GCNdiff`` and the pose prior ``GCNpose``.

Both are GraFormer-style stacks over the 17 Human3.6M joints: a Chebyshev input convolution, ``num_layer`` x
(graph attention layer, residual Chebyshev block), and a Chebyshev output convolution.

* :class:`GCNdiff`: ``x [B, J, 5]`` (normalised u, v + root-relative camera x, y, z in metres) and a float
  timestep ``t [B]`` -> predicted noise ``[B, J, 5]``; the sinusoidal embedding of ``t`` (``hid_dim`` wide) goes
  through ``temb.dense`` (``hid_dim -> 4 hid_dim -> 4 hid_dim``) into every residual block.
* :class:`GCNpose`: ``uv [B, J, 2]`` -> camera-frame ``xyz [B, J, 3]`` (metres, not root-relative). The official
  class also builds an unused ``temb.dense``; it is kept so that official state dicts load strictly.

:func:`strip_data_parallel` removes the ``module.`` prefix of the official ``nn.DataParallel`` checkpoints.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.methods.diffpose.graph import (
    H36M_EDGES, ChebConv, GraphAttentionLayer, ResidualChebBlock, adjacency_from_edges,
)
from skeleton_diffusion.utils.errors import CheckpointError, InputError

__all__ = ["timestep_embedding", "GCNdiff", "GCNpose", "strip_data_parallel", "build_from_state_dict"]


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``[B, dim]`` of timesteps ``t [B]`` (sin half then cos half; DDPM/fairseq form)."""
    if t.dim() != 1:
        raise InputError(f"timesteps must be a 1-D tensor [B], got shape {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000) / (half - 1)))
    emb = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    return nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


class _GraFormerStack(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hid_dim: int, num_layer: int, n_head: int, dropout: float,
                 num_joints: int, edges: Sequence[Sequence[int]], temb: bool) -> None:
        super().__init__()
        adj = adjacency_from_edges(num_joints, edges)
        self.register_buffer("adj", adj, persistent=False)
        self.hid_dim, self.n_layers, self.num_joints = hid_dim, num_layer, num_joints
        emd_dim = 4 * hid_dim
        self.gconv_input = ChebConv(in_dim, hid_dim, K=2)
        self.gconv_layers = nn.ModuleList([ResidualChebBlock(adj, hid_dim, 0.1, emd_dim if temb else None)
                                           for _ in range(num_layer)])
        self.atten_layers = nn.ModuleList([GraphAttentionLayer(hid_dim, n_head, num_joints, dropout)
                                           for _ in range(num_layer)])
        self.gconv_output = ChebConv(hid_dim, out_dim, K=2)
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(hid_dim, emd_dim), nn.Linear(emd_dim, emd_dim)])

    def _check(self, x: Tensor, channels: int) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_joints or x.shape[2] != channels:
            raise InputError(f"{type(self).__name__} expects [B, {self.num_joints}, {channels}], got {tuple(x.shape)}")

    def _run(self, x: Tensor, temb: Tensor | None, mask: Tensor | None) -> Tensor:
        out = self.gconv_input(x, self.adj)
        for attn, block in zip(self.atten_layers, self.gconv_layers):
            out = block(attn(out, mask), temb)
        return self.gconv_output(out, self.adj)


class GCNdiff(_GraFormerStack):
    """Official DiffPose denoiser: ``(x [B, J, 5], t [B]) -> [B, J, 5]`` (predicted noise)."""

    def __init__(self, hid_dim: int = 96, num_layer: int = 5, n_head: int = 4, dropout: float = 0.25,
                 num_joints: int = 17, edges: Sequence[Sequence[int]] = H36M_EDGES, coords_dim: int = 5) -> None:
        super().__init__(coords_dim, coords_dim, hid_dim, num_layer, n_head, dropout, num_joints, edges, temb=True)
        self.coords_dim = coords_dim

    def forward(self, x: Tensor, t: Tensor, mask: Tensor | None = None) -> Tensor:
        self._check(x, self.coords_dim)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        temb = self.temb.dense[0](timestep_embedding(t, self.hid_dim))
        temb = self.temb.dense[1](temb * torch.sigmoid(temb))
        return self._run(x, temb, mask)


class GCNpose(_GraFormerStack):
    """Official DiffPose pose prior: ``uv [B, J, 2] -> xyz [B, J, 3]`` (camera frame, metres)."""

    def __init__(self, hid_dim: int = 96, num_layer: int = 5, n_head: int = 4, dropout: float = 0.25,
                 num_joints: int = 17, edges: Sequence[Sequence[int]] = H36M_EDGES) -> None:
        super().__init__(2, 3, hid_dim, num_layer, n_head, dropout, num_joints, edges, temb=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        self._check(x, 2)
        return self._run(x, None, mask)


def strip_data_parallel(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the ``module.`` prefix of ``nn.DataParallel`` keys (keys without it are kept)."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def build_from_state_dict(kind: str, state_dict: Mapping[str, Tensor], hid_dim: int, num_layer: int, n_head: int,
                          *, dropout: float = 0.25, edges: Sequence[Sequence[int]] = H36M_EDGES,
                          source: str = "state dict") -> nn.Module:
    """``kind`` = ``'denoiser'`` (GCNdiff) or ``'prior'`` (GCNpose) from an official ``states[0]`` (``module.*``
    keys or bare), strictly loaded and in eval mode. Joint count and coordinate width are read from the weights."""
    sd = strip_data_parallel(state_dict)
    for key in ("gconv_input.weight", "atten_layers.0.feed_forward.A_hat"):
        if key not in sd:
            raise CheckpointError(f"{source}: key '{key}' (or 'module.{key}') is missing; expected the official "
                                  f"DiffPose {'GCNdiff' if kind == 'denoiser' else 'GCNpose'} states[0] keys")
    num_joints = int(sd["atten_layers.0.feed_forward.A_hat"].shape[0])
    in_c = int(sd["gconv_input.weight"].shape[2])
    if kind == "denoiser":
        model: nn.Module = GCNdiff(hid_dim, num_layer, n_head, dropout, num_joints, edges, coords_dim=in_c)
    elif kind == "prior":
        if in_c != 2:
            raise CheckpointError(f"{source}: the pose prior's input convolution takes {in_c} channels; GCNpose "
                                  "takes the 2 normalised image coordinates (is this a GCNdiff checkpoint?)")
        model = GCNpose(hid_dim, num_layer, n_head, dropout, num_joints, edges)
    else:
        raise InputError(f"kind must be 'denoiser' or 'prior', got {kind!r}")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: the weights do not fit the official DiffPose {kind} with hid_dim="
                              f"{hid_dim}, num_layer={num_layer}, n_head={n_head}: {exc}") from None
    return model.eval()
