"""No-grad CPU kernels (nn/cpu_kernels.py, nn/denoiser_fast.py, the decoder recurrence): same function as the
generic paths, used exactly when they should be, and the no-grad weight cache follows fused optimiser steps."""

from __future__ import annotations

import copy

import pytest
import torch

from skeleton_diffusion.nn import cpu_kernels, denoiser_fast
from skeleton_diffusion.nn.denoiser import Denoiser

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
def test_node_linear_equals_per_node_products() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 6, generator=gen)
    w = torch.randn(5, 4, 6, generator=gen)
    b = torch.randn(5, 4, generator=gen)
    add = torch.randn(5, 7, 4, generator=gen)
    want = torch.einsum("nri,noi->nro", x, w) + b[:, None]
    torch.testing.assert_close(cpu_kernels.node_linear(x, list(w), list(b)), want, rtol=1e-5, atol=1e-5)
    out = torch.empty(5, 7, 4)
    got = cpu_kernels.node_linear(x, list(w), list(b), add=add, out=out)
    assert got.data_ptr() == out.data_ptr()
    torch.testing.assert_close(got, want + add, rtol=1e-5, atol=1e-5)


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
    assert not denoiser_fast.supports(layer_norm)
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
    monkeypatch.setattr(cpu_kernels, "_ONEDNN", None)
    monkeypatch.setattr(cpu_kernels, "_ONEDNN_BF16", None)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fp32 = cpu_kernels.onednn_linear_available()
        bf16 = cpu_kernels._onednn_bf16_available()
    monkeypatch.setattr(cpu_kernels, "_ONEDNN", None)
    monkeypatch.setattr(cpu_kernels, "_ONEDNN_BF16", None)
    assert (fp32, bf16) == (cpu_kernels.onednn_linear_available(), cpu_kernels._onednn_bf16_available())
    assert fp32 == torch.backends.mkldnn.is_available()  # every PyTorch CPU wheel ships oneDNN


@needs_onednn
def test_no_grad_decoder_recurrence_fast_equals_generic(monkeypatch) -> None:
    from skeleton_diffusion.nn.autoencoder import AutoEncoder

    torch.manual_seed(0)
    ae = AutoEncoder(num_nodes=6, node_types=TYPES, latent_size=8, encoder_hidden_size=8, decoder_hidden_size=8,
                     enc_num_layers=1).eval()
    with torch.no_grad():
        for p in ae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    past = 0.3 * torch.randn(9, 5, 6, 3)
    z = torch.tanh(torch.randn(9, 6, 8))
    with torch.no_grad():
        fast = ae.decode(past, z, ph=13)
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad():
        generic = ae.decode(past, z, ph=13)
    with_grad = ae.decode(past, z, ph=13).detach()
    torch.testing.assert_close(fast, generic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast, with_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_no_grad_weight_cache_follows_optimizer_steps(fused) -> None:
    """Fused Adam/AdamW steps do not bump parameter versions; the decoder's no-grad weight cache must still see
    the new weights (it used to keep decoding with the weights of the first validation)."""
    from skeleton_diffusion.nn.autoencoder import AutoEncoder

    torch.manual_seed(0)
    ae = AutoEncoder(num_nodes=6, node_types=TYPES, latent_size=8, encoder_hidden_size=8, decoder_hidden_size=8,
                     enc_num_layers=1)
    past = 0.3 * torch.randn(4, 5, 6, 3)
    future = 0.3 * torch.randn(4, 7, 6, 3)
    opt = torch.optim.AdamW(ae.parameters(), lr=0.05, fused=fused)
    for _ in range(2):
        ae.eval()
        with torch.no_grad():
            before = ae.decode(past, ae.get_embedding(future), ph=7)  # fills the cache
        ae.train()
        loss = (ae.autoencode(future, past, ph=7)[0] - future).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ae.eval()
        with torch.no_grad():
            z = ae.get_embedding(future)
            cached = ae.decode(past, z, ph=7)
            fresh = copy.deepcopy(ae).decode(past, z, ph=7)  # a copy has no cache
        assert not torch.allclose(before, cached)
        torch.testing.assert_close(cached, fresh, rtol=1e-6, atol=1e-7)


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
