"""No-grad CPU forward of :class:`~skeleton_diffusion.methods.skeleton_diffusion.denoiser.Denoiser` (inference / sampling).

Same function as ``Denoiser.forward`` (up to float rounding), computed differently:

* node-major activations ``[N, rows, F]`` from the first layer to the last (the generic path moves between
  batch-major and node-major around every graph layer);
* nodes are reordered once so that nodes of one type are adjacent, and every graph layer is one oneDNN product
  per node *type* (:func:`~skeleton_diffusion.nn.graph.kernels.grouped_linear`, 2x MKL's float32 speed on AVX-512
  AMD CPUs), then one ``G @ Y`` for the node mixing (attention across nodes does not depend on their order);
* ``tanh`` through the sigmoid kernel (:func:`~skeleton_diffusion.nn.graph.kernels.tanh_`), elementwise steps in place;
* the batch is processed in chunks of :data:`CHUNK_ROWS` rows so a layer's activations stay in the CPU caches
  (the elementwise and mixing passes are memory-bound at the sizes of an evaluation: 800 rows x 21 nodes x 768
  features is 52 MB for one attention input).

:func:`supports` says when the path applies (paper configuration: ``norm_type='none'``); ``Denoiser.forward``
dispatches here under ``torch.no_grad()`` on CPU float32 (see :func:`~skeleton_diffusion.nn.graph.kernels.
fast_path_enabled`), otherwise it runs the generic path.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skeleton_diffusion.nn.graph.kernels import TypeGroups, gemm_backend, grouped_linear, run_chunks, tanh_
from skeleton_diffusion.nn.graph.layers import OPTIMIZER_STEPS, StaticGraphLinear

if TYPE_CHECKING:  # pragma: no cover
    from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser, ResnetBlock

__all__ = ["CHUNK_ROWS", "distinct_steps", "forward"]

#: rows (samples) per chunk; 200 x 21 nodes x 768 features (the attention input) is 13 MB
CHUNK_ROWS = 200


def _node_weights(lin: StaticGraphLinear, groups: TypeGroups) -> tuple[Tensor, Optional[Tensor]]:
    """``(w [N, in, out], b [N, 1, out] | None)``: the per-type float32 weights gathered to every node, in the
    grouped node order, cached on the layer until a parameter changes (key: storage, in-place version,
    :data:`~skeleton_diffusion.nn.graph_layers.OPTIMIZER_STEPS`, as ``inference_node_parameters``)."""
    key = (OPTIMIZER_STEPS[0], tuple(groups.perm.tolist())) + tuple(
        None if p is None else (p.data_ptr(), p._version, p.dtype) for p in (lin.weight, lin.bias))
    cache = lin.__dict__.get("_fast_node_weights")
    if cache is None or cache[0] != key:
        types = lin.node_type_index.index_select(0, groups.perm)
        w = lin.weight.detach().index_select(0, types).transpose(1, 2).float().contiguous()
        b = None if lin.bias is None else lin.bias.detach().index_select(0, types).float().unsqueeze(1)
        lin.__dict__["_fast_node_weights"] = cache = (key, (w, b))
    return cache[1]


class _Graph:
    """A :class:`StaticGraphLinear` prepared for node-major products in the type-grouped node order of ``groups``:
    mixing matrix and one weight (and bias) per node type; where MKL runs its AVX-512 kernels
    (:func:`~skeleton_diffusion.nn.cpu_kernels.gemm_backend` ``'mkl'``, float32) one per-node batched product
    with cached per-node weights instead (~8 % faster for the whole denoiser; the cache holds N/types times the
    weights)."""

    __slots__ = ("g", "weights", "biases", "out", "groups", "node_w", "node_b")

    def __init__(self, lin: StaticGraphLinear, dtype: torch.dtype, groups: TypeGroups) -> None:
        self.groups = groups
        self.g = groups.mixing(lin.influence()).to(dtype)
        self.node_w = self.node_b = None
        if dtype == torch.float32 and lin.per_type and len(groups.groups) > 1 and gemm_backend() == "mkl":
            self.node_w, self.node_b = _node_weights(lin, groups)
        w = lin.weight.to(dtype)
        b = None if lin.bias is None else lin.bias.to(dtype)
        if lin.per_type:
            self.weights = [w[t] for _, _, t in groups.groups]
            self.biases = [None if b is None else b[t] for _, _, t in groups.groups]
        else:
            self.weights = [w] * len(groups.groups)
            self.biases = [b] * len(groups.groups)
        self.out = lin.out_features

    def __call__(self, x: Tensor) -> Tensor:
        """``x [N, R, in]`` (grouped order, contiguous) -> ``G @ (W_n x_n + b_n)`` ``[N, R, out]``."""
        n, r, _ = x.shape
        if self.node_w is not None:
            y = (torch.bmm(x, self.node_w) if self.node_b is None else torch.baddbmm(self.node_b, x, self.node_w))
        else:
            y = grouped_linear(x, self.groups, self.weights, self.biases)
        return torch.mm(self.g, y.view(n, -1)).view(n, r, self.out)


def distinct_steps(time: Tensor) -> tuple[Tensor, Optional[Tensor]]:
    """``(steps to embed, index or None)``: the distinct diffusion steps of ``time [B]`` (CPU) and, when some repeat,
    the row -> distinct-step index (k copies of a sample share theirs: each step is embedded once)."""
    if time.device.type != "cpu" or time.numel() < 2:  # on accelerators unique would synchronise
        return time, None
    distinct, index = torch.unique(time, return_inverse=True)
    return (time, None) if distinct.numel() == time.numel() else (distinct, index)


def _groups(model: "Denoiser") -> TypeGroups:
    """The graph layers' node-type grouping (one assignment, see :func:`supports`), cached on the model."""
    groups = model.__dict__.get("_fast_groups")
    if groups is None:
        types = next((m.node_type_index for m in model.modules()
                      if isinstance(m, StaticGraphLinear) and m.node_type_index is not None), None)
        groups = model.__dict__["_fast_groups"] = TypeGroups(None if types is None else types.tolist(),
                                                               model.num_nodes)
    return groups


