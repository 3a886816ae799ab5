"""DiffHPE's denoiser ``LiftCTGCN``: graph convolutions inside CSDI-style gated residual blocks.

Tensors are ``[B, C, J, L]`` (channels, joints, frames) as in the official code; module and parameter names
follow the official ones so an official ``model.pth`` loads with ``strict=True`` (under the ``diffmodel.``
prefix of :class:`~skeleton_diffusion.methods.diffhpe.model.LiftingDiffusionModel`). Each residual block:
add the projected step embedding, a graph convolution across joints whose channels are the *frames*
(``time_layer``), one whose channels are the features (``feature_layer``), an optional graph non-local block,
then the gated ``tanh * sigmoid`` unit and a residual / skip split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DiffusionEmbedding",
    "GCNResidualBlock",
    "GraphConvBlock",
    "GraphNonLocal",
    "LiftCTGCN",
    "PreAggGraphConv",
    "step_embedding_table",
]


def step_embedding_table(num_steps: int, dim: int) -> Tensor:
    """CSDI's sinusoidal table ``[num_steps, dim]``: ``[sin(t f), cos(t f)]``, ``f = 10^(4 k / (dim/2 - 1))``."""
    half = dim / 2
    steps = torch.arange(num_steps).unsqueeze(1)
    freqs = 10.0 ** (torch.arange(half) / (half - 1) * 4.0).unsqueeze(0)
    table = steps * freqs
    return torch.cat([torch.sin(table), torch.cos(table)], dim=1)


class DiffusionEmbedding(nn.Module):
    """Step index ``[B]`` (or ``[1]``) -> ``[B, dim]``: table lookup, then two SiLU-activated linears.

    The table is a non-persistent buffer: the official checkpoints do not contain it; it is rebuilt here."""

    def __init__(self, num_steps: int, embedding_dim: int) -> None:
        super().__init__()
        self.register_buffer("embedding", step_embedding_table(num_steps, embedding_dim), persistent=False)
        self.projection1 = nn.Linear(embedding_dim, embedding_dim)
        self.projection2 = nn.Linear(embedding_dim, embedding_dim)

    def forward(self, step: Tensor) -> Tensor:
        x = self.embedding[step]
        return F.silu(self.projection2(F.silu(self.projection1(x))))


class PreAggGraphConv(nn.Module):
    """Decoupled pre-aggregation graph convolution (AnyGCN ``dc_preagg``): per-joint weights ``W [2, J, in, out]``
    for the self (diagonal) and neighbour parts of the adjacency. ``[N, J, in] -> [N, J, out]``."""

    def __init__(self, in_features: int, out_features: int, adj: Tensor) -> None:
        super().__init__()
        n = adj.shape[0]
        self.W = nn.Parameter(torch.zeros(2, n, in_features, out_features))
        nn.init.xavier_uniform_(self.W.data, gain=1.414)
        self.bias = nn.Parameter(torch.zeros(out_features))
        stdv = 1.0 / math.sqrt(in_features)
        self.bias.data.uniform_(-stdv, stdv)
        self.register_buffer("adj", adj.clone().float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        adj = self.adj[None]
        h0 = torch.einsum("bjn,jnm->bjm", x, self.W[0])
        h1 = torch.einsum("bjn,jnm->bjm", x, self.W[1])
        eye = torch.eye(adj.size(1), dtype=torch.float, device=x.device)
        out = torch.matmul(adj * eye, h0) + torch.matmul(adj * (1 - eye), h1)
        return out + self.bias.view(1, 1, -1)


class GraphConvBlock(nn.Module):
    """``gconv`` -> BatchNorm over the output channels -> (dropout of ReLU) -> ReLU (AnyGCN ``_GraphConv``)."""

    def __init__(self, adj: Tensor, input_dim: int, output_dim: int, p_dropout: float | None) -> None:
        super().__init__()
        self.gconv = PreAggGraphConv(input_dim, output_dim, adj)
        self.bn = nn.BatchNorm1d(output_dim)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p_dropout) if p_dropout is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.gconv(x).transpose(1, 2)).transpose(1, 2)
        if self.dropout is not None:
            x = self.dropout(self.relu(x))
        return self.relu(x)


