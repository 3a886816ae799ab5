"""Fused static-graph GRU recurrence with a hand-written backward pass.

One autograd node for a whole sequence instead of ~15 per step: the forward loop writes into preallocated buffers,
the backward loop runs the hidden-state recurrence only, and the gradient of the recurrent weights is one batched
product over all steps (instead of one small product and one accumulation per step).

Math per step t (node-major tensors ``[N, B, F]``; ``g_t [N, N]``; PyTorch GRU gate order r, z, n)::

    Y_t  = h_{t-1} W_hh^T + b_hh                     (per-node weights, one bmm)
    Hm_t = g_t @ Y_t ;  X_t = given (mixed) or g_t @ P  (constant decoder input P)
    r, z = sigmoid(X_t[:2H] + Hm_t[:2H]) ;  n = tanh(X_t[2H:] + r * Hm_t[2H:])
    h_t  = n + z * (h_{t-1} - n)

The forward uses exactly the same operations as the step-by-step module code, so results agree to rounding.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from skeleton_diffusion.nn.graph import kernels as cpu_kernels


def _gate_math(xt: Tensor, hm: Tensor, h_prev: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Elementwise GRU update (the part ``torch.compile`` can fuse): returns ``(r|z, n, h_new)``."""
    hs = h_prev.shape[-1]
    rz = torch.sigmoid(xt[..., : 2 * hs] + hm[..., : 2 * hs])
    n = torch.tanh(torch.addcmul(xt[..., 2 * hs:], rz[..., :hs], hm[..., 2 * hs:]))
    return rz, n, torch.lerp(n, h_prev, rz[..., hs:])


