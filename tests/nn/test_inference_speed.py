"""Speed paths of inference (issue 15): they compute the same function as the plain paths."""

from __future__ import annotations

import pytest
import torch


def _tiny_pipeline():
    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
    from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
    from skeleton_diffusion.methods.skeleton_diffusion.autoencoder import AutoEncoder
    from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser
    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import SkeletonDiffusion

    torch.manual_seed(0)
    types = [0, 0, 1, 2]
    ae = AutoEncoder(num_nodes=4, node_types=types, latent_size=8, encoder_hidden_size=8, decoder_hidden_size=8,
                     enc_num_layers=2)
    den = Denoiser(dim=8, cond_dim=8, num_nodes=4, node_types=types, depth=1, attn_heads=2, attn_dim_head=8)
    adj = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.float64)
    diff = NonisotropicGaussianDiffusion(*get_cov_from_corr(adj), den, diffusion_conditioning=True, latent_size=8)
    with torch.no_grad():
        for p in list(ae.parameters()) + list(diff.parameters()):
            p.add_(0.1 * torch.randn_like(p))
    model = SkeletonDiffusion(ae, diff, pose_box_size=1.0, obs_length=5, pred_length=7).eval()
    model.requires_grad_(False)
    return model


def test_row_chunked_sampling_equals_one_pass(monkeypatch) -> None:
    model = _tiny_pipeline()
    obs = 0.3 * torch.randn(3, 5, 4, 3)
    calls: list[int] = []
    model.diffusion.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    monkeypatch.setattr(type(model.diffusion), "inference_chunk_rows_cpu", None)
    full = model.predict(obs, 5, generator=torch.Generator().manual_seed(0))
    assert set(calls) == {15}
    calls.clear()
    monkeypatch.setattr(type(model.diffusion), "inference_chunk_rows_cpu", 4)
    chunked = model.predict(obs, 5, generator=torch.Generator().manual_seed(0))
    assert max(calls) == 4 and sum(calls) == 15 * model.diffusion.num_timesteps
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-6)


def test_predict_uses_the_no_grad_decoder_recurrence(monkeypatch) -> None:
    from skeleton_diffusion.nn.graph.recurrent import StaticGraphGRUCell

    model = _tiny_pipeline()
    obs = 0.3 * torch.randn(2, 5, 4, 3)
    used: list[bool] = []
    orig = StaticGraphGRUCell.run_constant_input_projected

    def spy(self, *a, **k):
        used.append(torch.is_grad_enabled())
        return orig(self, *a, **k)

    monkeypatch.setattr(StaticGraphGRUCell, "run_constant_input_projected", spy)
    fast = model.predict(obs, 3, generator=torch.Generator().manual_seed(0))
    assert used and not any(used)  # the fused no-grad recurrence, output layer inside the loop
    # same values as the gradient-path decoder
    lat, _ = model.sample_latents(obs, 3, generator=torch.Generator().manual_seed(0))
    with torch.enable_grad():
        slow = model.autoencoder.decoder(obs.repeat_interleave(3, 0)[:, -2:], lat.requires_grad_(True), None, ph=7)
    torch.testing.assert_close(fast.reshape(slow.shape), slow.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,expected", [("fp32", None), ("bf16", torch.bfloat16), ("float16", torch.float16)])
def test_network_dtype_names(name, expected) -> None:
    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import network_dtype

    assert network_dtype(name) == expected


def test_network_dtype_rejects_unknown() -> None:
    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import network_dtype
    from skeleton_diffusion.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="sampling_precision"):
        network_dtype("int8")