class _NonLocalBlock1d(nn.Module):
    """Concatenation-style non-local block over joints, ``g``/``phi`` max-pooled by the group size."""

    def __init__(self, in_channels: int, sub_sample: int) -> None:
        super().__init__()
        self.inter_channels = max(1, in_channels // 2)
        inter = self.inter_channels

        def conv(i: int, o: int) -> nn.Conv1d:
            return nn.Conv1d(i, o, kernel_size=1)

        self.g: nn.Module = conv(in_channels, inter)
        self.theta = conv(in_channels, inter)
        self.phi: nn.Module = conv(in_channels, inter)
        self.concat_project = nn.Sequential(nn.Conv2d(2 * inter, 1, 1, 1, 0, bias=False), nn.ReLU())
        self.W = nn.Sequential(conv(inter, in_channels), nn.BatchNorm1d(in_channels))
        for m in (self.concat_project[0], self.g, self.theta, self.phi, self.W[0]):
            nn.init.kaiming_normal_(m.weight)
        for m in (self.g, self.theta, self.phi, self.W[0]):
            nn.init.zeros_(m.bias)
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)
        if sub_sample > 1:
            self.g = nn.Sequential(self.g, nn.MaxPool1d(kernel_size=sub_sample))
            self.phi = nn.Sequential(self.phi, nn.MaxPool1d(kernel_size=sub_sample))

    def forward(self, x: Tensor) -> Tensor:                                    # x [N, C, J]
        b = x.size(0)
        g_x = self.g(x).view(b, self.inter_channels, -1).permute(0, 2, 1)      # [N, J', inter]
        theta_x = self.theta(x).view(b, self.inter_channels, -1)
        phi_x = self.phi(x).view(b, self.inter_channels, -1)
        # the 1x1 conv of cat([theta_i, phi_j]) splits into w_theta·theta_i + w_phi·phi_j (no pair tensor)
        weight = self.concat_project[0].weight.view(2, self.inter_channels)
        f = torch.einsum("bci,c->bi", theta_x, weight[0])[:, :, None] + \
            torch.einsum("bcj,c->bj", phi_x, weight[1])[:, None, :]
        f = torch.relu(f) / phi_x.size(2)
        y = torch.matmul(f, g_x).permute(0, 2, 1).contiguous().view(b, self.inter_channels, *x.shape[2:])
        return self.W(y) + x


class GraphNonLocal(nn.Module):
    """Reorders joints by group, applies the non-local block on ``[N, C, J]``, restores the order.
    ``[N, J, C] -> [N, J, C]``."""

    def __init__(self, hid_dim: int, grouped_order: Sequence[int], restored_order: Sequence[int],
                 group_size: int) -> None:
        super().__init__()
        self.non_local = _NonLocalBlock1d(hid_dim, sub_sample=group_size)
        self.grouped_order = list(grouped_order)
        self.restored_order = list(restored_order)

    def forward(self, x: Tensor) -> Tensor:
        out = x[:, self.grouped_order, :]
        out = self.non_local(out.transpose(1, 2)).transpose(1, 2)
        return out[:, self.restored_order, :]


def _conv1d(i: int, o: int) -> nn.Conv1d:
    layer = nn.Conv1d(i, o, 1)
    nn.init.kaiming_normal_(layer.weight)
    return layer