class CompiledGates:
    """``torch.compile``-d :func:`_gate_math` (fuses the elementwise kernels of a step; mainly helps on GPUs).

    Compilation happens at the first call; if it fails (no compiler, unsupported backend) the eager ops are used
    from then on, with one warning.
    """

    def __init__(self) -> None:
        self._fn = torch.compile(_gate_math, dynamic=True)
        self.failed = False

    def __call__(self, xt: Tensor, hm: Tensor, h_prev: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        if not self.failed:
            try:
                return self._fn(xt, hm, h_prev)
            except Exception as err:  # pragma: no cover - depends on the installation
                import warnings

                warnings.warn(f"torch.compile of the GRU gates failed ({type(err).__name__}: {err}); using eager ops")
                self.failed = True
        return _gate_math(xt, hm, h_prev)


_COMPILED_GATES: Optional[CompiledGates] = None


def compiled_gates() -> CompiledGates:
    """Process-wide compiled gate function (created on first use)."""
    global _COMPILED_GATES
    if _COMPILED_GATES is None:
        _COMPILED_GATES = CompiledGates()
    return _COMPILED_GATES


def _recurrence(x: Tensor, h0: Tensor, w_hh_t: Tensor, b_hh: Optional[Tensor], gseq: Tensor, const_input: bool,
                save: bool, gate_fn: Optional[Callable] = None) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
    """Forward loop. Returns ``(states [T+1, N, B, H], y_all, gates)``; the last two only when ``save``.

    Without ``save`` (inference) only the states are kept; the per-step temporaries are reused buffers, so memory
    stays O(T * H) even for thousands of sequences.
    """
    steps = gseq.shape[0]
    n, bsz, hs = h0.shape
    states = h0.new_empty(steps + 1, n, bsz, hs)
    states[0] = h0
    y_all = h0.new_empty(steps, n, bsz, 3 * hs) if save else None
    gates = h0.new_empty(steps, n, bsz, 4 * hs) if save else None  # r | z | n | Hm_n
    y_buf = None if save else h0.new_empty(n, bsz, 3 * hs)
    g_buf = None if save else h0.new_empty(n, bsz, 4 * hs)
    bias = None if b_hh is None else b_hh.unsqueeze(1)
    # training: mix the constant input with every step's g_t in one batched product (inference keeps it per step,
    # so that thousands of decoded sequences never hold a [T, N, B, 3H] tensor)
    x_all = torch.matmul(gseq, x.reshape(n, -1)) if (const_input and save) else None
    for t in range(steps):
        g = gseq[t]
        h_prev = states[t]
        y = y_all[t] if y_all is not None else y_buf
        if bias is None:
            torch.bmm(h_prev, w_hh_t, out=y)
        else:
            torch.baddbmm(bias, h_prev, w_hh_t, out=y)
        hm = torch.mm(g, y.view(n, -1)).view(n, bsz, 3 * hs)
        if not const_input:
            xt = x[t]
        elif x_all is not None:
            xt = x_all[t].view(n, bsz, 3 * hs)
        else:
            xt = torch.mm(g, x.reshape(n, -1)).view(n, bsz, 3 * hs)
        gt = gates[t] if gates is not None else g_buf
        if gate_fn is not None:
            rz, n_gate, h_new = gate_fn(xt, hm, h_prev)
            gt[..., : 2 * hs] = rz
            gt[..., 2 * hs: 3 * hs] = n_gate
            gt[..., 3 * hs:] = hm[..., 2 * hs:]
            states[t + 1] = h_new
            continue
        torch.sigmoid(xt[..., : 2 * hs] + hm[..., : 2 * hs], out=gt[..., : 2 * hs])
        gt[..., 3 * hs:] = hm[..., 2 * hs:]
        torch.tanh(torch.addcmul(xt[..., 2 * hs:], gt[..., :hs], hm[..., 2 * hs:]), out=gt[..., 2 * hs: 3 * hs])
        torch.lerp(gt[..., 2 * hs: 3 * hs], h_prev, gt[..., hs: 2 * hs], out=states[t + 1])
    return states, y_all, gates


def inference_input_terms(xp: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], hs: int
                          ) -> Tuple[Tensor, Tensor]:
    """Split input projections for :func:`gru_recurrence_nograd` (modifies ``xp`` in place).

    ``xp`` = unmixed ``x W_ih^T`` *without* bias, ``[N, B, 3H]`` (constant input) or ``[N, T, B, 3H]`` (one per
    step); ``b_ih, b_hh [N, 3H]`` or None. Returns ``pc`` (``xp`` itself, now ``[P_rz + b_ih_rz + b_hh_rz |
    b_hh_n]``) and ``pn = P_n + b_ih_n``, contiguous ``[N, B, H]`` or time-major ``[T, N, B, H]``.
    """
    n = xp.shape[0]
    shape = (n,) + (1,) * (xp.dim() - 2)
    p_n = xp[..., 2 * hs:] if xp.dim() == 3 else xp[..., 2 * hs:].permute(1, 0, 2, 3)
    if b_ih is None:
        pn = p_n.contiguous()
    else:
        b_n = b_ih[..., 2 * hs:].reshape(n, 1, hs) if xp.dim() == 3 else b_ih[..., 2 * hs:].reshape(1, n, 1, hs)
        pn = torch.add(p_n, b_n, out=p_n.new_empty(p_n.shape))
    b_rz = None
    if b_ih is not None:
        b_rz = b_ih[..., : 2 * hs]
    if b_hh is not None:
        b_rz = b_hh[..., : 2 * hs] if b_rz is None else b_rz + b_hh[..., : 2 * hs]
    if b_rz is not None:
        xp[..., : 2 * hs] += b_rz.reshape(*shape, 2 * hs)
    if b_hh is None:
        xp[..., 2 * hs:] = 0
    else:
        xp[..., 2 * hs:] = b_hh[..., 2 * hs:].reshape(*shape, hs)
    return xp, pn


