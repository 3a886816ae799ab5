"""Unit tests of the static-graph layers (no reference files needed)."""

from __future__ import annotations

import math

import pytest
import torch
from _nn_helpers import perturb, single_thread  # noqa: F401  (fixture)

from skeleton_diffusion.nn.graph.layers import StaticGraphLinear, row_l1_normalise
from skeleton_diffusion.nn.graph.recurrent import StaticGraphGRU, StaticGraphGRUCell, StaticGraphLSTM
from skeleton_diffusion.utils.errors import ConfigError, InputError

TYPES = torch.tensor([0, 0, 1, 2, 2, 3])  # 6 nodes, 4 types; nodes (0,1) and (3,4) share a type
N = TYPES.numel()


pytestmark = pytest.mark.usefixtures("single_thread")


def _naive_linear(layer: StaticGraphLinear, x: torch.Tensor) -> torch.Tensor:
    """Per-node loop written from the definition: y = g @ (W_type(n) x_n + b_type(n))."""
    g = layer.G / layer.G.abs().sum(1, keepdim=True) if layer.learn_influence else layer.G
    cols = []
    for n in range(layer.num_nodes):
        t = int(layer.node_type_index[n])
        y = x[:, n] @ layer.weight[t].T
        if layer.bias is not None:
            y = y + layer.bias[t]
        cols.append(y)
    h = torch.stack(cols, dim=1)
    return torch.einsum("nm,bmo->bno", g, h)


def test_row_l1_normalise_rows_sum_to_one_in_abs():
    g = torch.randn(5, 5)
    out = row_l1_normalise(g)
    torch.testing.assert_close(out.abs().sum(1), torch.ones(5))
    torch.testing.assert_close(out, g / g.abs().sum(1, keepdim=True))
    # zero rows stay zero instead of producing NaN (1e-12 guard)
    z = row_l1_normalise(torch.zeros(3, 3))
    assert torch.isfinite(z).all() and (z == 0).all()


def test_linear_shapes_params_and_official_init():
    torch.manual_seed(0)
    layer = StaticGraphLinear(5, 7, num_nodes=N, node_types=TYPES, learn_influence=True)
    assert layer.weight.shape == (4, 7, 5) and layer.bias.shape == (4, 7) and layer.G.shape == (N, N)
    assert set(layer.state_dict()) == {"G", "weight", "bias"}  # node_type_index is not persistent (official)
    # official init: identical types, bound 1/sqrt(out*in), identity G
    for t in range(1, 4):
        assert torch.equal(layer.weight[t], layer.weight[0])
    bound = 1 / math.sqrt(7 * 5)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert not torch.equal(layer.bias[0], layer.bias[1])
    assert torch.equal(layer.G, torch.eye(N))
    x = torch.randn(3, N, 5)
    assert layer(x).shape == (3, N, 7)
    assert layer(torch.randn(2, 4, N, 5)).shape == (2, 4, N, 7)


def test_linear_matches_per_node_definition_and_shares_type_weights():
    torch.manual_seed(1)
    layer = StaticGraphLinear(4, 3, num_nodes=N, node_types=TYPES, learn_influence=True)
    perturb(layer)
    x = torch.randn(8, N, 4)
    torch.testing.assert_close(layer(x), _naive_linear(layer, x), rtol=1e-5, atol=1e-6)
    # with the identity mixing, nodes of the same type map the same input to the same output
    with torch.no_grad():
        layer.G.copy_(torch.eye(N))
    x_same = torch.randn(8, 1, 4).expand(8, N, 4)
    y = layer(x_same)
    torch.testing.assert_close(y[:, 0], y[:, 1])
    torch.testing.assert_close(y[:, 3], y[:, 4])
    assert not torch.allclose(y[:, 1], y[:, 2])
    # gradients of a type's weight collect the contributions of all its nodes
    layer.zero_grad()
    layer(x).sum().backward()
    assert layer.weight.grad.shape == layer.weight.shape and layer.weight.grad.abs().sum() > 0


