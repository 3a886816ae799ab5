"""Static-graph layers: per-node-type weights followed by a learned mixing across nodes.

Terminology (kept from the official code so that its state dicts load unchanged):

* *node types*: nodes that share a type (e.g. left and right knee) share one weight slice.
  ``weight[n_types, out, in]`` is gathered to ``[N, out, in]`` with ``node_type_index``.
* *graph influence* ``G [N, N]``: a dense, input-independent matrix that mixes the per-node results.
  When learnable it is used row-L1-normalised (``g = G / max(sum_j |G_ij|, 1e-12)``).
* *additive influence* ``G_add [N, N]`` (recurrent cells only): after every step the influence used by the
  next step is ``g' = normalise(g + G_add)``, so the mixing evolves along the sequence.

Layout. Public ``forward`` methods take batch-major tensors (``[B, N, F]`` / ``[B, T, N, F]``). Internally the
recurrent code works *node-major* (``[N, B, F]``): the per-node weights then apply as one ``bmm`` and the node
mixing as one plain ``mm`` on ``[N, B*F]``, with no transposes inside the time loop.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = [
    "row_l1_normalise",
    "StaticGraphLinear",
    "GraphGRUState",
    "GraphLSTMState",
    "as_node_types",
]


#: optimiser steps taken in this process (any ``torch.optim`` optimiser); part of the key of the no-grad weight
#: caches, because ``Adam/AdamW(fused=True).step()`` updates parameters without bumping their version counter
OPTIMIZER_STEPS = [0]


def _count_optimizer_step(optimizer, args, kwargs) -> None:  # noqa: ANN001 (torch hook signature)
    OPTIMIZER_STEPS[0] += 1


register_optimizer_step_post_hook(_count_optimizer_step)

GraphGRUState = Tuple[Optional[Tensor], Optional[Tensor]]
"""``(h [B, N, H] or None, g [N, N] or None)``; None means 'initial' (zeros / normalised G)."""

GraphLSTMState = Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]
"""``(h, c, g)`` with the same conventions as :data:`GraphGRUState`."""


def row_l1_normalise(g: Tensor) -> Tensor:
    """Divide each row of ``g [N, N]`` by its L1 norm (guarded by 1e-12), as the official layers do."""
    return F.normalize(g, p=1.0, dim=1)


def as_node_types(node_types: Union[Tensor, Sequence[int], None], num_nodes: Optional[int]) -> Optional[Tensor]:
    """Validate ``node_types`` (length ``num_nodes``, ints >= 0) and return it as an int64 CPU tensor."""
    if node_types is None:
        return None
    t = torch.as_tensor(node_types).detach().clone().to(dtype=torch.long, device="cpu").reshape(-1)
    if num_nodes is not None and t.numel() != num_nodes:
        raise ConfigError(f"node_types has {t.numel()} entries but num_nodes={num_nodes}; expected one type per node")
    if t.numel() == 0 or int(t.min()) < 0:
        raise ConfigError(f"node_types must be non-negative integers, got {t.tolist()}")
    return t


def _resolve_num_nodes(num_nodes: Optional[int], graph_influence: Optional[Tensor], node_types) -> int:
    if graph_influence is not None:
        n = int(graph_influence.shape[0])
        shape = tuple(graph_influence.shape)
        if graph_influence.ndim != 2 or graph_influence.shape[1] != n:
            raise ConfigError(f"graph_influence must be a square [N, N] matrix, got shape {shape}")
        if num_nodes is not None and num_nodes != n:
            raise ConfigError(f"num_nodes={num_nodes} disagrees with graph_influence of shape {shape}")
        return n
    if num_nodes is None:
        if node_types is not None:
            return int(torch.as_tensor(node_types).numel())
        raise ConfigError("StaticGraph layers need num_nodes (or a graph_influence matrix)")
    return int(num_nodes)


def _register_influence(module: nn.Module, num_nodes: int, graph_influence: Optional[Tensor], learn: bool) -> None:
    """Register ``G`` as a Parameter (learnable) or buffer, identity when no matrix is given."""
    if isinstance(graph_influence, nn.Parameter):
        if not learn:
            raise ConfigError("graph_influence is an nn.Parameter, so learn_influence must be True")
        module.G = graph_influence
        return
    g = torch.eye(num_nodes) if graph_influence is None else graph_influence.detach().clone().float()
    if learn:
        module.G = nn.Parameter(g)
    else:
        module.register_buffer("G", g)


class _TypeGather(torch.autograd.Function):
    """``param.index_select(0, index)`` whose backward is one dense product ``onehot.T @ grad`` instead of
    ``index_add`` (a scatter, slow on CPU; 40% of the denoiser's backward). Exact: each type's gradient is the
    sum of its (at most a few) nodes' gradients, and adding the zero terms is exact."""

    @staticmethod
    def forward(ctx, param: Tensor, index: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(index)
        ctx.num_types = param.shape[0]
        return param.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        onehot = torch.zeros(ctx.num_types, index.numel(), dtype=grad.dtype, device=grad.device)
        onehot[index, torch.arange(index.numel(), device=grad.device)] = 1.0
        out = torch.mm(onehot, grad.reshape(index.numel(), -1)).view(ctx.num_types, *grad.shape[1:])
        return out, None


class _TypeProject(torch.autograd.Function):
    """``xs [K, M, in] @ weight[k]^T (+ bias[k])`` -> ``[K, M, out]`` whose backward writes the weight gradient
    directly in the parameter's ``[K, out, in]`` layout (``dys^T @ xs``); autograd's ``bmm`` would produce it
    transposed and then copy it into place."""

    @staticmethod
    def forward(ctx, xs: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(xs, weight)
        ctx.has_bias = bias is not None
        w_t = weight.transpose(1, 2)
        return torch.bmm(xs, w_t) if bias is None else torch.baddbmm(bias.unsqueeze(1), xs, w_t)

    @staticmethod
    def backward(ctx, d_ys: Tensor):  # type: ignore[override]
        xs, weight = ctx.saved_tensors
        d_xs = torch.bmm(d_ys, weight) if ctx.needs_input_grad[0] else None
        d_w = torch.bmm(d_ys.transpose(1, 2), xs) if ctx.needs_input_grad[1] else None
        d_b = d_ys.sum(dim=1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_xs, d_w, d_b


def gather_types(param: Tensor, index: Tensor) -> Tensor:
    """Rows ``param[index]`` (``[T, ...]`` -> ``[N, ...]``) with the dense-product backward of :class:`_TypeGather`
    when a gradient is needed."""
    if torch.is_grad_enabled() and param.requires_grad:
        return _TypeGather.apply(param, index)
    return param.index_select(0, index)


class StaticGraphLinear(nn.Module):
    """Per-node-type linear map followed by node mixing: ``y = g @ (W_type(n) x_n + b_type(n))``.

    Args:
        in_features, out_features: feature widths.
        num_nodes: N (may be omitted when ``graph_influence`` or ``node_types`` is given).
        node_types: length-N ints; nodes of one type share ``weight[type]``. ``None`` -> one shared weight.
        weights_per_type: with ``node_types=None``, give every node its own type (official option).
        graph_influence: initial ``G [N, N]`` (default identity).
        learn_influence: ``G`` is a Parameter and used row-L1-normalised; otherwise a raw buffer.
        bias: learn an additive bias (per type).

    Parameters: ``G [N,N]``, ``weight [n_types, out, in]`` (``[out, in]`` shared), ``bias [n_types, out]``.
    ``node_type_index`` is a non-persistent buffer (the official layer keeps it out of the state dict).

    Initialisation follows the official layer: Kaiming-uniform(a=sqrt(5)) on the 3-D weight, i.e. bound
    ``1/sqrt(out*in)``, then every type is overwritten with type 0 (identical types at start); bias uniform with
    the same bound, independent per type.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        num_nodes: Optional[int] = None,
        node_types: Union[Tensor, Sequence[int], None] = None,
        weights_per_type: bool = False,
        graph_influence: Optional[Tensor] = None,
        learn_influence: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.learn_influence = bool(learn_influence)
        num_nodes = _resolve_num_nodes(num_nodes, graph_influence, node_types)
        self.num_nodes = num_nodes
        _register_influence(self, num_nodes, graph_influence, self.learn_influence)
        types = as_node_types(node_types, num_nodes)
        if types is None and weights_per_type:
            types = torch.arange(num_nodes)
        self.per_type = types is not None
        if types is not None:
            self.num_node_types = int(types.max()) + 1
            self.weight = nn.Parameter(torch.empty(self.num_node_types, self.out_features, self.in_features))
            self.register_buffer("node_type_index", types, persistent=False)
        else:
            self.num_node_types = 1
            self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
            self.register_buffer("node_type_index", None, persistent=False)
        if bias:
            shape = (self.num_node_types, self.out_features) if self.per_type else (self.out_features,)
            self.bias = nn.Parameter(torch.empty(*shape))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation (see class docstring); consumes the global RNG in the official order."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.weight.ndim == 3:
            with torch.no_grad():
                self.weight[1:] = self.weight[0]
        if self.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, num_nodes={self.num_nodes}, "
                f"node_types={self.num_node_types if self.per_type else 'shared'}, "
                f"learn_influence={self.learn_influence}, bias={self.bias is not None}")

    # -- pieces -----------------------------------------------------------------------------------------
    def influence(self) -> Tensor:
        """The mixing matrix actually used: ``row_l1_normalise(G)`` if learnable, else ``G``. ``[N, N]``."""
        return row_l1_normalise(self.G) if self.learn_influence else self.G

    def node_weight(self) -> Tensor:
        """Per-node weights ``[N, out, in]`` (a view/expansion for the shared form)."""
        if self.per_type:
            return gather_types(self.weight, self.node_type_index)
        return self.weight.unsqueeze(0).expand(self.num_nodes, -1, -1)

    def node_bias(self) -> Optional[Tensor]:
        """Per-node bias ``[N, out]`` or None."""
        if self.bias is None:
            return None
        if self.per_type:
            return gather_types(self.bias, self.node_type_index)
        return self.bias.unsqueeze(0).expand(self.num_nodes, -1)

    def project_node_major(self, x: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
        """Per-node affine map without mixing. ``x [N, M, in]`` -> ``[N, M, out]``."""
        w = self.node_weight() if weight is None else weight
        b = self.node_bias() if bias is None else bias
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @staticmethod
    def mix_node_major(g: Tensor, y: Tensor) -> Tensor:
        """Node mixing ``g @ y`` for node-major ``y [N, ...]`` (one plain matrix product)."""
        n = y.shape[0]
        return torch.mm(g, y.reshape(n, -1)).view(y.shape)

    #: with gradients, compute per-type layers type-grouped (see :meth:`_forward_grouped`)
    grouped_backprop: bool = True

    def _slot_plan(self, device: torch.device) -> Tuple[Tensor, Tensor, int]:
        """Type-grouped layout: ``K`` types x ``C`` slots (C = most nodes of one type). Returns ``slot_node
        [K*C]`` (node feeding each slot; padding slots repeat a node of their type), ``slot_mask [K*C]`` (1 for real
        slots, 0 for padding) and ``C``; cached per device."""
        cache = self.__dict__.setdefault("_slot_plans", {})
        if device not in cache:
            types = self.node_type_index.tolist()
            k = self.num_node_types
            members: List[List[int]] = [[] for _ in range(k)]
            for node, t in enumerate(types):
                members[t].append(node)
            c = max(len(m) for m in members)
            slot_node, mask = [], []
            for m in members:
                for j in range(c):
                    slot_node.append(m[j] if j < len(m) else (m[0] if m else 0))
                    mask.append(1.0 if j < len(m) else 0.0)
            cache[device] = (torch.tensor(slot_node, device=device), torch.tensor(mask, device=device), c)
        return cache[device]

    def _use_grouped(self, x: Tensor) -> bool:
        if not (self.grouped_backprop and self.per_type and torch.is_grad_enabled()):
            return False
        if not (self.weight.requires_grad or x.requires_grad):
            return False
        _, _, c = self._slot_plan(x.device)
        return self.num_node_types * c <= 1.5 * self.num_nodes  # padding overhead bounded

    def _forward_grouped(self, x: Tensor, g: Tensor) -> Tensor:
        """Training form of :meth:`forward_node_major`: nodes are gathered into type slots and every type's
        weight is used as stored (``[K, C*M, in] @ weight[k]^T``) instead of gathering the weights to all N nodes;
        the mixing then reads the slots through ``g[:, slot_node] * slot_mask``. Same function; the backward
        produces the per-type weight gradient directly (no per-node weight copies or type reduction), which is
        what dominates a small-batch training step. Padding slots are computed and multiplied by exact zeros."""
        slot_node, mask, c = self._slot_plan(x.device)
        n, m, fin = x.shape
        k = self.num_node_types
        xs = gather_types(x, slot_node).view(k, c * m, fin)  # dense-product backward (exact, see _TypeGather)
        ys = _TypeProject.apply(xs, self.weight, self.bias)  # [K, C*M, out]
        g_slots = g.index_select(1, slot_node) * mask
        return torch.mm(g_slots, ys.view(k * c, m * self.out_features)).view(n, m, self.out_features)

    def forward_node_major(self, x: Tensor, g: Optional[Tensor] = None) -> Tensor:
        """``x [N, M, in]`` -> ``[N, M, out]`` (node-major variant of :meth:`forward`)."""
        g = self.influence() if g is None else g
        if self._use_grouped(x):
            return self._forward_grouped(x, g)
        return self.mix_node_major(g, self.project_node_major(x))

    def mix_time_major(self, y: Tensor, g: Optional[Tensor] = None) -> Tensor:
        """Second half of :meth:`forward_time_major`: mix per-node projections ``y [T, N, B, out]`` and add the
        (mixed) bias."""
        steps, n, bsz, out = y.shape
        g = self.influence() if g is None else g
        y = torch.matmul(g, y.reshape(steps, n, bsz * out)).view(steps, n, bsz, out)
        b = self.node_bias()
        if b is not None:
            # bias after mixing: g @ (Wx + b) = g @ Wx + g @ b
            y = y + torch.mm(g, b).view(1, n, 1, out)
        return y

    def forward_time_major(self, x: Tensor, g: Optional[Tensor] = None) -> Tensor:
        """``x [T, N, B, in]`` -> ``[T, N, B, out]`` without moving ``x`` to node-major first (one batched product
        over T x N for the projection, one for the mixing); meant for small ``out`` (the decoder's output layer)."""
        w_t = self.node_weight().transpose(1, 2)  # [N, in, out]
        return self.mix_time_major(torch.matmul(x, w_t.unsqueeze(0)), g)  # [T, N, B, out]

    def forward(self, x: Tensor, g: Optional[Tensor] = None) -> Tensor:
        """``x [..., N, in]`` -> ``[..., N, out]``; ``g`` overrides the mixing matrix ``[N, N]``."""
        if x.ndim < 2 or x.shape[-2] != self.num_nodes or x.shape[-1] != self.in_features:
            raise InputError(
                f"StaticGraphLinear expected input [..., {self.num_nodes}, {self.in_features}], got {tuple(x.shape)}")
        lead = x.shape[:-2]
        xm = x.reshape(-1, self.num_nodes, self.in_features).transpose(0, 1)  # [N, M, in]
        y = self.forward_node_major(xm, g)  # [N, M, out]
        return y.transpose(0, 1).reshape(*lead, self.num_nodes, self.out_features)
