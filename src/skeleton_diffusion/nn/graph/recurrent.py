"""Static-graph recurrent layers: GRU / LSTM cells whose gates are static-graph linear maps (per-node-type weights,
then a learned mixing across nodes), and their stacks. The linear layer and shared helpers are in
:mod:`skeleton_diffusion.nn.graph.layers`."""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from skeleton_diffusion.nn.graph.gru_sequence import (
    compiled_gates,
    graph_gru_sequence,
    gru_recurrence_nograd,
    gru_stack_nograd,
    inference_input_terms,
)
from skeleton_diffusion.nn.graph.kernels import TypeGroups
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["StaticGraphGRUCell", "StaticGraphGRU", "StaticGraphLSTMCell", "StaticGraphLSTM"]

from skeleton_diffusion.nn.graph.layers import (  # noqa: F401
    OPTIMIZER_STEPS,
    GraphGRUState,
    GraphLSTMState,
    StaticGraphLinear,
    _register_influence,
    _resolve_num_nodes,
    as_node_types,
    gather_types,
    row_l1_normalise,
)


# ---------------------------------------------------------------------------------------------------------
# Recurrent cells
# ---------------------------------------------------------------------------------------------------------
class _StaticGraphRecurrentCell(nn.Module):
    """Shared construction of the GRU / LSTM cells (``gate_mult`` = 3 for GRU, 4 for LSTM)."""

    gate_mult = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        num_nodes: Optional[int] = None,
        node_types: Union[Tensor, Sequence[int], None] = None,
        weights_per_type: bool = False,
        graph_influence: Optional[Tensor] = None,
        learn_influence: bool = False,
        additive_graph_influence: Optional[Tensor] = None,
        learn_additive_graph_influence: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        clockwork: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.learn_influence = bool(learn_influence)
        self.learn_additive_graph_influence = bool(learn_additive_graph_influence)
        num_nodes = _resolve_num_nodes(num_nodes, graph_influence, node_types)
        self.num_nodes = num_nodes
        _register_influence(self, num_nodes, graph_influence, self.learn_influence)
        # G_add: Parameter when learnable, buffer when a fixed matrix is given, otherwise absent (constant 0).
        if additive_graph_influence is not None:
            if isinstance(additive_graph_influence, nn.Parameter) or self.learn_additive_graph_influence:
                self.G_add = nn.Parameter(torch.as_tensor(additive_graph_influence).detach().clone().float())
            else:
                self.register_buffer("G_add", torch.as_tensor(additive_graph_influence).detach().clone().float())
        elif self.learn_additive_graph_influence:
            self.G_add = nn.Parameter(torch.zeros(num_nodes, num_nodes))
        else:
            self.G_add = None
        types = as_node_types(node_types, num_nodes)
        if types is None and weights_per_type:
            types = torch.arange(num_nodes)
        self.per_type = types is not None
        gh = self.gate_mult * self.hidden_size
        lead = (int(types.max()) + 1,) if types is not None else ()
        self.num_node_types = lead[0] if lead else 1
        self.weight_ih = nn.Parameter(torch.empty(*lead, gh, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(*lead, gh, self.hidden_size))
        self.register_buffer("node_type_index", types)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(*lead, gh))
            self.bias_hh = nn.Parameter(torch.empty(*lead, gh))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.clockwork = bool(clockwork)
        if clockwork:
            phase = torch.arange(0.0, self.hidden_size)
            phase = torch.floor(phase / phase.max().clamp_min(1.0) * 8.0 + 1.0)
        else:
            phase = torch.ones(self.hidden_size)
        self.register_buffer("phase", phase)
        self.dropout = nn.Dropout(dropout)
        self.r_dropout = nn.Dropout(recurrent_dropout)
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: every parameter except G / G_add ~ U(+-1/sqrt(H)), types independent."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            if p is not None:
                nn.init.uniform_(p, -stdv, stdv)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_nodes={self.num_nodes}, "
                f"node_types={self.num_node_types if self.per_type else 'shared'}, "
                f"learn_influence={self.learn_influence}, additive={self.G_add is not None}")

    # -- influence ---------------------------------------------------------------------------------------
    def initial_influence(self) -> Tensor:
        return row_l1_normalise(self.G) if self.learn_influence else self.G

    def next_influence(self, g: Tensor) -> Tensor:
        """Influence for the next step: ``normalise(g + G_add)`` (normalised when anything is learnable)."""
        if self.G_add is not None:
            g = g + self.G_add
        if self.learn_influence or self.learn_additive_graph_influence:
            g = row_l1_normalise(g)
        return g

    @property
    def evolving_influence(self) -> bool:
        """True when the mixing matrix changes between steps (``G_add`` present)."""
        return self.G_add is not None

    def influence_sequence(self, steps: int, g0: Optional[Tensor] = None) -> List[Tensor]:
        """``[g_0, ..., g_{steps-1}]`` and nothing else; data independent, so it is computed up front."""
        g = self.initial_influence() if g0 is None else g0
        seq = [g]
        for _ in range(steps - 1):
            g = self.next_influence(g)
            seq.append(g)
        return seq

    # -- per-node parameters -----------------------------------------------------------------------------
    def _gather(self, p: Optional[Tensor]) -> Optional[Tensor]:
        if p is None:
            return None
        if self.per_type:
            return p.index_select(0, self.node_type_index)
        return p.unsqueeze(0).expand(self.num_nodes, *p.shape)

    def node_parameters(self) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """Per-node ``W_ih^T [N, in, G*H]``, ``W_hh^T [N, H, G*H]``, ``b_ih``, ``b_hh [N, G*H]``, gathered once."""
        return (self._gather(self.weight_ih).transpose(1, 2), self._gather(self.weight_hh).transpose(1, 2),
                self._gather(self.bias_ih), self._gather(self.bias_hh))

    def node_groups(self) -> TypeGroups:
        """The nodes' weight sharing for the no-grad CPU products (:class:`~skeleton_diffusion.nn.graph.kernels.
        TypeGroups`; one group for shared weights), cached."""
        groups = self.__dict__.get("_node_groups")
        if groups is None:
            types = self.node_type_index.tolist() if self.per_type else None
            groups = self.__dict__["_node_groups"] = TypeGroups(types, self.num_nodes)
        return groups

    def inference_node_parameters(self) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """:meth:`node_parameters` for the no-grad paths: gathered once, contiguous, and cached until a parameter
        changes (keyed on storage, in-place version and :data:`OPTIMIZER_STEPS`, so optimiser steps -- including
        fused ones, which do not bump the version counter -- ``load_state_dict`` and ``.to()`` all refresh it). A
        frozen autoencoder thus gathers its weights once per training run, not once per call."""
        params = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.node_type_index)
        key = (OPTIMIZER_STEPS[0],) + tuple(None if p is None else (p.data_ptr(), p._version, p.dtype)
                                            for p in params)
        cache = self.__dict__.get("_inference_cache")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                w_ih, w_hh, b_ih, b_hh = self.node_parameters()
                value = (w_ih.contiguous(), w_hh.contiguous(), b_ih, b_hh)
            self.__dict__["_inference_cache"] = cache = (key, value)
        return cache[1]

    def clock_mask(self, t: int, like: Tensor) -> Optional[Tensor]:
        """Clockwork update mask ``[H]`` for step ``t`` (None when clockwork is off: all ones, a no-op)."""
        if not self.clockwork:
            return None
        tt = torch.tensor(t + 1.0, device=like.device)
        return (torch.remainder(tt, self.phase) < 0.01).to(like.dtype)


