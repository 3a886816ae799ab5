"""Inference (sampling + decoding) computed the way the official implementation computes it.

Used only as the baseline of ``bench_inference.py``. :class:`RefDenoiser` has the parameter names of
:class:`skeleton_diffusion.methods.skeleton_diffusion.denoiser.Denoiser` (so it loads the same state dict) but runs every graph layer as
the official layer does: the per-type weights and biases are gathered to all N nodes at every call
(``weight[node_type_index]``), applied with an einsum and mixed with ``g.matmul``; attention is the explicit
``q * scale``, matmul, softmax, matmul; every one of the ``B·S`` rows embeds its own diffusion step. The encoder
and decoder are :mod:`._reference_autoencoder` (per-step weight gathers, the decoder calls the stack once per
step). The diffusion loop is this package's ancestral sampler with the reference network plugged in (the loop
itself is a few tensor ops per step; its numerics equal the official ``p_sample_loop``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from _reference_autoencoder import ReferenceAutoEncoder


class RefGraphLinear(nn.Module):
    def __init__(self, fin: int, fout: int, types: Tensor, bias: bool = True) -> None:
        super().__init__()
        nt = int(types.max()) + 1
        self.G = nn.Parameter(torch.eye(types.numel()))
        self.weight = nn.Parameter(torch.zeros(nt, fout, fin))
        self.bias = nn.Parameter(torch.zeros(nt, fout)) if bias else None
        self.node_type_index = types

    def forward(self, x: Tensor) -> Tensor:
        g = F.normalize(self.G, p=1.0, dim=1)
        w = self.weight[self.node_type_index]
        out = torch.einsum("ndo,bnd->bno", w.transpose(-2, -1), x)
        if self.bias is not None:
            out += self.bias[self.node_type_index]
        return g.matmul(out)


def _sin_emb(t: Tensor, dim: int, theta: float = 10000.0) -> Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(theta) / (half - 1)))
    arg = t[:, None] * freqs[None, :]
    return torch.cat((arg.sin(), arg.cos()), dim=-1)


class RefBlock(nn.Module):
    def __init__(self, fin: int, fout: int, types: Tensor) -> None:
        super().__init__()
        self.proj = RefGraphLinear(fin, fout, types)

    def forward(self, x: Tensor, scale_shift=None) -> Tensor:
        x = self.proj(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return torch.tanh(x)


class RefResnetBlock(nn.Module):
    def __init__(self, fin: int, fout: int, time_dim: int, types: Tensor) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Tanh(), nn.Linear(time_dim, fout * 2))
        self.block1 = RefBlock(fin, fout, types)
        self.block2 = RefBlock(fout, fout, types)
        self.res_linear = RefGraphLinear(fin, fout, types, bias=False) if fin != fout else nn.Identity()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        scale_shift = self.mlp(t).unsqueeze(1).chunk(2, dim=-1)
        h = self.block2(self.block1(x, scale_shift))
        return h + self.res_linear(x)


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, types: Tensor) -> None:
        super().__init__()
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head ** -0.5
        self.to_qkv = RefGraphLinear(dim, heads * dim_head * 3, types, bias=False)
        self.to_out = RefGraphLinear(heads * dim_head, dim, types, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, self.dim_head).transpose(1, 2) for t in self.to_qkv(x).chunk(3, -1))
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(out)


class RefPreNormAttention(nn.Module):
    """``Residual(PreNorm(Attention))`` with the official parameter path ``fn.fn.*`` / ``fn.norm.g``."""

    def __init__(self, dim: int, heads: int, dim_head: int, types: Tensor) -> None:
        super().__init__()
        self.fn = nn.Module()
        self.fn.fn = RefAttention(dim, heads, dim_head, types)
        self.fn.norm = nn.Module()
        self.fn.norm.g = nn.Parameter(torch.ones(1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = F.normalize(x, dim=-1) * self.fn.norm.g * (x.shape[-1] ** 0.5)
        return self.fn.fn(h) + x


class RefDenoiser(nn.Module):
    """Official-style denoiser (conditional, attention, ``norm_type='none'``, sinusoidal time embedding)."""

    def __init__(self, node_types, dim: int = 96, cond_dim: int = 96, depth: int = 4, heads: int = 8,
                 dim_head: int = 32) -> None:
        super().__init__()
        types = torch.as_tensor(node_types, dtype=torch.long)
        self.channels, self.cond_dim, self.dim, self.out_dim = types.numel(), cond_dim, dim, dim
        self.self_condition = False
        size = dim + cond_dim
        self.size = size
        time_dim = 4 * size
        self.init_lin = RefGraphLinear(dim + cond_dim, size, types)
        self.time_mlp = nn.Sequential(nn.Identity(), nn.Linear(size, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        self.layers = nn.ModuleList()
        for i in range(depth):
            self.layers.append(nn.ModuleList([RefResnetBlock(size, size, time_dim, types),
                                              RefPreNormAttention(size, heads, dim_head, types)]))
            self.layers.append(nn.ModuleList([RefResnetBlock(size, size, time_dim, types),
                                              RefPreNormAttention(size, heads, dim_head, types)
                                              if i != depth - 1 else nn.Identity()]))
        self.final_res_block = RefResnetBlock(2 * size, size, time_dim, types)
        self.final_glin = RefGraphLinear(size, dim, types)

    def forward(self, x: Tensor, time: Tensor, x_self_cond: Optional[Tensor] = None,
                x_cond: Optional[Tensor] = None) -> Tensor:
        x = torch.cat([x_cond, x], dim=-1)
        x = self.init_lin(x)
        r = x.clone()
        t = self.time_mlp(_sin_emb(time, self.size))
        for block, attn in self.layers:
            x = attn(block(x, t))
        x = torch.cat((x, r), dim=-1)
        return self.final_glin(self.final_res_block(x, t))


class ReferencePipeline(nn.Module):
    """Official-style ``predict``: encode the past, sample ``B·S`` latents with the reference denoiser inside
    ``diffusion`` (this package's ancestral loop), decode every sample with the reference decoder."""

    def __init__(self, autoencoder: ReferenceAutoEncoder, diffusion: nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.diffusion = diffusion

    @torch.no_grad()
    def predict(self, obs: Tensor, num_samples: int, pred_length: int = 120,
                generator: Optional[torch.Generator] = None) -> Tensor:
        z_past = torch.tanh(self.autoencoder(obs))
        x_cond = z_past.repeat_interleave(num_samples, dim=0)
        latents = self.diffusion.sample(batch_size=x_cond.shape[0], x_cond=x_cond, generator=generator,
                                        sampler="ancestral")
        obs_rep = obs.repeat_interleave(num_samples, dim=0)
        pred = self.autoencoder.decoder(obs_rep[:, -2:], latents, pred_length)
        return pred.reshape(obs.shape[0], num_samples, pred_length, *pred.shape[2:])
