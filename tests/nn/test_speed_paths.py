"""Issue 29 speed paths: both product libraries of the no-grad CPU kernels (MKL with in-place ``out=`` products,
oneDNN with a concatenation) compute the same function as the generic paths, whichever the CPU selects."""

from __future__ import annotations

import pytest
import torch

from skeleton_diffusion.methods.skeleton_diffusion import denoiser_fast
from skeleton_diffusion.nn.graph import kernels as cpu_kernels
from skeleton_diffusion.methods.skeleton_diffusion.autoencoder import AutoEncoder
from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser

TYPES = [2, 0, 1, 0, 2, 3]  # unsorted: the fast paths reorder nodes by type
BACKENDS = [b for b in ("mkl", "onednn") if b != "onednn" or cpu_kernels.onednn_linear_available()]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setitem(cpu_kernels._GEMM, "backend", request.param)
    monkeypatch.setitem(cpu_kernels._GEMM, "recurrence", request.param)   # the decoder's products follow
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield request.param
    torch.set_num_threads(prev)


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # trained-like weights: node types differ, G is not the identity
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return module.eval()


def test_gemm_backend_env_override(monkeypatch) -> None:
    monkeypatch.setattr(cpu_kernels, "_GEMM", {})
    monkeypatch.setenv("SKELETON_DIFFUSION_CPU_GEMM", "onednn")
    assert cpu_kernels.gemm_backend() == "onednn"
    monkeypatch.setattr(cpu_kernels, "_GEMM", {})
    monkeypatch.setenv("SKELETON_DIFFUSION_CPU_GEMM", "mkl")
    assert cpu_kernels.gemm_backend() == "mkl"
    monkeypatch.setattr(cpu_kernels, "_GEMM", {})
    monkeypatch.setenv("SKELETON_DIFFUSION_CPU_GEMM", "auto")
    assert cpu_kernels.gemm_backend() in ("mkl", "onednn")
    for choice in ("mkl", "onednn"):   # the recurrence's library has its own override
        monkeypatch.setattr(cpu_kernels, "_GEMM", {})
        monkeypatch.setenv("SKELETON_DIFFUSION_CPU_RECURRENCE_GEMM", choice)
        assert cpu_kernels.recurrence_backend() == choice


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("with_add", [True, False])
@pytest.mark.parametrize("with_out", [True, False])
def test_grouped_linear_both_backends(backend, with_bias, with_add, with_out) -> None:
    groups = cpu_kernels.TypeGroups(TYPES, len(TYPES))
    gen = torch.Generator().manual_seed(0)
    w_type, b_type = torch.randn(4, 5, 3, generator=gen), torch.randn(4, 5, generator=gen)
    x, add = torch.randn(6, 7, 3, generator=gen), torch.randn(6, 7, 5, generator=gen)
    want = torch.einsum("nri,noi->nro", x, w_type[TYPES])
    if with_bias:
        want = want + b_type[TYPES][:, None]
    if with_add:
        want = want + add
    out = torch.full((6, 7, 5), float("nan")) if with_out else None
    got = cpu_kernels.grouped_linear(groups.permute(x), groups, [w_type[t] for _, _, t in groups.groups],
                                     [b_type[t] for _, _, t in groups.groups] if with_bias else None,
                                     add=groups.permute(add) if with_add else None, out=out)
    if with_out:
        assert got.data_ptr() == out.data_ptr()
    torch.testing.assert_close(groups.restore(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attention", [True, False])
def test_fast_denoiser_equals_generic_both_backends(backend, attention, monkeypatch) -> None:
    torch.manual_seed(0)
    den = _perturbed(Denoiser(dim=8, cond_dim=8, num_nodes=6, node_types=TYPES, depth=2, attn_heads=2,
                              attn_dim_head=4, use_attention=attention), 1)
    gen = torch.Generator().manual_seed(2)
    x, cond = torch.randn(11, 6, 8, generator=gen), torch.randn(11, 6, 8, generator=gen)
    t = torch.randint(0, 10, (11,), generator=gen)
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad():
        want = den(x, t, x_cond=cond)
    monkeypatch.delenv("SKELETON_DIFFUSION_FAST_CPU")
    for chunk in (4, 200):
        got = denoiser_fast.forward(den, x, t, cond, None, chunk_rows=chunk)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_fast_decoder_equals_generic_both_backends(backend, monkeypatch) -> None:
    torch.manual_seed(3)
    model = _perturbed(AutoEncoder(num_nodes=6, node_types=TYPES, latent_size=8, encoder_hidden_size=6,
                                   decoder_hidden_size=7, enc_num_layers=2), 4)
    gen = torch.Generator().manual_seed(5)
    past, z = torch.randn(5, 4, 6, 3, generator=gen), torch.randn(5, 6, 8, generator=gen).tanh()
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad():
        want = model.decode(past, z, None, ph=9)
        want_z = model.get_past_embedding(past)
    monkeypatch.delenv("SKELETON_DIFFUSION_FAST_CPU")
    with torch.no_grad():
        got = model.decode(past, z, None, ph=9)
        got_z = model.get_past_embedding(past)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_z, want_z, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sigmoid_form", [True, False])
def test_tanh_both_forms_match_torch(sigmoid_form, monkeypatch) -> None:
    monkeypatch.setitem(cpu_kernels._GEMM, "sigmoid_tanh", sigmoid_form)
    x = torch.cat([torch.linspace(-12, 12, 20001), torch.tensor([0.0, 88.0, -88.0, float("inf"), float("-inf")])])
    got = cpu_kernels.tanh_(x.clone())
    torch.testing.assert_close(got, torch.tanh(x), rtol=0, atol=2.4e-7)
    assert got.abs().max() <= 1.0


def test_tanh_form_choice_is_cached(monkeypatch) -> None:
    monkeypatch.setattr(cpu_kernels, "_GEMM", {})
    first = cpu_kernels._sigmoid_tanh_faster()
    assert cpu_kernels._GEMM["sigmoid_tanh"] is first and cpu_kernels._sigmoid_tanh_faster() is first


@pytest.mark.parametrize("update", ["in_place", "fused_adam", "load_state_dict"])
def test_cached_node_weights_follow_parameter_updates(backend, update, monkeypatch) -> None:
    torch.manual_seed(0)
    den = _perturbed(Denoiser(dim=8, cond_dim=8, num_nodes=6, node_types=TYPES, depth=2, attn_heads=2,
                              attn_dim_head=4), 1)
    gen = torch.Generator().manual_seed(2)
    x, cond = torch.randn(5, 6, 8, generator=gen), torch.randn(5, 6, 8, generator=gen)
    t = torch.randint(0, 10, (5,), generator=gen)
    before = denoiser_fast.forward(den, x, t, cond)  # fills the cache
    if update == "in_place":
        with torch.no_grad():
            den.init_lin.weight.mul_(1.5)
    elif update == "fused_adam":
        opt = torch.optim.Adam(den.parameters(), lr=0.1, fused=True)
        den(x, t, x_cond=cond).square().mean().backward()
        opt.step()
    else:
        other = _perturbed(Denoiser(dim=8, cond_dim=8, num_nodes=6, node_types=TYPES, depth=2, attn_heads=2,
                                    attn_dim_head=4), 9)
        den.load_state_dict(other.state_dict())
    got = denoiser_fast.forward(den, x, t, cond)
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "0")
    with torch.no_grad():
        want = den(x, t, x_cond=cond)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, before)
