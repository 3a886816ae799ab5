"""Graph building blocks of the official DiffPose networks (GONGJIA0208/Diffpose, ``models/``).

Written from the official definitions; parameter names follow the official modules so that a ``states[0]``
state dict loads unchanged (after the ``module.`` prefix of ``nn.DataParallel`` is removed):

* :class:`ChebConv` (``weight [K+1, 1, C_in, C_out]``, ``bias [1, 1, C_out]``): Chebyshev graph convolution on
  the symmetric-normalised Laplacian ``I - D^-1/2 A D^-1/2`` of a fixed adjacency;
* :class:`GraphAttentionLayer`: the GraFormer block (pre-norm multi-head self-attention over joints, then a
  two-layer graph network with a learnt dense adjacency ``A_hat``), each in a residual connection.

Poses are ``[B, J, C]`` (joints on axis 1, channels last), as in the official code.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import InputError

__all__ = [
    "H36M_EDGES", "adjacency_from_edges", "normalized_laplacian", "chebyshev_polynomials", "ChebConv",
    "GraphConvReLU", "ResidualChebBlock", "GraphAttentionLayer",
]

#: The 17-joint Human3.6M edge list of the official runner (``create_diffusion_model``).
H36M_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
    (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)


def adjacency_from_edges(num_joints: int, edges: Sequence[Sequence[int]]) -> Tensor:
    """Row-normalised ``A + I`` ``[J, J]`` float32 of an undirected edge list (official ``adj_mx_from_edges``,
    dense)."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if e.size and (e.min() < 0 or e.max() >= num_joints):
        raise InputError(f"edge list refers to joints outside 0..{num_joints - 1}: {e.tolist()}")
    a = np.zeros((num_joints, num_joints), dtype=np.float64)
    a[e[:, 0], e[:, 1]] = 1.0
    a = np.maximum(a, a.T) + np.eye(num_joints)
    a = a / a.sum(axis=1, keepdims=True)
    return torch.tensor(a.astype(np.float32))


def normalized_laplacian(graph: Tensor) -> Tensor:
    """``I - D^-1/2 G D^-1/2`` with ``D`` the row sums of ``graph [J, J]`` (official ``ChebConv.get_laplacian``)."""
    d = torch.diag(graph.sum(dim=-1).pow(-0.5))
    return torch.eye(graph.shape[0], dtype=graph.dtype, device=graph.device) - d @ graph @ d


def chebyshev_polynomials(laplacian: Tensor, order: int) -> Tensor:
    """``[order, J, J]``: T0 = I, T1 = L, Tk = 2 L T(k-1) - T(k-2)."""
    n = laplacian.shape[0]
    out = [torch.eye(n, dtype=laplacian.dtype, device=laplacian.device)]
    if order > 1:
        out.append(laplacian)
    for _ in range(2, order):
        out.append(2 * laplacian @ out[-1] - out[-2])
    return torch.stack(out[:order])


class ChebConv(nn.Module):
    """Chebyshev graph convolution of order ``K`` (``K + 1`` polynomials): ``[B, J, C_in] -> [B, J, C_out]``."""

    def __init__(self, in_c: int, out_c: int, K: int = 2, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(K + 1, 1, in_c, out_c))
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(1, 1, out_c)) if bias else None
        self.order = K + 1

    def forward(self, x: Tensor, graph: Tensor) -> Tensor:
        polys = chebyshev_polynomials(normalized_laplacian(graph), self.order).unsqueeze(1)  # [K, 1, J, J]
        out = (polys @ x) @ self.weight                                                      # [K, B, J, C_out]
        out = out.sum(dim=0)
        return out + self.bias if self.bias is not None else out


class GraphConvReLU(nn.Module):
    """Official ``_GraphConv``: ChebConv (K=2), ReLU, dropout, ReLU (parameters under ``gconv``)."""

    def __init__(self, in_c: int, out_c: int, p_dropout: float | None = None) -> None:
        super().__init__()
        self.gconv = ChebConv(in_c, out_c, K=2)
        self.dropout = nn.Dropout(p_dropout) if p_dropout is not None else None

    def forward(self, x: Tensor, graph: Tensor) -> Tensor:
        x = torch.relu(self.gconv(x, graph))
        if self.dropout is not None:
            x = self.dropout(x)
        return torch.relu(x)