def _affine(x: Tensor, w_t: Tensor, b: Optional[Tensor], dropout: Optional[nn.Dropout] = None) -> Tensor:
    """Node-major per-node affine: ``x [N, M, in]``, ``w_t [N, in, out]``, ``b [N, out]`` -> ``[N, M, out]``.

    ``dropout`` (official placement) acts on the projection before the bias is added.
    """
    if dropout is not None and dropout.training and dropout.p > 0:
        y = dropout(torch.bmm(x, w_t))
        return y if b is None else y + b.unsqueeze(1)
    if b is None:
        return torch.bmm(x, w_t)
    return torch.baddbmm(b.unsqueeze(1), x, w_t)


def _mix(g: Tensor, y: Tensor) -> Tensor:
    return torch.mm(g, y.reshape(y.shape[0], -1)).view(y.shape)


def gru_gates(x_mixed: Tensor, h_mixed: Tensor, h: Tensor) -> Tensor:
    """GRU update from mixed projections ``x_mixed, h_mixed [..., 3H]`` and state ``h [..., H]`` (gates r, z, n)."""
    hs = h.shape[-1]
    rz = torch.sigmoid(x_mixed[..., : 2 * hs] + h_mixed[..., : 2 * hs])
    r, z = rz[..., :hs], rz[..., hs:]
    n = torch.tanh(torch.addcmul(x_mixed[..., 2 * hs:], r, h_mixed[..., 2 * hs:]))
    return torch.lerp(n, h, z)  # = (1 - z) * n + z * h


