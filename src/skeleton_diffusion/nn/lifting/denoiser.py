"""Graph denoiser for lifting diffusion (GraFormer / DiffPose-style): per-joint tokens, multi-head self-attention
across joints interleaved with graph convolutions over the skeleton, timestep embedding added to every layer.

Defaults follow DiffPose: hidden 96, 5 layers, 4 heads. Called by the diffusion core as
``model(x_t [B, N, D], t [B], x_self_cond, x_cond [B, N, D_cond]) -> [B, N, D]``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["GraphDenoiser", "normalized_adjacency"]


def normalized_adjacency(num_nodes: int, edges: Sequence[tuple[int, int]]) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` ``[N, N]`` of an undirected graph."""
    a = torch.eye(num_nodes)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    d = a.sum(dim=1).rsqrt()
    return d[:, None] * a * d[None, :]


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``[B, dim]`` of (float) timesteps ``t [B]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, adj: Tensor, dropout: float) -> None:
        super().__init__()
        self.n1, self.n2, self.n3 = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.gconv = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * hidden, hidden))
        self.temb = nn.Linear(hidden, hidden)
        self.register_buffer("adj", adj.clone(), persistent=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        h = h + self.temb(temb)[:, None]
        x = self.n1(h)
        h = h + self.drop(self.attn(x, x, x, need_weights=False)[0])
        h = h + self.drop(torch.relu(self.adj @ self.gconv(self.n2(h))))
        return h + self.drop(self.ffn(self.n3(h)))


class GraphDenoiser(nn.Module):
    """Args: ``num_nodes`` N, ``node_edges`` (node-index pairs), ``in_dim`` D (F*3), ``cond_dim`` (F*5 [+ F*3 for
    a prior estimate]), ``hidden`` (96), ``layers`` (5), ``heads`` (4), ``dropout``."""

    def __init__(self, num_nodes: int, node_edges: Sequence[tuple[int, int]], in_dim: int, cond_dim: int,
                 hidden: int = 96, layers: int = 5, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.channels, self.out_dim, self.cond_dim = int(num_nodes), int(in_dim), int(cond_dim)
        self.self_condition = False
        self.hidden = int(hidden)
        self.inp = nn.Linear(self.out_dim + self.cond_dim, hidden)
        self.node_emb = nn.Parameter(torch.zeros(self.channels, hidden))
        nn.init.normal_(self.node_emb, std=0.02)
        self.time_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        adj = normalized_adjacency(self.channels, node_edges)
        self.layers = nn.ModuleList([_Layer(hidden, heads, adj, dropout) for _ in range(int(layers))])
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, self.out_dim))

    def forward(self, x: Tensor, t: Tensor, x_self_cond: Optional[Tensor] = None,
                x_cond: Optional[Tensor] = None) -> Tensor:
        if x_cond is None:
            x_cond = x.new_zeros(x.shape[0], self.channels, self.cond_dim)
        h = self.inp(torch.cat([x, x_cond], dim=-1)) + self.node_emb
        temb = self.time_mlp(timestep_embedding(t, self.hidden))
        for layer in self.layers:
            h = layer(h, temb)
        return self.out(h)