class GCNResidualBlock(nn.Module):
    """One gated residual block; ``x [B, C, J, L]``, ``emb [B or 1, E]`` -> ``(residual out, skip)``."""

    def __init__(self, channels: int, seq_len: int, diffusion_embedding_dim: int, adj: Tensor,
                 p_dropout: float | None, nonlocal_orders: tuple[list[int], list[int], int] | None) -> None:
        super().__init__()
        self.diffusion_projection = nn.Linear(diffusion_embedding_dim, channels)
        self.mid_projection = _conv1d(channels, 2 * channels)
        self.output_projection = _conv1d(channels, 2 * channels)
        self.time_layer = GraphConvBlock(adj, seq_len, seq_len, p_dropout)
        self.feature_layer = GraphConvBlock(adj, channels, channels, p_dropout)
        self.use_nonlocal = nonlocal_orders is not None
        if nonlocal_orders is not None:
            self.non_local = GraphNonLocal(channels, *nonlocal_orders)

    @staticmethod
    def _joints_last(y: Tensor, b: int, c: int, j: int, length: int) -> Tensor:
        return y.reshape(b, c, j, length).permute(0, 3, 2, 1).reshape(b * length, j, c)

    @staticmethod
    def _joints_back(y: Tensor, b: int, c: int, j: int, length: int) -> Tensor:
        return y.reshape(b, length, j, c).permute(0, 3, 2, 1).reshape(b, c, j * length)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        b, c, j, length = x.shape
        x_flat = x.reshape(b, c, j * length)
        y = x_flat + self.diffusion_projection(emb).unsqueeze(-1)
        if length > 1:   # frames as channels of a joint graph convolution
            y = self.time_layer(y.reshape(b * c, j, length)).reshape(b, c, j * length)
        if j > 1:
            y = self._joints_back(self.feature_layer(self._joints_last(y, b, c, j, length)), b, c, j, length)
        if self.use_nonlocal:
            y = self._joints_back(self.non_local(self._joints_last(y, b, c, j, length)), b, c, j, length)
        gate, filt = torch.chunk(self.mid_projection(y), 2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual.reshape(x.shape)) / math.sqrt(2.0), skip.reshape(x.shape)


class LiftCTGCN(nn.Module):
    """Official DiffHPE denoiser: ``x [B, n_input_coords, J, L]``, step ``[B]`` or ``[1]`` -> ``[B, n_out, J, L]``
    (ε prediction). ``adj`` from :func:`~.skeleton.adjacency_from_parents`; ``joints_group`` enables non-local."""

    def __init__(self, *, channels: int, layers: int, diffusion_embedding_dim: int, num_steps: int, seq_len: int,
                 adj: Tensor, p_dropout: float | None = None,
                 joints_group: Sequence[Sequence[int]] | None = None,
                 n_input_coords: int = 5, n_output_coords: int = 3) -> None:
        super().__init__()
        from skeleton_diffusion.methods.diffhpe.skeleton import group_orders

        self.channels = channels
        self.n_inputs_coords = n_input_coords
        self.n_output_coords = n_output_coords
        self.seq_len = seq_len
        self.diffusion_embedding = DiffusionEmbedding(num_steps, diffusion_embedding_dim)
        self.input_projection = _conv1d(n_input_coords, channels)
        self.output_projection1 = _conv1d(channels, channels)
        self.output_projection2 = _conv1d(channels, n_output_coords)
        nn.init.zeros_(self.output_projection2.weight)
        orders = group_orders(joints_group) if joints_group is not None else None
        self.residual_layers = nn.ModuleList([
            GCNResidualBlock(channels, seq_len, diffusion_embedding_dim, adj, p_dropout, orders)
            for _ in range(layers)])

    def forward(self, x: Tensor, diffusion_step: Tensor) -> Tensor:
        b, d, j, length = x.shape
        if d != self.n_inputs_coords:
            raise ValueError(f"LiftCTGCN expects {self.n_inputs_coords} input channels [B, C, J, L], "
                             f"got {tuple(x.shape)}")
        h = F.relu(self.input_projection(x.reshape(b, d, j * length))).reshape(b, self.channels, j, length)
        emb = self.diffusion_embedding(diffusion_step)
        skips = []
        for layer in self.residual_layers:
            h, skip = layer(h, emb)
            skips.append(skip)
        h = torch.sum(torch.stack(skips), dim=0) / math.sqrt(len(self.residual_layers))
        h = F.relu(self.output_projection1(h.reshape(b, self.channels, -1)))
        return self.output_projection2(h).reshape(b, self.n_output_coords, j, length)