class StaticGraphGRUCell(_StaticGraphRecurrentCell):
    """One static-graph GRU step with per-type weights (official ``StaticGraphGRUCell_``).

    ``X = g @ (W_ih x + b_ih)``, ``Hh = g @ (W_hh h + b_hh)``, standard GRU gates; the returned influence is
    :meth:`next_influence` of ``g``. State dict: ``G, [G_add,] weight_ih [n_types,3H,in], weight_hh [n_types,3H,H],
    bias_ih, bias_hh [n_types,3H], node_type_index [N] (buffer), phase [H] (buffer)``.
    """

    gate_mult = 3

    def forward(self, x: Tensor, state: GraphGRUState = (None, None), t: int = 0) -> Tuple[Tensor, GraphGRUState]:
        """One step. ``x [B, N, in]``; returns ``(h' [B, N, H], (h', g'))``. Batch-major convenience API."""
        h, g = state
        if h is None:
            h = x.new_zeros(x.shape[0], self.num_nodes, self.hidden_size)
        if g is None:
            g = self.initial_influence()
        w_ih, w_hh, b_ih, b_hh = self.node_parameters()
        h_nm = self.r_dropout(h).transpose(0, 1)
        xp = _mix(g, _affine(x.transpose(0, 1), w_ih, b_ih, self.dropout))
        hp = _mix(g, _affine(h_nm, w_hh, b_hh))
        h_new = gru_gates(xp, hp, h.transpose(0, 1))
        mask = self.clock_mask(t, h_new)
        if mask is not None:
            h_new = mask * h_new + (1 - mask) * h.transpose(0, 1)
        h_new = h_new.transpose(0, 1)
        return h_new, (h_new, self.next_influence(g))

    #: use the fused sequence kernel (:mod:`._gru_sequence`); the step loop is kept for clockwork/recurrent dropout
    fused: bool = True
    #: fuse the elementwise gate math of each step with ``torch.compile`` (off by default)
    compile_gates: bool = False

    def _gate_fn(self):
        return compiled_gates() if self.compile_gates else None

    def _can_fuse(self) -> bool:
        return self.fused and not self.clockwork and not (self.r_dropout.training and self.r_dropout.p > 0)

    def _inference_path(self, *tensors: Optional[Tensor]) -> bool:
        """True when no gradient is needed and the arranged-for-speed no-grad recurrence applies."""
        if self.compile_gates or (self.dropout.training and self.dropout.p > 0):
            return False
        if not torch.is_grad_enabled():
            return True
        return not any(t is not None and t.requires_grad for t in (*tensors, *self.parameters()))

    def influence_tensor(self, steps: int, g0: Optional[Tensor] = None) -> Tensor:
        """Mixing matrices of ``steps`` consecutive steps ``[T, N, N]`` (an expanded view when constant)."""
        if not self.evolving_influence:
            g = self.initial_influence() if g0 is None else g0
            return g.expand(steps, *g.shape)
        return torch.stack(self.influence_sequence(steps, g0))

    def influence_after(self, gseq: Tensor) -> Tensor:
        """Influence of the step following a run that used ``gseq [T, N, N]``."""
        return self.next_influence(gseq[-1]) if self.evolving_influence else gseq[0]

    def _constant_input_nograd(self, x_nm: Tensor, h: Tensor, gseq: Tensor, out_w_t: Optional[Tensor] = None):
        """No-grad recurrence on the constant input ``x_nm [N, B, in]``: states ``[T, N, B, H]``, or with
        ``out_w_t`` ``(h_T, projections [T, N, B, F])`` (see :func:`gru_recurrence_nograd`)."""
        w_ih, w_hh, b_ih, b_hh = self.inference_node_parameters()
        pc, pn = inference_input_terms(torch.bmm(x_nm, w_ih), b_ih, b_hh, self.hidden_size)
        return gru_recurrence_nograd(pc, pn, h, w_hh, gseq, out_proj=out_w_t, node_groups=self.node_groups())

    def run_node_major(self, x_nm: Tensor, h0: Optional[Tensor], g0: Optional[Tensor] = None,
                       t0: int = 0, keep_outputs: bool = True) -> Tuple[Optional[Tensor], Tensor, Tensor]:
        """Run the cell over a whole sequence.

        ``x_nm [N, T, B, in]`` (node-major), ``h0 [N, B, H]`` or None. The input projection of all T steps is one
        ``bmm`` followed by one (batched) mixing product; only the hidden path runs inside the loop.
        Returns ``(outputs [N, T, B, H] or None, h_T [N, B, H], g_T [N, N])`` (``g_T`` = influence for step T).
        """
        if not self._can_fuse():
            return self._run_loop(x_nm, h0, g0, t0, keep_outputs)
        n, steps, bsz, _ = x_nm.shape
        hs = self.hidden_size
        inference = self._inference_path(x_nm, h0, g0)
        w_ih, w_hh, b_ih, b_hh = self.inference_node_parameters() if inference else self.node_parameters()
        gseq = self.influence_tensor(steps, g0)
        g_last = self.influence_after(gseq)
        if inference:
            xp = torch.bmm(x_nm.reshape(n, steps * bsz, -1), w_ih)  # biases are folded in below
            pc, pn = inference_input_terms(xp.view(n, steps, bsz, 3 * hs), b_ih, b_hh, hs)
            h = x_nm.new_zeros(n, bsz, hs) if h0 is None else h0
            out = gru_recurrence_nograd(pc, pn, h, w_hh, gseq, keep_outputs=keep_outputs,
                                        node_groups=self.node_groups())
            if not keep_outputs:
                return None, out, g_last
            return out.permute(1, 0, 2, 3), out[-1], g_last
        xp = _affine(x_nm.reshape(n, steps * bsz, -1), w_ih, b_ih, self.dropout)  # [N, T*B, 3H]
        if not self.evolving_influence:
            x_mixed = _mix(gseq[0], xp).view(n, steps, bsz, 3 * hs).permute(1, 0, 2, 3)
        else:
            x_mixed = torch.matmul(gseq, xp.view(n, steps, bsz * 3 * hs).transpose(0, 1)).view(steps, n, bsz, 3 * hs)
        h = x_nm.new_zeros(n, bsz, hs) if h0 is None else h0
        out_tm = graph_gru_sequence(x_mixed, h, w_hh, b_hh, gseq, False, self._gate_fn())  # [T, N, B, H]
        return (out_tm.permute(1, 0, 2, 3) if keep_outputs else None), out_tm[-1], g_last

    def run_constant_input_projected(self, x_nm: Tensor, h0: Optional[Tensor], steps: int, out_w_t: Tensor,
                                     g0: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Inference only (no autograd): like :meth:`run_constant_input` but returns the per-node projections
        ``h_t @ out_w_t[n]`` of every state, time-major ``[T, N, B, F]``, instead of the states (``out_w_t [N, H, F]``;
        the caller mixes and adds the bias). Returns ``(projections, h_T, g_T)``."""
        n, bsz, _ = x_nm.shape
        gseq = self.influence_tensor(steps, g0)
        h = x_nm.new_zeros(n, bsz, self.hidden_size) if h0 is None else h0
        h_last, proj = self._constant_input_nograd(x_nm, h, gseq, out_w_t)
        return proj, h_last, self.influence_after(gseq)

    def run_constant_input(self, x_nm: Tensor, h0: Optional[Tensor], steps: int, g0: Optional[Tensor] = None
                           ) -> Tuple[Tensor, Tensor, Tensor]:
        """Run ``steps`` steps feeding the same input ``x_nm [N, B, in]`` every step (the decoder's case).

        The input is projected once; its mixing with the step's ``g_t`` happens inside the recurrence.
        Returns ``(outputs [N, T, B, H], h_T, g_T)``.
        """
        if not self._can_fuse():
            n, bsz, fin = x_nm.shape
            return self._run_loop(x_nm.unsqueeze(1).expand(n, steps, bsz, fin), h0, g0, 0, True)  # type: ignore
        n, bsz, _ = x_nm.shape
        gseq = self.influence_tensor(steps, g0)
        h = x_nm.new_zeros(n, bsz, self.hidden_size) if h0 is None else h0
        if self._inference_path(x_nm, h0, g0):
            out_tm = self._constant_input_nograd(x_nm, h, gseq)
        else:
            w_ih, w_hh, b_ih, b_hh = self.node_parameters()
            p = _affine(x_nm, w_ih, b_ih, self.dropout)  # [N, B, 3H], projected once
            out_tm = graph_gru_sequence(p, h, w_hh, b_hh, gseq, True, self._gate_fn())
        return out_tm.permute(1, 0, 2, 3), out_tm[-1], self.influence_after(gseq)

    def _run_loop(self, x_nm: Tensor, h0: Optional[Tensor], g0: Optional[Tensor] = None,
                  t0: int = 0, keep_outputs: bool = True) -> Tuple[Optional[Tensor], Tensor, Tensor]:
        """Step-by-step version of :meth:`run_node_major` built from autograd ops (clockwork, recurrent dropout)."""
        n, steps, bsz, _ = x_nm.shape
        hs = self.hidden_size
        w_ih, w_hh, b_ih, b_hh = self.node_parameters()
        xp = _affine(x_nm.reshape(n, steps * bsz, -1), w_ih, b_ih, self.dropout).view(n, steps, bsz, 3 * hs)
        g = self.initial_influence() if g0 is None else g0
        constant_g = not self.evolving_influence
        if constant_g:
            xp = _mix(g, xp)
        h = x_nm.new_zeros(n, bsz, hs) if h0 is None else h0
        outs: List[Tensor] = []
        xs = xp.unbind(1)  # one UnbindBackward for all steps (per-step slicing would cost O(T^2) in backward)
        for t in range(steps):
            if not constant_g and t > 0:
                g = self.next_influence(g)
            xt = xs[t] if constant_g else _mix(g, xs[t])
            hp = _mix(g, _affine(self.r_dropout(h), w_hh, b_hh))
            h_new = gru_gates(xt, hp, h)
            mask = self.clock_mask(t0 + t, h_new)
            h = h_new if mask is None else mask * h_new + (1 - mask) * h
            if keep_outputs:
                outs.append(h)
        g_last = self.next_influence(g) if not constant_g else g
        out = torch.stack(outs, dim=1) if keep_outputs else None
        return out, h, g_last


class StaticGraphLSTMCell(_StaticGraphRecurrentCell):
    """Static-graph LSTM step (official twin, unused by the paper models). Gates i, f, g, o; one mixing of the
    summed projections: ``gates = g @ (W_ih x + W_hh h + b_hh)`` (the official cell has no ``b_ih`` term in the
    sum even though it is allocated)."""

    gate_mult = 4

    def forward(self, x: Tensor, state: GraphLSTMState = (None, None, None), t: int = 0
                ) -> Tuple[Tensor, GraphLSTMState]:
        h, c, g = state
        if h is None:
            h = x.new_zeros(x.shape[0], self.num_nodes, self.hidden_size)
        if c is None:
            c = x.new_zeros(x.shape[0], self.num_nodes, self.hidden_size)
        if g is None:
            g = self.initial_influence()
        w_ih, w_hh, _, b_hh = self.node_parameters()
        pre = self.dropout(torch.bmm(x.transpose(0, 1), w_ih)) + _affine(self.r_dropout(h).transpose(0, 1), w_hh, b_hh)
        gates = _mix(g, pre).transpose(0, 1)
        i, f, cg, o = gates.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cg)
        mask = self.clock_mask(t, c_new)
        if mask is not None:
            c_new = mask * c_new + (1 - mask) * c
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return h_new, (h_new, c_new, self.next_influence(g))


class _StaticGraphStack(nn.Module):
    cell_class: type = StaticGraphGRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, layer_dropout: float = 0.0,
                 **cell_kwargs) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            [self.cell_class(input_size if i == 0 else hidden_size, hidden_size, **cell_kwargs)
             for i in range(num_layers)])
        self.dropout = nn.Dropout(layer_dropout)


class StaticGraphGRU(_StaticGraphStack):
    """Stack of :class:`StaticGraphGRUCell`: each layer runs over the whole sequence before the next one.

    ``forward(x [B, T, N, in], states=None | list of (h [B,N,H] | None, g | None), t_i=0)`` returns
    ``(outputs [B, T, N, H] of the top layer, [per-layer final (h, g)])`` like the official stack.
    """

    cell_class = StaticGraphGRUCell

    def forward(self, x: Tensor, states: Optional[List[GraphGRUState]] = None, t_i: int = 0
                ) -> Tuple[Tensor, List[GraphGRUState]]:
        out_nm, finals = self.forward_node_major(
            x.permute(2, 1, 0, 3), None if states is None else
            [(None if h is None else h.transpose(0, 1), g) for h, g in states], t_i=t_i, keep_top_outputs=True)
        return out_nm.permute(2, 1, 0, 3), [(h.transpose(0, 1), g) for h, g in finals]

    def forward_node_major(self, x_nm: Tensor, states: Optional[List[GraphGRUState]] = None, t_i: int = 0,
                           keep_top_outputs: bool = True) -> Tuple[Optional[Tensor], List[Tuple[Tensor, Tensor]]]:
        """Node-major stack: ``x_nm [N, T, B, in]``, states ``(h [N, B, H] | None, g | None)`` per layer.
        Returns ``(top outputs [N, T, B, H] or None, [(h_T [N,B,H], g_T)] per layer)``."""
        if states is None:
            states = [(None, None)] * self.num_layers
        if len(states) != self.num_layers:
            raise InputError(f"expected {self.num_layers} layer states, got {len(states)}")
        n, steps, bsz, _ = x_nm.shape
        if (all(c._can_fuse() and c._inference_path(x_nm, *[s[0] for s in states]) for c in self.layers)
                and not (self.dropout.training and self.dropout.p > 0) and torch.is_floating_point(x_nm)
                and not torch.is_autocast_enabled(x_nm.device.type)):
            # inference: all layers step by step (see gru_stack_nograd)
            gseqs = [c.influence_tensor(steps, g0) for c, (_, g0) in zip(self.layers, states)]
            h0s = [x_nm.new_zeros(n, bsz, self.hidden_size) if h0 is None else h0 for h0, _ in states]
            top, h_last = gru_stack_nograd(x_nm.permute(1, 0, 2, 3).contiguous(),
                                           [c.inference_node_parameters() for c in self.layers], h0s, gseqs,
                                           keep_top_outputs)
            finals = [(h, c.influence_after(gs)) for c, h, gs in zip(self.layers, h_last, gseqs)]
            return (None if top is None else top.permute(1, 0, 2, 3)), finals
        finals: List[Tuple[Tensor, Tensor]] = []
        out: Optional[Tensor] = x_nm
        for i, cell in enumerate(self.layers):
            top = i == self.num_layers - 1
            h0, g0 = states[i]
            assert out is not None
            out, h, g = cell.run_node_major(out, h0, g0, t0=t_i, keep_outputs=(not top) or keep_top_outputs)
            if out is not None:
                out = self.dropout(out)
            finals.append((h, g))
        return out, finals


class StaticGraphLSTM(_StaticGraphStack):
    """Stack of :class:`StaticGraphLSTMCell` (reference implementation, step by step)."""

    cell_class = StaticGraphLSTMCell

    def forward(self, x: Tensor, states: Optional[List[GraphLSTMState]] = None, t_i: int = 0
                ) -> Tuple[Tensor, List[GraphLSTMState]]:
        if states is None:
            states = [(None, None, None)] * self.num_layers
        output = x
        finals: List[GraphLSTMState] = []
        for i, cell in enumerate(self.layers):
            state = states[i]
            outs = []
            for t in range(output.shape[1]):
                h, state = cell(output[:, t], state, t_i + t)
                outs.append(h)
            output = self.dropout(torch.stack(outs, dim=1))
            finals.append(state)
        return output, finals