def test_linear_shared_weight_and_fixed_influence():
    torch.manual_seed(2)
    adj = torch.rand(N, N)
    layer = StaticGraphLinear(4, 2, graph_influence=adj, learn_influence=False)
    assert layer.weight.shape == (2, 4) and "G" in dict(layer.named_buffers())
    x = torch.randn(5, N, 4)
    expected = torch.einsum("nm,bmo->bno", adj, x @ layer.weight.T + layer.bias)
    torch.testing.assert_close(layer(x), expected)
    with pytest.raises(InputError, match="expected input"):
        layer(torch.randn(5, N + 1, 4))
    with pytest.raises(ConfigError):
        StaticGraphLinear(4, 2, num_nodes=3, node_types=[0, 1])


def _step_reference(cell: StaticGraphGRUCell, x: torch.Tensor, h: torch.Tensor, g: torch.Tensor):
    """One GRU step written from the spec with explicit per-node loops."""
    hs = cell.hidden_size
    xs, hh = [], []
    for n in range(cell.num_nodes):
        t = int(cell.node_type_index[n])
        xs.append(x[:, n] @ cell.weight_ih[t].T + cell.bias_ih[t])
        hh.append(h[:, n] @ cell.weight_hh[t].T + cell.bias_hh[t])
    X = torch.einsum("nm,bmo->bno", g, torch.stack(xs, 1))
    H = torch.einsum("nm,bmo->bno", g, torch.stack(hh, 1))
    r = torch.sigmoid(X[..., :hs] + H[..., :hs])
    z = torch.sigmoid(X[..., hs:2 * hs] + H[..., hs:2 * hs])
    nn_ = torch.tanh(X[..., 2 * hs:] + r * H[..., 2 * hs:])
    h_new = (1 - z) * nn_ + z * h
    g_new = g + (cell.G_add if cell.G_add is not None else 0)
    return h_new, g_new / g_new.abs().sum(1, keepdim=True)