class _Res:
    """A :class:`ResnetBlock` prepared: three graph layers and its FiLM rows for the whole batch."""

    def __init__(self, block: "ResnetBlock", t_emb: Optional[Tensor], index: Optional[Tensor],
                 dtype: torch.dtype, groups: TypeGroups) -> None:
        self.p1 = _Graph(block.block1.proj, dtype, groups)
        self.p2 = _Graph(block.block2.proj, dtype, groups)
        self.res = (_Graph(block.res_linear, dtype, groups) if isinstance(block.res_linear, StaticGraphLinear)
                    else None)
        self.scale1 = self.shift = None
        if block.mlp is not None and t_emb is not None:
            film = block.mlp(t_emb)
            if index is not None:
                film = film.index_select(0, index)
            scale, shift = film.chunk(2, dim=-1)  # [B, out] each
            self.scale1, self.shift = (scale + 1).to(dtype).contiguous(), shift.to(dtype).contiguous()

    def __call__(self, x: Tensor, lo: int, hi: int) -> Tensor:
        h = self.p1(x)
        if self.scale1 is not None:
            h.mul_(self.scale1[lo:hi]).add_(self.shift[lo:hi])  # x (1 + scale) + shift, per row
        h = self.p2(tanh_(h))
        tanh_(h)
        return h.add_(x if self.res is None else self.res(x))


