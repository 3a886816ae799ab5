"""CSDI-style spatio-temporal denoiser for DiffHPE (Rommel et al., ICCV-W 2023; CSDI, Tashiro et al. 2021).

Tokens are (joint, frame) pairs with ``hidden`` channels. Each residual layer adds a projected diffusion-step
embedding, then runs a **temporal** transformer layer (attention over the frames of each joint) and a **feature**
transformer layer (attention over the joints of each frame), adds the projected side information (the
per-frame condition, a sinusoidal frame embedding and a learned joint embedding), applies the gated activation
``sigmoid(gate) * tanh(filter)`` and splits into a residual (``(x + res) / sqrt 2``) and a skip; the skips of all
layers are summed (``/ sqrt(layers)``) and projected to 3 coordinates by a zero-initialised output layer.

Defaults follow CSDI / DiffHPE: 64 channels, 8 heads, feed-forward width 64, diffusion embedding 128, frame
embedding 128, joint embedding 16. Layers default to 4 (CSDI); the official DiffHPE lifting model uses 16 layers
of a graph-convolution variant of the same block. Called by the diffusion core as
``model(x_t [B, N, F*3], t [B], x_self_cond, x_cond [B, N, F*sum(cond_splits)]) -> [B, N, F*3]``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import InputError

__all__ = ["CSDIDenoiser", "csdi_step_embedding"]


def csdi_step_embedding(t: Tensor, dim: int) -> Tensor:
    """CSDI sinusoidal embedding ``[B, dim]`` of (float) steps ``t [B]``: frequencies ``10^(4 i / (dim/2 - 1))``."""
    half = dim // 2
    freqs = 10.0 ** (4.0 * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    return nn.functional.pad(torch.cat([args.sin(), args.cos()], dim=-1), (0, dim % 2))


def _frame_embedding(frames: int, dim: int) -> Tensor:
    """Transformer positional embedding ``[F, dim]`` of frame indices (CSDI's time embedding)."""
    pos = torch.arange(frames, dtype=torch.float32)[:, None]
    div = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(frames, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : pe[:, 1::2].shape[1]]
    return pe


def _linear(i: int, o: int) -> nn.Linear:
    layer = nn.Linear(i, o)
    nn.init.kaiming_normal_(layer.weight)
    return layer


class _ResidualLayer(nn.Module):
    def __init__(self, hidden: int, side_dim: int, step_dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.step_proj = nn.Linear(step_dim, hidden)
        self.side_proj = _linear(side_dim, 2 * hidden)
        self.mid_proj = _linear(hidden, 2 * hidden)
        self.out_proj = _linear(hidden, 2 * hidden)
        kw = dict(d_model=hidden, nhead=heads, dim_feedforward=ff_dim, dropout=dropout, activation="gelu",
                  batch_first=True)
        self.time_layer = nn.TransformerEncoderLayer(**kw)
        self.feature_layer = nn.TransformerEncoderLayer(**kw)

    def forward(self, x: Tensor, side: Tensor, step: Tensor) -> tuple[Tensor, Tensor]:
        b, n, f, c = x.shape                                          # [B, N, F, C]
        y = x + self.step_proj(step)[:, None, None]
        if f > 1:                                                     # attention over frames, per joint
            y = self.time_layer(y.reshape(b * n, f, c)).reshape(b, n, f, c)
        if n > 1:                                                     # attention over joints, per frame
            y = self.feature_layer(y.transpose(1, 2).reshape(b * f, n, c)).reshape(b, f, n, c).transpose(1, 2)
        y = self.mid_proj(y) + self.side_proj(side)
        gate, filt = y.chunk(2, dim=-1)
        res, skip = self.out_proj(torch.sigmoid(gate) * torch.tanh(filt)).chunk(2, dim=-1)
        return (x + res) / math.sqrt(2.0), skip


class CSDIDenoiser(nn.Module):
    """Args: ``num_nodes`` N, ``frames`` F, ``cond_splits`` per-frame channels of each block concatenated in
    ``x_cond`` (``(5,)`` standalone, ``(5, 3)`` refiner: each block is ``[B, N, F*c]`` frame-major), ``hidden``
    (channels, 64), ``layers`` (4), ``heads`` (8), ``ff_dim`` (64), ``step_emb`` (128), ``frame_emb`` (128),
    ``joint_emb`` (16), ``dropout``. ``node_edges`` is accepted for signature parity with the graph denoiser."""

    def __init__(self, num_nodes: int, frames: int, cond_splits: Sequence[int] = (5,), hidden: int = 64,
                 layers: int = 4, heads: int = 8, ff_dim: int = 64, step_emb: int = 128, frame_emb: int = 128,
                 joint_emb: int = 16, dropout: float = 0.1,
                 node_edges: Optional[Sequence[tuple[int, int]]] = None) -> None:
        super().__init__()
        if hidden % heads:
            raise InputError(f"model.lifter.denoiser: hidden {hidden} must be divisible by heads {heads}")
        self.channels, self.frames = int(num_nodes), int(frames)
        self.cond_splits = tuple(int(c) for c in cond_splits)
        self.cond_dim = self.frames * sum(self.cond_splits)
        self.out_dim = self.frames * 3
        self.self_condition = False
        self.hidden, self.step_dim = int(hidden), int(step_emb)
        cpf = sum(self.cond_splits)
        self.inp = _linear(3 + cpf, hidden)
        self.step_mlp = nn.Sequential(nn.Linear(step_emb, step_emb), nn.SiLU(),
                                      nn.Linear(step_emb, step_emb), nn.SiLU())
        self.register_buffer("frame_pe", _frame_embedding(self.frames, int(frame_emb)), persistent=False)
        self.joint_emb = nn.Embedding(self.channels, int(joint_emb))
        side_dim = int(frame_emb) + int(joint_emb) + cpf
        self.layers = nn.ModuleList([_ResidualLayer(hidden, side_dim, step_emb, heads, ff_dim, dropout)
                                     for _ in range(int(layers))])
        self.out1 = _linear(hidden, hidden)
        self.out2 = nn.Linear(hidden, 3)
        nn.init.zeros_(self.out2.weight)
        nn.init.zeros_(self.out2.bias)

    def _cond_tokens(self, x_cond: Optional[Tensor], b: int, ref: Tensor) -> Tensor:
        n, f = self.channels, self.frames
        if x_cond is None:
            return ref.new_zeros(b, n, f, sum(self.cond_splits))
        if x_cond.shape != (b, n, self.cond_dim):
            raise InputError(f"CSDIDenoiser: x_cond must be [B={b}, N={n}, {self.cond_dim}] (frames {f} x "
                             f"{self.cond_splits}), got {tuple(x_cond.shape)}")
        parts = x_cond.split([f * c for c in self.cond_splits], dim=-1)
        return torch.cat([p.reshape(b, n, f, c) for p, c in zip(parts, self.cond_splits)], dim=-1)

    def forward(self, x: Tensor, t: Tensor, x_self_cond: Optional[Tensor] = None,
                x_cond: Optional[Tensor] = None) -> Tensor:
        """``x [B, N, F*3]``, ``t [B]`` -> ``[B, N, F*3]``."""
        b, n, d = x.shape
        if n != self.channels or d != self.out_dim:
            raise InputError(f"CSDIDenoiser: x must be [B, {self.channels}, {self.out_dim}], got {tuple(x.shape)}")
        f = self.frames
        cond = self._cond_tokens(x_cond, b, x)                                     # [B, N, F, c]
        h = torch.relu(self.inp(torch.cat([x.reshape(b, n, f, 3), cond], dim=-1)))
        side = torch.cat([self.frame_pe[None, None].expand(b, n, f, -1),
                          self.joint_emb.weight[None, :, None].expand(b, n, f, -1), cond], dim=-1)
        step = self.step_mlp(csdi_step_embedding(t, self.step_dim))
        skips = []
        for layer in self.layers:
            h, s = layer(h, side, step)
            skips.append(s)
        h = torch.stack(skips).sum(0) / math.sqrt(len(self.layers))
        return self.out2(torch.relu(self.out1(h))).reshape(b, n, d)