def test_gru_cell_state_dict_names_and_init():
    torch.manual_seed(3)
    cell = StaticGraphGRUCell(3, 8, num_nodes=N, node_types=TYPES, learn_influence=True,
                              learn_additive_graph_influence=True)
    assert list(cell.state_dict()) == ["G", "G_add", "weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                       "node_type_index", "phase"]
    assert cell.weight_ih.shape == (4, 24, 3) and cell.weight_hh.shape == (4, 24, 8)
    assert torch.equal(cell.phase, torch.ones(8)) and torch.equal(cell.G_add, torch.zeros(N, N))
    assert cell.weight_hh.abs().max() <= 1 / math.sqrt(8)
    assert not torch.equal(cell.weight_hh[0], cell.weight_hh[1])  # GRU types are NOT tied at init
    enc_cell = StaticGraphGRUCell(3, 8, num_nodes=N, node_types=TYPES, learn_influence=True)
    assert "G_add" not in enc_cell.state_dict() and enc_cell.G_add is None


@pytest.mark.parametrize("additive", [False, True])
def test_gru_sequence_matches_step_by_step_definition(additive):
    torch.manual_seed(4)
    cell = StaticGraphGRUCell(3, 8, num_nodes=N, node_types=TYPES, learn_influence=True,
                              learn_additive_graph_influence=additive)
    perturb(cell, seed=5)
    B, T = 4, 6
    x = torch.randn(B, T, N, 3)
    h = torch.randn(B, N, 8) * 0.5
    g = row_l1_normalise(cell.G)
    ref_out = []
    hr, gr = h, g
    for t in range(T):
        hr, gr = _step_reference(cell, x[:, t], hr, gr)
        ref_out.append(hr)
    ref = torch.stack(ref_out, 1)
    # batch-major single-step API
    hs, state = h, (h, None)
    for t in range(T):
        hs, state = cell(x[:, t], state, t)
        torch.testing.assert_close(hs, ref[:, t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[1], gr, rtol=1e-5, atol=1e-7)
    # vectorised sequence API
    out, h_last, g_last = cell.run_node_major(x.permute(2, 1, 0, 3), h.transpose(0, 1))
    torch.testing.assert_close(out.permute(2, 1, 0, 3), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_last.transpose(0, 1), ref[:, -1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_last, gr, rtol=1e-5, atol=1e-7)


def test_gru_stack_layers_and_gradients():
    torch.manual_seed(6)
    rnn = StaticGraphGRU(3, 8, num_layers=2, num_nodes=N, node_types=TYPES, learn_influence=True)
    perturb(rnn, seed=7)
    x = torch.randn(2, 5, N, 3, requires_grad=True)
    out, states = rnn(x)
    assert out.shape == (2, 5, N, 8) and len(states) == 2 and states[0][0].shape == (2, N, 8)
    # the stack is layer-by-layer: the top layer eats the bottom layer's outputs
    out0, _ = StaticGraphGRU.forward(_single(rnn, 0), x)
    out1, _ = StaticGraphGRU.forward(_single(rnn, 1), out0)
    torch.testing.assert_close(out, out1)
    out.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in rnn.parameters())


def _single(rnn: StaticGraphGRU, i: int) -> StaticGraphGRU:
    one = StaticGraphGRU(rnn.layers[i].input_size, rnn.hidden_size, num_layers=1, num_nodes=N, node_types=TYPES,
                         learn_influence=True)
    one.layers[0].load_state_dict(rnn.layers[i].state_dict())
    return one


def test_lstm_twin_runs():
    torch.manual_seed(8)
    rnn = StaticGraphLSTM(3, 8, num_layers=2, num_nodes=N, node_types=TYPES, learn_influence=True)
    out, states = rnn(torch.randn(2, 4, N, 3))
    assert out.shape == (2, 4, N, 8) and len(states[0]) == 3
    assert rnn.layers[0].weight_ih.shape == (4, 32, 3)


@pytest.mark.parametrize("const_input", [False, True])
def test_fused_gru_sequence_gradcheck(const_input):
    from skeleton_diffusion.nn.graph.gru_sequence import GraphGRUSequence

    torch.manual_seed(9)
    T, n, B, H = 4, 3, 2, 2
    dd = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, B, 3 * H, **dd) if const_input else torch.randn(T, n, B, 3 * H, **dd)
    h0 = torch.randn(n, B, H, **dd)
    w = (0.5 * torch.randn(n, H, 3 * H, dtype=torch.float64)).requires_grad_()
    b = torch.randn(n, 3 * H, **dd)
    gseq = (torch.eye(n, dtype=torch.float64) + 0.3 * torch.randn(T, n, n, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: GraphGRUSequence.apply(*a, const_input), (x, h0, w, b, gseq))


@pytest.mark.parametrize("additive", [False, True])
def test_fused_and_step_loop_agree_in_values_and_gradients(additive):
    torch.manual_seed(10)
    cell = StaticGraphGRUCell(3, 8, num_nodes=N, node_types=TYPES, learn_influence=True,
                              learn_additive_graph_influence=additive)
    perturb(cell, seed=11)
    x = torch.randn(N, 7, 4, 3)
    h0 = torch.randn(N, 4, 8)

    def run(fused: bool):
        cell.zero_grad()
        cell.fused = fused
        out, h, g = cell.run_node_major(x, h0)
        (out.sin().sum() + h.square().sum() + (g * torch.arange(N * N).view(N, N)).sum()).backward()
        return [out.detach(), h.detach(), g.detach()] + [p.grad.clone() for p in cell.parameters()]

    fused, loop = run(True), run(False)
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    cell.fused = True
    out_c, _, _ = cell.run_constant_input(x[:, 0], h0, steps=5)
    out_l, _, _ = cell._run_loop(x[:, :1].expand(N, 5, 4, 3), h0)
    torch.testing.assert_close(out_c, out_l, rtol=1e-5, atol=1e-6)