class _Mix:
    """``Residual(PreNorm(Attention | StaticGraphLinear))`` prepared for node-major input."""

    def __init__(self, mix: nn.Module, dtype: torch.dtype, groups: TypeGroups) -> None:
        pre = mix.fn
        self.g = (pre.norm.g.reshape(-1) * math.sqrt(pre.norm.g.shape[-1])).to(dtype).contiguous()
        inner = pre.fn
        if isinstance(inner, StaticGraphLinear):
            self.lin: Optional[_Graph] = _Graph(inner, dtype, groups)
            self.qkv = self.to_out = None
        else:
            self.lin = None
            self.qkv, self.to_out = _Graph(inner.to_qkv, dtype, groups), _Graph(inner.to_out, dtype, groups)
            self.heads, self.dim_head, self.scale = inner.heads, inner.dim_head, inner.scale

    def __call__(self, x: Tensor) -> Tensor:
        xn = F.normalize(x, dim=-1).mul_(self.g)
        if self.lin is not None:
            return self.lin(xn).add_(x)
        n, r, _ = x.shape
        h, d = self.heads, self.dim_head
        if x.dtype == torch.float32:  # strided batched products on views: no layout copies (1.5x faster on Intel;
            # on the AMD EPYC box equal to the copies below within noise)
            q, k, v = self.qkv(xn).view(n, r, 3, h, d).permute(2, 1, 3, 0, 4).unbind(0)  # [R, h, N, d]
            att = torch.matmul(q, k.transpose(-1, -2)).mul_(self.scale).softmax(dim=-1)
            return self.to_out(torch.matmul(att, v).permute(2, 0, 1, 3).reshape(n, r, h * d)).add_(x)
        qkv = self.qkv(xn).view(n, r * 3 * h, d).transpose(0, 1).reshape(r, 3, h, n, d)
        q, k, v = (qkv[:, i].reshape(r * h, n, d) for i in range(3))  # [R*h, N, d]
        # explicit softmax(q k^T * scale) v: the fused CPU kernel is slower for 21 tokens of 32 features
        att = torch.bmm(q, k.transpose(1, 2)).mul_(self.scale)
        att = att.softmax(dim=-1) if att.dtype == torch.float32 else att.softmax(dim=-1, dtype=torch.float32).to(
            att.dtype)  # bfloat16 sampling: the softmax in float32
        o = torch.bmm(att, v).view(r, h, n, d).permute(2, 0, 1, 3).reshape(n, r, h * d)
        return self.to_out(o).add_(x)


@torch.no_grad()
def forward(model: "Denoiser", x: Tensor, time: Tensor, x_cond: Optional[Tensor],
            x_self_cond: Optional[Tensor] = None, chunk_rows: int = CHUNK_ROWS,
            dtype: torch.dtype = torch.float32) -> Tensor:
    """``Denoiser.forward`` for validated inputs (``x [B, N, dim]``, ``time [B]``, ``x_cond [B, N, cond_dim]`` or
    None) on CPU float32 without autograd. Returns ``[B, N, out]`` float32 (contiguous).

    ``dtype=torch.bfloat16`` (low-precision sampling, ``sampling_precision=bf16``): activations, weights and
    products in bfloat16 (softmax in float32), the time embedding in float32, the output float32."""
    parts: List[Tensor] = []
    if model.cond_dim > 0:
        parts.append(x_cond)
    if model.self_condition:
        parts.append(torch.zeros_like(x) if x_self_cond is None else x_self_cond)
    parts.append(x)
    inp = (torch.cat(parts, dim=-1) if len(parts) > 1 else x).transpose(0, 1).to(dtype).contiguous()  # [N,B,F]
    time, index = distinct_steps(time)
    t_emb = model.time_mlp(time)
    groups = _groups(model)  # nodes of one type adjacent: one product per type (attention is order-equivariant)
    inp = groups.permute(inp)
    init = _Graph(model.init_lin, dtype, groups)
    stages = [(_Res(block, t_emb, index, dtype, groups),
               None if isinstance(mix, nn.Identity) else _Mix(mix, dtype, groups)) for block, mix in model.layers]
    final_res = _Res(model.final_res_block, t_emb, index, dtype, groups)
    final = _Graph(model.final_glin, dtype, groups)
    n, b = inp.shape[0], inp.shape[1]
    out = torch.empty(b, n, final.out, dtype=x.dtype)
    threads = torch.get_num_threads()
    if threads > 1:  # at least one chunk per thread (run_chunks runs chunks in parallel), not below 32 rows
        chunk_rows = min(chunk_rows, max(32, -(-b // threads)))
    starts = range(0, b, chunk_rows)

    def rows(i: int) -> None:
        lo = starts[i]
        hi = min(lo + chunk_rows, b)
        h = init(inp[:, lo:hi].contiguous())
        r = h
        for res, mix in stages:
            h = res(h, lo, hi)
            if mix is not None:
                h = mix(h)
        h = final_res(torch.cat((h, r), dim=-1), lo, hi)
        out[lo:hi] = groups.restore(final(h)).transpose(0, 1)

    run_chunks(rows, len(starts))  # independent row chunks, on parallel threads when torch has k > 1 threads
    return out
