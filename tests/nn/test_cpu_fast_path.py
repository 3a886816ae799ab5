"""No-grad CPU kernels (nn/cpu_kernels.py, nn/denoiser_fast.py, the decoder recurrence): same function as the
generic paths, used exactly when they should be, and the no-grad weight cache follows fused optimiser steps."""

from __future__ import annotations


import pytest
import torch

from skeleton_diffusion.nn.graph import kernels as cpu_kernels
from skeleton_diffusion.methods.skeleton_diffusion import denoiser_fast
from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser, fast_path_supported

needs_onednn = pytest.mark.skipif(not cpu_kernels.onednn_linear_available(),
                                  reason="this PyTorch build has no usable oneDNN linear")
TYPES = [2, 0, 1, 0, 2, 3]  # unsorted: the fast paths reorder nodes by type


def _denoiser(**kw) -> Denoiser:
    torch.manual_seed(0)
    args = dict(dim=8, cond_dim=8, num_nodes=6, node_types=TYPES, depth=2, attn_heads=2, attn_dim_head=4)
    args.update(kw)
    den = Denoiser(**args).eval()
    with torch.no_grad():  # trained-like weights: types differ, G is not the identity
        for p in den.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return den


def _inputs(den: Denoiser, b: int = 11):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(b, den.num_nodes, den.dim, generator=gen)
    cond = torch.randn(b, den.num_nodes, den.cond_dim, generator=gen) if den.cond_dim else None
    t = torch.randint(0, 10, (b,), generator=gen)
    return x, t, cond


def _generic(den: Denoiser, *args, monkeypatch, **kw) -> torch.Tensor:
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad():
        out = den(*args, **kw)
    monkeypatch.delenv("SKELETON_DIFFUSION_FAST_CPU")
    return out


def test_tanh_matches_torch_to_float_rounding() -> None:
    x = torch.cat([torch.linspace(-12, 12, 20001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 1e4, -1e4,
                                                                  float("inf"), float("-inf")])])
    got = cpu_kernels.tanh_(x.clone())
    torch.testing.assert_close(got, torch.tanh(x), rtol=0, atol=2.4e-7)
    assert got.abs().max() <= 1.0
    assert torch.isnan(cpu_kernels.tanh_(torch.tensor([float("nan")]))).all()


@needs_onednn
@pytest.mark.parametrize("kw", [
    {},
    {"use_attention": False},
    {"self_condition": True},
    {"cond_dim": 0},
    {"node_types": None},
    {"learn_influence": False},
])
@pytest.mark.parametrize("chunk_rows", [3, 64])
def test_fast_denoiser_equals_generic(kw, chunk_rows, monkeypatch) -> None:
    den = _denoiser(**kw)
    x, t, cond = _inputs(den)
    self_cond = torch.randn_like(x) if den.self_condition else None
    want = _generic(den, x, t, self_cond, cond, monkeypatch=monkeypatch)
    got = denoiser_fast.forward(den, x, t, cond, self_cond, chunk_rows=chunk_rows)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@needs_onednn
def test_denoiser_dispatches_to_the_fast_path_only_without_grad(monkeypatch) -> None:
    den = _denoiser()
    x, t, cond = _inputs(den)
    calls: list[int] = []
    orig = denoiser_fast.forward
    monkeypatch.setattr(denoiser_fast, "forward", lambda *a, **k: calls.append(1) or orig(*a, **k))
    with torch.no_grad():
        fast = den(x, t, x_cond=cond)
    assert calls == [1]
    slow = den(x, t, x_cond=cond)  # autograd on: generic path
    assert calls == [1] and slow.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad():
        den(x, t, x_cond=cond)
    assert calls == [1]
    monkeypatch.delenv("SKELETON_DIFFUSION_FAST_CPU")
    layer_norm = _denoiser(norm_type="layer")
    assert not fast_path_supported(layer_norm)
    with torch.no_grad():
        layer_norm(x, t, x_cond=cond)
    assert calls == [1]


