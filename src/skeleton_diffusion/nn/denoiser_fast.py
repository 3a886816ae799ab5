"""No-grad CPU forward of :class:`~skeleton_diffusion.nn.denoiser.Denoiser` (inference / sampling).

Same function as ``Denoiser.forward`` (up to float rounding), computed differently:

* node-major activations ``[N, rows, F]`` from the first layer to the last (the generic path moves between
  batch-major and node-major around every graph layer);
* every graph layer is one oneDNN product per node with that node's type weight and bias
  (:func:`~skeleton_diffusion.nn.cpu_kernels.linear`, 2x MKL's float32 speed on AVX-512 AMD CPUs), then one
  ``G @ Y`` for the node mixing;
* ``tanh`` through the sigmoid kernel (:func:`~skeleton_diffusion.nn.cpu_kernels.tanh_`), elementwise steps in place;
* the batch is processed in chunks of :data:`CHUNK_ROWS` rows so a layer's activations stay in the CPU caches
  (the elementwise and mixing passes are memory-bound at the sizes of an evaluation: 800 rows x 21 nodes x 768
  features is 52 MB for one attention input).

:func:`supports` says when the path applies (paper configuration: ``norm_type='none'``); ``Denoiser.forward``
dispatches here under ``torch.no_grad()`` on CPU float32 (see :func:`~skeleton_diffusion.nn.cpu_kernels.
fast_path_enabled`), otherwise it runs the generic path.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cpu_kernels import linear, node_linear, tanh_
from .graph_layers import StaticGraphLinear

if TYPE_CHECKING:  # pragma: no cover
    from .denoiser import Denoiser, ResnetBlock

__all__ = ["CHUNK_ROWS", "supports", "forward"]

#: rows (samples) per chunk; 200 x 21 nodes x 768 features (the attention input) is 13 MB
CHUNK_ROWS = 200


class _Graph:
    """A :class:`StaticGraphLinear` prepared for node-major products: mixing matrix and per-node weight views."""

    __slots__ = ("g", "weights", "biases", "out")

    def __init__(self, lin: StaticGraphLinear) -> None:
        self.g = lin.influence()
        n = lin.num_nodes
        if lin.per_type:
            types = lin.node_type_index.tolist()
            self.weights = [lin.weight[t] for t in types]
            self.biases = [None if lin.bias is None else lin.bias[t] for t in types]
        else:
            self.weights = [lin.weight] * n
            self.biases = [lin.bias] * n
        self.out = lin.out_features

    def __call__(self, x: Tensor) -> Tensor:
        """``x [N, R, in]`` (contiguous) -> ``G @ (W_n x_n + b_n)`` ``[N, R, out]``."""
        n, r, _ = x.shape
        y = node_linear(x, self.weights, self.biases)
        return linear(self.g, y.view(n, -1).t()).view(n, r, self.out)  # G @ Y (oneDNN: faster than MKL here)


def supports(model: "Denoiser") -> bool:
    """True when every block of ``model`` has a node-major fast form (``norm_type='none'``)."""
    from .denoiser import Block

    return all(isinstance(m.norm, nn.Identity) for m in model.modules() if isinstance(m, Block))


class _Res:
    """A :class:`ResnetBlock` prepared: three graph layers and its FiLM rows for the whole batch."""

    def __init__(self, block: "ResnetBlock", t_emb: Optional[Tensor], index: Optional[Tensor]) -> None:
        self.p1 = _Graph(block.block1.proj)
        self.p2 = _Graph(block.block2.proj)
        self.res = _Graph(block.res_linear) if isinstance(block.res_linear, StaticGraphLinear) else None
        self.scale1 = self.shift = None
        if block.mlp is not None and t_emb is not None:
            film = block.mlp(t_emb)
            if index is not None:
                film = film.index_select(0, index)
            scale, shift = film.chunk(2, dim=-1)  # [B, out] each
            self.scale1, self.shift = (scale + 1).contiguous(), shift.contiguous()

    def __call__(self, x: Tensor, lo: int, hi: int) -> Tensor:
        h = self.p1(x)
        if self.scale1 is not None:
            h.mul_(self.scale1[lo:hi]).add_(self.shift[lo:hi])  # x (1 + scale) + shift, per row
        h = self.p2(tanh_(h))
        tanh_(h)
        return h.add_(x if self.res is None else self.res(x))


class _Mix:
    """``Residual(PreNorm(Attention | StaticGraphLinear))`` prepared for node-major input."""

    def __init__(self, mix: nn.Module) -> None:
        pre = mix.fn
        self.g = (pre.norm.g.reshape(-1) * math.sqrt(pre.norm.g.shape[-1])).contiguous()
        inner = pre.fn
        if isinstance(inner, StaticGraphLinear):
            self.lin: Optional[_Graph] = _Graph(inner)
            self.qkv = self.to_out = None
        else:
            self.lin = None
            self.qkv, self.to_out = _Graph(inner.to_qkv), _Graph(inner.to_out)
            self.heads, self.dim_head, self.scale = inner.heads, inner.dim_head, inner.scale

    def __call__(self, x: Tensor) -> Tensor:
        xn = F.normalize(x, dim=-1).mul_(self.g)
        if self.lin is not None:
            return self.lin(xn).add_(x)
        n, r, _ = x.shape
        h, d = self.heads, self.dim_head
        qkv = self.qkv(xn).view(n, r * 3 * h, d).transpose(0, 1).reshape(r, 3, h, n, d)
        q, k, v = (qkv[:, i].reshape(r * h, n, d) for i in range(3))  # [R*h, N, d]
        # explicit softmax(q k^T * scale) v: the fused CPU kernel is slower for 21 tokens of 32 features
        att = torch.bmm(q, k.transpose(1, 2)).mul_(self.scale).softmax(dim=-1)
        o = torch.bmm(att, v).view(r, h, n, d).permute(2, 0, 1, 3).reshape(n, r, h * d)
        return self.to_out(o).add_(x)


@torch.no_grad()
def forward(model: "Denoiser", x: Tensor, time: Tensor, x_cond: Optional[Tensor],
            x_self_cond: Optional[Tensor] = None, chunk_rows: int = CHUNK_ROWS) -> Tensor:
    """``Denoiser.forward`` for validated inputs (``x [B, N, dim]``, ``time [B]``, ``x_cond [B, N, cond_dim]`` or
    None) on CPU float32 without autograd. Returns ``[B, N, out]`` (contiguous)."""
    parts: List[Tensor] = []
    if model.cond_dim > 0:
        parts.append(x_cond)
    if model.self_condition:
        parts.append(torch.zeros_like(x) if x_self_cond is None else x_self_cond)
    parts.append(x)
    inp = (torch.cat(parts, dim=-1) if len(parts) > 1 else x).transpose(0, 1).contiguous()  # [N, B, F_in]
    index = None
    if time.numel() > 1:
        distinct, index = torch.unique(time, return_inverse=True)
        if distinct.numel() == time.numel():
            index = None
        else:
            time = distinct
    t_emb = model.time_mlp(time)
    init = _Graph(model.init_lin)
    stages = [(_Res(block, t_emb, index), None if isinstance(mix, nn.Identity) else _Mix(mix))
              for block, mix in model.layers]
    final_res = _Res(model.final_res_block, t_emb, index)
    final = _Graph(model.final_glin)
    n, b = inp.shape[0], inp.shape[1]
    out = torch.empty(b, n, final.out, dtype=x.dtype)
    for lo in range(0, b, chunk_rows):
        hi = min(lo + chunk_rows, b)
        h = init(inp[:, lo:hi].contiguous())
        r = h
        for res, mix in stages:
            h = res(h, lo, hi)
            if mix is not None:
                h = mix(h)
        h = final_res(torch.cat((h, r), dim=-1), lo, hi)
        out[lo:hi] = final(h).transpose(0, 1)
    return out