def gru_recurrence_nograd(pc: Tensor, pn: Tensor, h0: Tensor, w_hh_t: Tensor, gseq: Tensor,
                          keep_outputs: bool = True, out_proj: Optional[Tensor] = None,
                          node_groups: Optional["cpu_kernels.TypeGroups"] = None) -> Tensor:
    """Inference-only recurrence (no autograd), arranged for speed; same math as :func:`_recurrence`.

    Because the mixing is linear, the r/z input term is folded into the hidden product before mixing:
    ``[r|z] = sigmoid(g_t @ (P_rz + b_hh_rz + h W_rz))``, ``n = tanh(g_t @ P_n + r * (g_t @ (b_hh_n + h W_n)))``,
    i.e. per step one ``baddbmm``, two mixing products (3H and H wide) and four in-place elementwise passes
    (values agree with the training path to float rounding).

    Args: ``pc, pn`` from :func:`inference_input_terms` (``[N, B, 3H]``/``[N, B, H]`` constant, or with a time
    axis ``[N, T, B, 3H]``/``[T, N, B, H]``); ``h0 [N, B, H]``; ``w_hh_t [N, H, 3H]``; ``gseq [T, N, N]``.
    Returns all states ``[T, N, B, H]`` (``keep_outputs``) or only the last one ``[N, B, H]``. With ``out_proj``
    (per-node weights ``[N, H, F]``) it returns ``(h_T [N, B, H], [T, N, B, F])``: every new state is projected at
    once, while still in cache, and the states themselves are not kept.

    On CPU in float32 (:func:`~skeleton_diffusion.nn.graph.kernels.fast_path_enabled`) the hidden products run
    through oneDNN; ``node_groups`` (the nodes' weight sharing, :class:`~skeleton_diffusion.nn.graph.kernels.
    TypeGroups`) lets them run as one product per node type on a node order where each type is contiguous
    (default: one product per node). Results are returned in the original node order.
    """
    dtype = torch.promote_types(torch.promote_types(pc.dtype, h0.dtype), w_hh_t.dtype)
    if any(t.dtype != dtype for t in (pc, pn, h0, w_hh_t, gseq)) or torch.is_autocast_enabled(h0.device.type):
        # the buffers below are written with out=: run in one dtype (under autocast: the widest of the inputs)
        with torch.autocast(h0.device.type, enabled=False):
            return gru_recurrence_nograd(pc.to(dtype), pn.to(dtype), h0.to(dtype), w_hh_t.to(dtype), gseq.to(dtype),
                                         keep_outputs, None if out_proj is None else out_proj.to(dtype), node_groups)
    steps = gseq.shape[0]
    n, bsz, hs = h0.shape
    const = pc.dim() == 3
    fast = cpu_kernels.fast_path_enabled(h0)  # oneDNN products and the sigmoid-based tanh (nn/cpu_kernels.py)
    # one per-node batched MKL product per step against 13 per-type oneDNN calls: faster on Intel (decoding
    # 160 x 120 frames: 515 -> 420 ms), on AMD for evaluation sizes (800 x 120: ~8 %), see recurrence_backend
    grouped = fast and cpu_kernels.recurrence_backend() == "onednn"
    if grouped:
        groups = node_groups if node_groups is not None else cpu_kernels.TypeGroups(list(range(n)), n)
        w_groups = [w_hh_t[int(groups.perm[lo])].t().contiguous() for lo, _, _ in groups.groups]  # [3H, H] each
        pc, h0, gseq = groups.permute(pc), groups.permute(h0).contiguous(), groups.mixing_seq(gseq)
        pn = groups.permute(pn, 0 if const else 1)
        out_proj = None if out_proj is None else groups.permute(out_proj)
    else:
        w_hh_t = w_hh_t.contiguous()  # MKL is faster on contiguous weights (a no-op for inference_node_parameters)
    y = h0.new_empty(n, bsz, 3 * hs)
    m = torch.empty_like(y)
    xn = h0.new_empty(n, bsz, hs)
    if out_proj is not None:
        keep_outputs = False
        proj = h0.new_empty(steps, n, bsz, out_proj.shape[-1])
        out_proj = out_proj.contiguous()
    states = h0.new_empty(steps, n, bsz, hs) if keep_outputs else None
    ring = None if keep_outputs else (h0.new_empty(n, bsz, hs), h0.new_empty(n, bsz, hs))
    h = h0
    for t in range(steps):
        g = gseq[t]
        if grouped:
            cpu_kernels.grouped_linear(h, groups, w_groups, add=pc if const else pc[:, t], out=y)
        else:
            torch.baddbmm(pc if const else pc[:, t], h, w_hh_t, out=y)
        torch.mm(g, y.view(n, -1), out=m.view(n, -1))
        torch.mm(g, (pn if const else pn[t]).view(n, -1), out=xn.view(n, -1))
        rz = m[..., : 2 * hs].sigmoid_()
        xn.addcmul_(rz[..., :hs], m[..., 2 * hs:])
        if fast:
            cpu_kernels.tanh_(xn)
        else:
            xn.tanh_()
        h_new = states[t] if states is not None else ring[t % 2]  # type: ignore[index]
        torch.lerp(xn, h, rz[..., hs:], out=h_new)
        h = h_new
        if out_proj is not None:
            torch.bmm(h, out_proj, out=proj[t])
    if grouped:  # back to the original node order
        h = groups.restore(h)
        if out_proj is not None:
            proj = groups.restore(proj, 1)
        elif states is not None:
            states = groups.restore(states, 1)
    if out_proj is not None:
        return h, proj
    return states if states is not None else h


