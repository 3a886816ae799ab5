"""The plug-and-play snippets of docs/plug_and_play.md run verbatim; Trainer1D contract of the adapter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from skeleton_diffusion.diffusion.isotropic import IsotropicGaussianDiffusion
from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
from skeleton_diffusion.diffusion.trainer1d import Trainer1DAdapter, load_trainer1d
from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
from skeleton_diffusion.utils.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "plug_and_play.md"


def _snippets() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2, "docs/plug_and_play.md should contain exactly two python snippets"
    return blocks


def test_readme_snippet_training_loop_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(_snippets()[0], str(DOC), "exec"), scope)
    diffusion = scope["diffusion"]
    assert isinstance(diffusion, NonisotropicGaussianDiffusion)
    assert scope["generated_samples"].shape == (4, 16, 96)
    assert torch.isfinite(scope["generated_samples"]).all()
    assert scope["loss"].shape == (8,) and scope["weight"].shape == (8,)
    # the weight is alphas_cumprod[t]: every entry is one of the schedule values
    assert all(torch.isclose(diffusion.alphas_cumprod, w).any() for w in scope["weight"])


@pytest.mark.slow
def test_readme_snippet_trainer1d_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(_snippets()[1], str(DOC), "exec"), scope)
    trainer = scope["trainer"]
    assert trainer.step == 4
    for m in (1, 2):
        ckpt = torch.load(tmp_path / "results" / f"model-{m}.pt", weights_only=True)
        assert ckpt["step"] == 2 * m
        samples = torch.load(tmp_path / "results" / f"sample-{m}.png", weights_only=True)
        assert samples.shape == (4, 16, 96) and torch.isfinite(samples).all()
    # the bare diffusion state dict loads into a fresh diffusion
    bare = {k[len("diffusion."):]: v for k, v in ckpt["model"].items()}
    scope["diffusion"].load_state_dict(bare)
    # training changed the weights
    before = scope["Denoiser"](dim=96, cond_dim=0, out_dim=96, num_nodes=16)
    assert any(not torch.equal(p, q) for p, q in zip(before.state_dict().values(),
                                                      scope["diffusion"].model.state_dict().values())
               if p.dtype.is_floating_point)


class _Tiny(nn.Module):
    channels = 5
    self_condition = False
    cond_dim = 0

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.t_emb = nn.Embedding(10, 8)

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        return self.lin(x) + self.t_emb(t)[:, None]


def _diffusion(**kw) -> NonisotropicGaussianDiffusion:
    adj = torch.diag(torch.ones(4), 1) + torch.diag(torch.ones(4), -1)
    S, L, U = get_cov_from_corr(adj)
    return NonisotropicGaussianDiffusion(S, L, U, _Tiny(), latent_size=8, **kw)


def test_adapter_contract():
    torch.manual_seed(0)
    diffusion = _diffusion()
    adapter = Trainer1DAdapter(diffusion)
    assert (adapter.channels, adapter.seq_length, adapter.num_timesteps) == (5, 8, 10)
    assert adapter.is_ddim_sampling is False and adapter.self_condition is False
    x = torch.rand(6, 5, 8) * 2 - 1
    g = torch.Generator().manual_seed(3)
    loss = adapter(x, generator=g)
    assert loss.dim() == 0 and loss.requires_grad
    g = torch.Generator().manual_seed(3)
    out = diffusion(x, generator=g)
    assert torch.equal(loss, (out.loss * out.weight).mean())
    assert torch.equal(Trainer1DAdapter(diffusion, apply_loss_weight=False)(x, generator=torch.Generator()
                                                                            .manual_seed(3)), out.loss.mean())
    samples = adapter.sample(batch_size=3)
    assert torch.is_tensor(samples) and samples.shape == (3, 5, 8)
    assert set(adapter.state_dict()) == {"diffusion." + k for k in diffusion.state_dict()}


def test_adapter_rejects_conditional_models():
    model = _Tiny()
    model.cond_dim = 8
    adj = torch.ones(5, 5) - torch.eye(5)
    S, L, U = get_cov_from_corr(adj)
    diffusion = NonisotropicGaussianDiffusion(S, L, U, model, latent_size=8)
    with pytest.raises(ConfigError, match="unconditional"):
        Trainer1DAdapter(diffusion)


def test_load_trainer1d_gives_the_installed_classes():
    pytest.importorskip("accelerate")
    Trainer1D, Dataset1D = load_trainer1d()
    assert Trainer1D.__name__ == "Trainer1D" and Dataset1D.__name__ == "Dataset1D"
    assert Trainer1D.__module__.endswith("denoising_diffusion_pytorch_1d")
    data = Dataset1D(torch.zeros(3, 5, 8))
    assert len(data) == 3 and data[0].shape == (5, 8)


def test_isotropic_adapter_trains_one_manual_step():
    torch.manual_seed(0)
    diffusion = IsotropicGaussianDiffusion(_Tiny(), latent_size=8)
    adapter = Trainer1DAdapter(diffusion)
    opt = torch.optim.Adam(adapter.parameters(), lr=1e-2)
    x = torch.rand(4, 5, 8)
    # the adapter's loss is the diffusion's weighted loss for the same draws of t and noise
    t, noise = torch.tensor([0, 3, 6, 9]) % diffusion.num_timesteps, torch.randn(4, 5, 8)
    torch.testing.assert_close(adapter(x, t=t, noise=noise), diffusion(x, t=t, noise=noise).weighted_mean(),
                               rtol=0, atol=0)
    # and one Adam step on it is a descent step: the same loss (same t, noise) goes down
    before = adapter(x, t=t, noise=noise)
    opt.zero_grad()
    before.backward()
    grads = [p.grad.abs().sum() for p in adapter.parameters() if p.grad is not None]
    assert grads and sum(grads) > 0
    opt.step()
    after = adapter(x, t=t, noise=noise)
    assert after.item() < before.item(), (before.item(), after.item())
