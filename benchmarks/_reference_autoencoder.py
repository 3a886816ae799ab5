"""Straightforward step-by-step autoencoder, computed the way the official implementation computes it.

Used only as the baseline of ``bench_autoencoder.py``. It has the same parameter names as
:class:`skeleton_diffusion.nn.AutoEncoder` (so both load the same state dict) but runs the recurrences naively:
every time step re-gathers the per-type weights with ``weight[node_type_index]``, applies them with an einsum,
mixes with a broadcast batched matmul, builds a device scalar for the (no-op) clockwork mask and multiplies by
it, and the decoder calls the whole stack once per step with a freshly concatenated input.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(g: Tensor) -> Tensor:
    return F.normalize(g, p=1.0, dim=1)


def _per_node(x: Tensor, w: Tensor) -> Tensor:
    # x [B, N, in], w [N, out, in] -> [B, N, out]
    return torch.einsum("noi,bni->bno", w, x)


class RefLinear(nn.Module):
    def __init__(self, fin: int, fout: int, types: Tensor, bias: bool = True) -> None:
        super().__init__()
        nt = int(types.max()) + 1
        self.G = nn.Parameter(torch.eye(types.numel()))
        self.weight = nn.Parameter(torch.empty(nt, fout, fin).uniform_(-0.1, 0.1))
        self.bias = nn.Parameter(torch.zeros(nt, fout)) if bias else None
        self.node_type_index = types  # plain attribute, as officially (moved to the device at each call)

    def forward(self, x: Tensor) -> Tensor:
        idx = self.node_type_index.to(x.device)
        out = _per_node(x, self.weight[idx])
        if self.bias is not None:
            out = out + self.bias[idx]
        return _norm(self.G).matmul(out)


class RefGRUCell(nn.Module):
    def __init__(self, fin: int, hidden: int, types: Tensor, additive: bool) -> None:
        super().__init__()
        nt, n = int(types.max()) + 1, types.numel()
        self.hidden = hidden
        self.G = nn.Parameter(torch.eye(n))
        self.G_add = nn.Parameter(torch.zeros(n, n)) if additive else None
        self.weight_ih = nn.Parameter(torch.empty(nt, 3 * hidden, fin).uniform_(-0.1, 0.1))
        self.weight_hh = nn.Parameter(torch.empty(nt, 3 * hidden, hidden).uniform_(-0.1, 0.1))
        self.bias_ih = nn.Parameter(torch.zeros(nt, 3 * hidden))
        self.bias_hh = nn.Parameter(torch.zeros(nt, 3 * hidden))
        self.register_buffer("node_type_index", types.clone())
        self.register_buffer("phase", torch.ones(hidden))

    def forward(self, x: Tensor, h: Optional[Tensor], g: Optional[Tensor], t: int):
        if h is None:
            h = torch.zeros(x.shape[0], x.shape[1], self.hidden, dtype=x.dtype, device=x.device)
        if g is None:
            g = _norm(self.G)
        idx = self.node_type_index
        w_ih, w_hh = self.weight_ih[idx], self.weight_hh[idx]
        b_ih, b_hh = self.bias_ih[idx], self.bias_hh[idx]
        mask = (torch.remainder(torch.tensor(t + 1.0, device=x.device), self.phase) < 0.01).type_as(h)
        xr = g.matmul(_per_node(x, w_ih) + b_ih)
        hr = g.matmul(_per_node(h, w_hh) + b_hh)
        i_r, i_z, i_n = xr.chunk(3, 2)
        h_r, h_z, h_n = hr.chunk(3, 2)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        hy = n - n * z + z * h
        hy = mask * hy + (1 - mask) * h
        g = _norm(g + (self.G_add if self.G_add is not None else 0.0))
        return hy, g


class RefGRU(nn.Module):
    def __init__(self, fin: int, hidden: int, layers: int, types: Tensor, additive: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList([RefGRUCell(fin if i == 0 else hidden, hidden, types, additive)
                                     for i in range(layers)])

    def forward(self, x: Tensor, states: List, t_i: int = 0):
        out, finals = x, []
        for cell, (h, g) in zip(self.layers, states):
            outs = []
            for t, xt in enumerate(out.unbind(1)):
                h, g = cell(xt, h, g, t_i + t)
                outs.append(h)
            out = torch.stack(outs, dim=1)
            finals.append((h, g))
        return out, finals


class RefEncoder(nn.Module):
    def __init__(self, types: Tensor, hidden: int, latent: int, layers: int) -> None:
        super().__init__()
        self.num_layers = layers
        self.rnn = RefGRU(3, hidden, layers, types, additive=False)
        self.fc = RefLinear(hidden, latent, types)
        self.initial_hidden1 = RefLinear(3, hidden, types)

    def forward(self, x: Tensor) -> Tensor:
        h0 = self.initial_hidden1(x[:, 0])
        y, _ = self.rnn(x, [(h0, None)] * self.num_layers)
        return torch.tanh(self.fc(y[:, -1]))


class RefDecoder(nn.Module):
    def __init__(self, types: Tensor, hidden: int, latent: int) -> None:
        super().__init__()
        self.rnn = RefGRU(3 + latent, hidden, 1, types, additive=True)
        self.initial_hidden_h = RefLinear(3 + latent, hidden, types)
        self.fc = RefLinear(hidden, 3, types)

    def forward(self, x: Tensor, h: Tensor, ph: int) -> Tensor:
        hidden = [(self.initial_hidden_h(torch.cat([x[:, -2], h], dim=-1)), None)]
        rec_input = torch.cat([x[:, -1], h], dim=-1).unsqueeze(1)
        out = []
        for i in range(ph):
            y, hidden = self.rnn(rec_input, hidden, t_i=i)
            out.append(torch.tanh(self.fc(y.squeeze(1))))
        return torch.stack(out, dim=1)


class ReferenceAutoEncoder(nn.Module):
    """Naive baseline with the official parameter names; ``autoencode`` also encodes the past (as officially)."""

    def __init__(self, node_types: Sequence[int], hidden: int = 96, latent: int = 96, enc_layers: int = 2) -> None:
        super().__init__()
        types = torch.as_tensor(node_types, dtype=torch.long)
        self.encoder = RefEncoder(types, hidden, latent, enc_layers)
        self.decoder = RefDecoder(types, hidden, latent)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def autoencode(self, y: Tensor, past: Tensor, ph: int):
        with torch.no_grad():
            z_past = torch.tanh(self(past))
        z = self(y)
        return self.decoder(past[:, -2:], z, ph), z_past, z

    @staticmethod
    def loss(y_pred: Tensor, y: Tensor) -> Tensor:
        return (y_pred - y).abs().sum(-1).mean(-1).mean(-1).mean()
