"""Denoiser: official state-dict names, equivalence with the official output, and unit behaviour."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import official_fixture

from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser, SinusoidalPosEmb
from skeleton_diffusion.utils.errors import ConfigError, InputError

AMASS_TYPES = [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 10, 10, 11, 11, 12, 12]
PAPER_ARCH = dict(depth=4, use_attention=True, attn_dim_head=32, attn_heads=8, norm_type="none",
                  learn_influence=True, self_condition=False, arch="Denoiser")


def _official_state_dict(weights: dict) -> dict:
    """Rebuild the diffusion state dict from the compact fixture form (recipe of the fixture README)."""
    return {k: (weights["tied_type_scale"][k].view(-1, 1, 1) * weights["tied_base"][k].float().unsqueeze(0))
            if k in weights["tied_base"] else weights["tensors"][k] for k in weights["key_order"]}


@pytest.fixture(scope="module")
def official():
    data = torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)
    sd = _official_state_dict(data["weights"])
    model_sd = {k[len("model."):]: v.float() for k, v in sd.items() if k.startswith("model.")}
    return data, model_sd


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return Denoiser(dim=96, out_dim=96, num_nodes=21, node_types=AMASS_TYPES, cond_dim=96, **PAPER_ARCH)


def test_paper_config_parameter_count(paper_model):
    assert sum(p.numel() for p in paper_model.parameters()) == 32_135_979
    assert paper_model.channels == 21 and paper_model.self_condition is False
    assert isinstance(paper_model.layers[7][1], torch.nn.Identity)  # last stage has no attention


def test_state_dict_keys_match_official_checkpoint_listing(paper_model, fixtures_dir):
    text = (fixtures_dir / "checkpoint_format.txt").read_text()
    diffusion_part = text[text.index("== DIFFUSION"):] if "== DIFFUSION" in text else text
    listed = re.findall(r"'model\.([^']+)': Tensor float32 \[([0-9, ]*)\]", diffusion_part)
    assert listed, "no model.* keys found in checkpoint_format.txt"
    official_shapes = {k: tuple(int(s) for s in shape.split(",") if s.strip()) for k, shape in listed}
    ours = {k: tuple(v.shape) for k, v in paper_model.state_dict().items()}
    assert ours == official_shapes


def test_matches_official_denoiser_output(official, paper_model):
    data, model_sd = official
    cfg = data["config"]
    assert cfg["node_types"].tolist() == AMASS_TYPES and cfg["diffusion_arch"] == PAPER_ARCH | {"arch": "Denoiser"}
    model = paper_model  # same configuration as the fixture (checked above)
    model.load_state_dict(model_sd, strict=True)
    model.eval()
    f = data["forward"]
    with torch.no_grad():
        out = model(f["x_t"], f["t"], None, f["cond"])
    ref = f["denoiser_out"]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    # the condition and the timestep both matter (so this comparison is not vacuous)
    with torch.no_grad():
        assert not torch.allclose(model(f["x_t"], f["t"], None, torch.zeros_like(f["cond"])), ref, atol=1e-3)
        assert not torch.allclose(model(f["x_t"], (f["t"] + 3) % 10, None, f["cond"]), ref, atol=1e-3)


def test_sinusoidal_embedding_formula():
    emb = SinusoidalPosEmb(8)(torch.tensor([0, 3]))
    freqs = torch.tensor([10000.0 ** (-k / 3) for k in range(4)])
    expected = torch.cat([torch.sin(3 * freqs), torch.cos(3 * freqs)])
    torch.testing.assert_close(emb[1], expected)
    torch.testing.assert_close(emb[0], torch.cat([torch.zeros(4), torch.ones(4)]))


@pytest.mark.parametrize("variant", [
    dict(use_attention=False),
    dict(self_condition=True),
    dict(norm_type="layer"),
    dict(cond_dim=0),
    dict(learned_sinusoidal_cond=True),
    dict(node_types=None),
])
def test_small_variants_forward_and_backward(variant):
    torch.manual_seed(0)
    kw = dict(dim=8, num_nodes=5, node_types=[0, 0, 1, 2, 2], cond_dim=4, depth=2, attn_heads=2, attn_dim_head=4)
    kw.update(variant)
    model = Denoiser(**kw)
    x = torch.randn(3, 5, 8)
    cond = torch.randn(3, 5, kw["cond_dim"]) if kw["cond_dim"] else None
    self_cond = torch.randn(3, 5, 8) if kw.get("self_condition") else None
    out = model(x, torch.tensor([0, 4, 9]), self_cond, cond)
    assert out.shape == (3, 5, 8)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_attention_mixes_nodes_and_types_share_weights():
    """With identity G everywhere and tied types, swapping two same-type nodes permutes the output."""
    torch.manual_seed(0)
    model = Denoiser(dim=8, num_nodes=4, node_types=[0, 0, 1, 1], cond_dim=0, depth=1, attn_heads=2,
                     attn_dim_head=4)
    x = torch.randn(2, 4, 8)
    t = torch.tensor([1, 5])
    perm = torch.tensor([1, 0, 2, 3])
    with torch.no_grad():
        out = model(x, t)
        out_perm = model(x[:, perm], t)
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-5, atol=1e-6)
    # changing one node changes the others (attention across joints)
    x2 = x.clone()
    x2[:, 3] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(x2, t)[:, 0], out[:, 0])


def test_bad_inputs_raise_clear_errors():
    model = Denoiser(dim=8, num_nodes=5, cond_dim=4, depth=1)
    with pytest.raises(InputError, match="x_cond"):
        model(torch.randn(2, 5, 8), torch.tensor([0, 1]))
    with pytest.raises(InputError, match=r"x \[B, 5, 8\]"):
        model(torch.randn(2, 6, 8), torch.tensor([0, 1]), None, torch.randn(2, 6, 4))
    with pytest.raises(ConfigError):
        Denoiser(dim=8, num_nodes=5, norm_type="group")
    with pytest.raises(ConfigError):
        Denoiser(dim=8)