class ResidualChebBlock(nn.Module):
    """Official ``_ResChebGC`` (``temb_dim=None``) / ``_ResChebGC_diff``: two graph convolutions in a residual
    connection; with ``temb_dim`` the projected (swish) timestep embedding is added after the first."""

    def __init__(self, adj: Tensor, dim: int, p_dropout: float = 0.1, temb_dim: int | None = None) -> None:
        super().__init__()
        self.register_buffer("adj", adj.clone(), persistent=False)
        self.gconv1 = GraphConvReLU(dim, dim, p_dropout)
        self.gconv2 = GraphConvReLU(dim, dim, p_dropout)
        self.temb_proj = nn.Linear(temb_dim, dim) if temb_dim is not None else None

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        out = self.gconv1(x, self.adj)
        if self.temb_proj is not None:
            if temb is None:
                raise InputError("this residual graph block needs a timestep embedding")
            out = out + self.temb_proj(temb * torch.sigmoid(temb))[:, None, :]
        return x + self.gconv2(out, self.adj)


class _LayerNorm(nn.Module):
    """GraFormer's LayerNorm: ``a_2 (x - mean) / (std + eps) + b_2`` with the unbiased std."""

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return self.a_2 * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps) + self.b_2


class _Sublayer(nn.Module):
    def __init__(self, size: int, dropout: float) -> None:
        super().__init__()
        self.norm = _LayerNorm(size)
        self.dropout = nn.Dropout(dropout)


class _MultiHeadAttention(nn.Module):
    """Self-attention over joints; ``linears.0..2`` = Q, K, V, ``linears.3`` = output."""

    def __init__(self, heads: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise InputError(f"hidden size {dim} is not divisible by the number of heads {heads}")
        self.heads, self.d_k = heads, dim // heads
        self.linears = nn.ModuleList([nn.Linear(dim, dim) for _ in range(4)])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        q, k, v = (lin(x).view(b, -1, self.heads, self.d_k).transpose(1, 2) for lin in self.linears[:3])
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        p = self.dropout(torch.softmax(scores, dim=-1))
        out = (p @ v).transpose(1, 2).contiguous().view(b, -1, self.heads * self.d_k)
        return self.linears[3](out)


class _LamGconv(nn.Module):
    """``fc(L X)`` with ``L = c^-1/2 A c^-1/2`` from the column sums ``c`` of the learnt ``A_hat`` (+1e-5)."""

    def __init__(self, in_f: int, out_f: int, relu: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(in_f, out_f)
        self.relu = relu

    def forward(self, x: Tensor, a_hat: Tensor) -> Tensor:
        d = (a_hat.sum(dim=0) + 1e-5).pow(-0.5)
        lap = d[:, None] * a_hat * d[None, :]
        x = self.fc(lap @ x)
        return torch.relu(x) if self.relu else x


class _GraphNet(nn.Module):
    def __init__(self, dim: int, n_pts: int) -> None:
        super().__init__()
        self.A_hat = nn.Parameter(torch.eye(n_pts))
        self.gconv1 = _LamGconv(dim, dim * 2, relu=True)
        self.gconv2 = _LamGconv(dim * 2, dim, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.gconv2(self.gconv1(x, self.A_hat), self.A_hat)


class GraphAttentionLayer(nn.Module):
    """Official ``GraAttenLayer``: ``x + MHA(LN(x))`` then ``x + GraphNet(LN(x))`` (``[B, J, D] -> [B, J, D]``)."""

    def __init__(self, dim: int, heads: int, n_pts: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = _MultiHeadAttention(heads, dim)
        self.feed_forward = _GraphNet(dim, n_pts)
        sub = _Sublayer(dim, dropout)
        self.sublayer = nn.ModuleList([sub, copy.deepcopy(sub)])

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        s0, s1 = self.sublayer
        x = x + s0.dropout(self.self_attn(s0.norm(x), mask))
        return x + s1.dropout(self.feed_forward(s1.norm(x)))