def gru_stack_nograd(x_tm: Tensor, layers: list, h0s: list, gseqs: list,
                     keep_top_outputs: bool = False) -> Tuple[Optional[Tensor], list]:
    """Inference-only (no autograd) multi-layer GRU over a sequence, step-major: at each step every layer runs
    on the state the layer below has just produced, so its input projection is computed while that state is still
    in cache (the layer-major order has to write all T input projections first and read them back cold).

    Args:
        x_tm: time-major input ``[T, N, B, in]`` (contiguous).
        layers: per layer ``(w_ih_t [N, in, 3H], w_hh_t [N, H, 3H], b_ih [N, 3H] | None, b_hh [N, 3H] | None)``
            (contiguous weights, e.g. :meth:`StaticGraphGRUCell.inference_node_parameters`).
        h0s: per layer initial state ``[N, B, H]``.
        gseqs: per layer mixing matrices ``[T, N, N]`` (an expanded view when constant).
    Returns ``(top outputs [T, N, B, H] or None, [h_T [N, B, H] per layer])``. Same math as
    :func:`gru_recurrence_nograd` for each layer.
    """
    steps, n, bsz, _ = x_tm.shape
    hs = h0s[0].shape[-1]
    dtype = x_tm.dtype
    prepared = []
    for w_ih, w_hh, b_ih, b_hh in layers:
        zero = x_tm.new_zeros(n, 3 * hs)
        b_ih = zero if b_ih is None else b_ih
        b_hh = zero if b_hh is None else b_hh
        # input projection bias: [b_ih_rz + b_hh_rz | b_ih_n]; the hidden n-bias b_hh_n replaces the input n-part
        b_q = torch.cat([b_ih[:, : 2 * hs] + b_hh[:, : 2 * hs], b_ih[:, 2 * hs:]], dim=-1).unsqueeze(1)
        prepared.append((w_ih.to(dtype).contiguous(), w_hh.to(dtype).contiguous(), b_q.to(dtype),
                         b_hh[:, 2 * hs:].unsqueeze(1).to(dtype)))
    q = x_tm.new_empty(n, bsz, 3 * hs)
    m = torch.empty_like(q)
    pn = x_tm.new_empty(n, bsz, hs)
    xn = torch.empty_like(pn)
    top = x_tm.new_empty(steps, n, bsz, hs) if keep_top_outputs else None
    rings = [(x_tm.new_empty(n, bsz, hs), x_tm.new_empty(n, bsz, hs)) for _ in layers]
    h = [h0.to(dtype) for h0 in h0s]
    last = len(layers) - 1
    for t in range(steps):
        inp = x_tm[t]
        for li, (w_ih, w_hh, b_q, b_hn) in enumerate(prepared):
            g = gseqs[li][t]
            torch.baddbmm(b_q, inp, w_ih, out=q)
            pn.copy_(q[..., 2 * hs:])
            q[..., 2 * hs:] = b_hn
            q.baddbmm_(h[li], w_hh)
            torch.mm(g, q.view(n, -1), out=m.view(n, -1))
            torch.mm(g, pn.view(n, -1), out=xn.view(n, -1))
            rz = m[..., : 2 * hs].sigmoid_()
            xn.addcmul_(rz[..., :hs], m[..., 2 * hs:]).tanh_()
            h_new = top[t] if (li == last and top is not None) else rings[li][t % 2]
            torch.lerp(xn, h[li], rz[..., hs:], out=h_new)
            h[li] = inp = h_new
    return top, h


def graph_gru_sequence(x: Tensor, h0: Tensor, w_hh_t: Tensor, b_hh: Optional[Tensor], gseq: Tensor,
                       const_input: bool, gate_fn: Optional[Callable] = None) -> Tensor:
    """Run the recurrence; ``[T, N, B, H]``. Uses the autograd node only when a gradient is needed.

    ``gate_fn``: optional replacement of :func:`_gate_math` (e.g. :func:`compiled_gates`).
    """
    tensors = (x, h0, w_hh_t, b_hh, gseq)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return GraphGRUSequence.apply(x, h0, w_hh_t, b_hh, gseq, const_input, gate_fn)
    return _recurrence(x, h0, w_hh_t, b_hh, gseq, const_input, save=False, gate_fn=gate_fn)[0][1:]