@needs_onednn
def test_bfloat16_sampling_takes_the_fast_path_in_bfloat16(monkeypatch) -> None:
    """Under the CPU bfloat16 autocast of ``sampling_precision=bf16`` the node-major path runs in bfloat16 and
    lands as close to float32 as the generic autocast path does."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        if cpu_kernels.fast_path_dtype(torch.zeros(1)) != torch.bfloat16:
            pytest.skip("oneDNN bfloat16 products unavailable in this build")
    den = _denoiser()
    x, t, cond = _inputs(den, b=64)
    dtypes: list = []
    orig = denoiser_fast.forward
    monkeypatch.setattr(denoiser_fast, "forward", lambda *a, **k: dtypes.append(k.get("dtype")) or orig(*a, **k))
    with torch.no_grad():
        exact = den(x, t, x_cond=cond)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast_bf16 = den(x, t, x_cond=cond)
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        generic_bf16 = den(x, t, x_cond=cond).float()
    assert dtypes == [torch.float32, torch.bfloat16]
    assert fast_bf16.dtype == torch.float32
    err_fast = float((fast_bf16 - exact).abs().max())
    err_generic = float((generic_bf16 - exact).abs().max())
    scale = float(exact.abs().max())
    assert 0 < err_fast < 0.05 * scale  # bfloat16: not exact, but close
    assert err_fast < 3 * err_generic + 1e-6


def test_onednn_probes_survive_being_first_called_under_autocast(monkeypatch) -> None:
    monkeypatch.setattr(cpu_kernels, "_PROBES", {})
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        first = (cpu_kernels.onednn_linear_available(), cpu_kernels._probe(torch.bfloat16))
    monkeypatch.setattr(cpu_kernels, "_PROBES", {})
    assert first == (cpu_kernels.onednn_linear_available(), cpu_kernels._probe(torch.bfloat16))
    assert first[0] == torch.backends.mkldnn.is_available()  # every PyTorch CPU wheel ships oneDNN


def test_type_groups_order_and_inverse() -> None:
    groups = cpu_kernels.TypeGroups(TYPES, len(TYPES))
    assert [TYPES[i] for i in groups.perm.tolist()] == sorted(TYPES)
    assert groups.groups == [(0, 2, 0), (2, 3, 1), (3, 5, 2), (5, 6, 3)]
    x = torch.randn(6, 4, 3)
    torch.testing.assert_close(groups.restore(groups.permute(x)), x, rtol=0, atol=0)
    g = torch.randn(6, 6)
    y = torch.randn(6, 4 * 3)
    # mixing in the grouped order = grouped view of the original mixing
    torch.testing.assert_close(groups.mixing(g) @ groups.permute(y), groups.permute(g @ y), rtol=1e-6, atol=1e-6)
    shared = cpu_kernels.TypeGroups(None, 6)
    assert shared.identity and shared.groups == [(0, 6, 0)]


@needs_onednn
def test_grouped_linear_equals_per_node_products() -> None:
    groups = cpu_kernels.TypeGroups(TYPES, len(TYPES))
    gen = torch.Generator().manual_seed(0)
    w_type = torch.randn(4, 5, 3, generator=gen)
    b_type = torch.randn(4, 5, generator=gen)
    x = torch.randn(6, 7, 3, generator=gen)
    add = torch.randn(6, 7, 5, generator=gen)
    want = torch.einsum("nri,noi->nro", x, w_type[TYPES]) + b_type[TYPES][:, None] + add
    xg = groups.permute(x)
    got = cpu_kernels.grouped_linear(xg, groups, [w_type[t] for _, _, t in groups.groups],
                                     [b_type[t] for _, _, t in groups.groups], add=groups.permute(add))
    torch.testing.assert_close(groups.restore(got), want, rtol=1e-5, atol=1e-5)


def test_run_chunks_runs_each_chunk_once_on_threads_and_restores_the_setting(monkeypatch) -> None:
    import threading

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen: dict = {}
        inner: list = []

        def work(i: int) -> None:
            seen.setdefault(i, []).append(threading.get_ident())
            inner.append((torch.get_num_threads(), torch.is_grad_enabled()))

        with torch.no_grad():  # the caller's grad mode reaches the workers (it is per thread)
            cpu_kernels.run_chunks(work, 5)
        assert sorted(seen) == list(range(5)) and all(len(v) == 1 for v in seen.values())
        assert threading.get_ident() not in {v[0] for v in seen.values()}  # ran on worker threads
        assert set(inner) == {(1, False)} and torch.get_num_threads() == 2

        def boom(i: int) -> None:
            if i == 3:
                raise ValueError("chunk 3")

        with pytest.raises(ValueError, match="chunk 3"):
            cpu_kernels.run_chunks(boom, 4)
        assert torch.get_num_threads() == 2
        here_ac: list = []
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast is per thread: a plain loop keeps it
            cpu_kernels.run_chunks(lambda i: here_ac.append(torch.is_autocast_enabled("cpu")), 3)
        assert here_ac == [True] * 3
        torch.set_num_threads(1)  # one thread: a plain loop in this thread
        here: list = []
        cpu_kernels.run_chunks(lambda i: here.append(threading.get_ident()), 3)
        assert set(here) == {threading.get_ident()}
    finally:
        torch.set_num_threads(previous)


@needs_onednn
def test_fast_paths_give_the_same_values_with_one_or_two_threads() -> None:
    from skeleton_diffusion.methods.skeleton_diffusion.autoencoder import AutoEncoder

    den = _denoiser()
    x, t, cond = _inputs(den, b=50)
    torch.manual_seed(0)
    ae = AutoEncoder(num_nodes=6, node_types=TYPES, latent_size=8, encoder_hidden_size=8, decoder_hidden_size=8,
                     enc_num_layers=1).eval()
    past, z = 0.3 * torch.randn(150, 5, 6, 3), torch.tanh(torch.randn(150, 6, 8))
    previous = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                outs.append((denoiser_fast.forward(den, x, t, cond, chunk_rows=16), ae.decode(past, z, ph=9)))
        torch.set_num_threads(2)
        with torch.inference_mode():  # the workers run in the caller's inference mode (writes into `out` work)
            outs.append((denoiser_fast.forward(den, x, t, cond, chunk_rows=16), ae.decode(past, z, ph=9)))
    finally:
        torch.set_num_threads(previous)
    for other in outs[1:]:
        for one, two in zip(outs[0], other):
            torch.testing.assert_close(two, one, rtol=1e-5, atol=1e-6)