class GraphGRUSequence(torch.autograd.Function):
    """``apply(x, h0, w_hh_t, b_hh, gseq, const_input, gate_fn=None) -> hs [T, N, B, H]``.

    Args:
        x: ``const_input=False``: mixed input projections ``[T, N, B, 3H]`` (any strides);
           ``const_input=True``: unmixed constant projection ``P [N, B, 3H]`` mixed with ``g_t`` at every step.
        h0: initial state ``[N, B, H]``.
        w_hh_t: per-node recurrent weights, transposed, ``[N, H, 3H]``.
        b_hh: ``[N, 3H]`` or None.
        gseq: mixing matrix of every step ``[T, N, N]`` (an ``expand`` of one matrix when it is constant).
    """

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, w_hh_t: Tensor, b_hh: Optional[Tensor], gseq: Tensor,
                const_input: bool, gate_fn: Optional[Callable] = None) -> Tensor:  # type: ignore[override]
        states, y_all, gates = _recurrence(x, h0, w_hh_t, b_hh, gseq, const_input, save=True, gate_fn=gate_fn)
        ctx.const_input = const_input
        ctx.has_bias = b_hh is not None
        ctx.save_for_backward(x if const_input else None, w_hh_t, gseq, states, y_all, gates)
        return states[1:]

    @staticmethod
    def backward(ctx, d_out: Tensor) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        x, w_hh_t, gseq, states, y_all, gates = ctx.saved_tensors
        const_input = ctx.const_input
        steps, n, bsz, hs = d_out.shape
        k = bsz * 3 * hs
        w_t = w_hh_t.transpose(1, 2)  # [N, 3H, H]
        g_tr = gseq.transpose(1, 2)
        d_y_all = torch.empty_like(y_all)
        d_hm_all = torch.empty_like(y_all)  # grads of the mixed hidden projections
        d_x_all = torch.empty_like(y_all)  # grads of the mixed input projections
        dh = d_out.new_zeros(n, bsz, hs)
        # Only the hidden-state recurrence runs step by step; parameter grads are batched afterwards.
        for t in range(steps - 1, -1, -1):
            dh = dh + d_out[t]
            gt = gates[t]
            r, z, nn_, hn = gt[..., :hs], gt[..., hs: 2 * hs], gt[..., 2 * hs: 3 * hs], gt[..., 3 * hs:]
            d_xt, d_hm = d_x_all[t], d_hm_all[t]
            dhz = dh * z
            d_pre_n = d_xt[..., 2 * hs:]
            torch.mul(dh - dhz, 1 - nn_ * nn_, out=d_pre_n)
            torch.mul(dh * (states[t] - nn_), z - z * z, out=d_xt[..., hs: 2 * hs])
            torch.mul(d_pre_n * hn, r - r * r, out=d_xt[..., :hs])
            d_hm[..., : 2 * hs] = d_xt[..., : 2 * hs]
            torch.mul(d_pre_n, r, out=d_hm[..., 2 * hs:])
            torch.mm(g_tr[t], d_hm.view(n, -1), out=d_y_all[t].view(n, -1))
            dh = dhz.baddbmm_(d_y_all[t], w_t)
        d_g = torch.bmm(d_hm_all.view(steps, n, k), y_all.view(steps, n, k).transpose(1, 2))
        if const_input:
            x_flat = x.reshape(n, k)
            d_g += torch.matmul(d_x_all.view(steps, n, k), x_flat.t())
            d_x = torch.mm(gseq.permute(2, 0, 1).reshape(n, steps * n), d_x_all.view(steps * n, k)).view_as(x)
        else:
            d_x = d_x_all
        d_w = None
        if ctx.needs_input_grad[2]:
            h_prev_all = states[:steps].permute(1, 3, 0, 2).reshape(n, hs, steps * bsz)
            d_w = torch.bmm(h_prev_all, d_y_all.permute(1, 0, 2, 3).reshape(n, steps * bsz, 3 * hs))
        d_b = d_y_all.sum(dim=(0, 2)) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return d_x, dh, d_w, d_b, d_g, None, None
