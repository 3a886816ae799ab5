"""Video-based DiffPose (methods.diffpose.video): self-consistency checks (no official fixture exists; the port
was compared bit-for-bit with the official Diffpose_video code on CPU outside the repository, see the docs)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from skeleton_diffusion.methods.diffpose import convert, load_run
from skeleton_diffusion.methods.diffpose.diffusion import compute_alpha, diffpose_betas
from skeleton_diffusion.methods.diffpose.networks import GCNdiff
from skeleton_diffusion.methods.diffpose.video import (
    MixSTE2, clip_sequence, flip_2d, lift_video_clips, load_mixste, mixste_prior, unflip_3d,
)
from skeleton_diffusion.utils.errors import CheckpointError

F, J = 5, 17


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    mix = MixSTE2(num_frame=F, num_joints=J, embed_dim_ratio=16, depth=2, num_heads=2).eval()
    with torch.no_grad():
        mix.Temporal_pos_embed.normal_(0, 0.1)
        mix.Spatial_pos_embed.normal_(0, 0.1)
    den = GCNdiff(hid_dim=16, num_layer=1, n_head=2).eval()
    betas = torch.from_numpy(diffpose_betas("linear", 1e-4, 1e-3, 51)).float()
    return mix, den, betas


def test_clip_sequence_official_layout():
    seq = torch.arange(12.0).reshape(12, 1, 1)
    clips = clip_sequence(seq, F)
    assert clips.shape == (3, F, 1, 1)
    assert clips[:2].reshape(-1).tolist() == list(range(10))
    assert clips[2].reshape(-1).tolist() == list(range(7, 12))                     # last F frames, overlapping
    short = clip_sequence(seq[:3], F).reshape(-1).tolist()
    assert short == [0, 1, 2, 2, 2]                                                # edge padding


def test_flip_is_an_involution_and_swaps_sides():
    x = torch.randn(2, F, J, 2)
    assert torch.equal(flip_2d(flip_2d(x)), x)
    assert torch.equal(flip_2d(x)[..., 4, 0], -x[..., 1, 0])
    y = torch.randn(2, F, J, 3)
    assert torch.equal(unflip_3d(unflip_3d(y)), y)


def test_mixste_loads_official_keys_strictly(nets):
    mix, _, _ = nets
    sd = OrderedDict(("module." + k, v) for k, v in mix.state_dict().items())
    again = load_mixste(sd, num_heads=2)
    x = torch.randn(3, F, J, 2)
    with torch.no_grad():
        torch.testing.assert_close(again(x), mix(x))
    sd.pop("module.head.1.bias")
    with pytest.raises(CheckpointError, match="MixSTE2"):
        load_mixste(sd, num_heads=2)
    with pytest.raises(CheckpointError, match="model_pos"):
        load_mixste({"x": torch.zeros(1)})


def test_prior_is_flip_averaged(nets):
    mix, _, _ = nets
    x = torch.randn(2, F, J, 2)
    with torch.no_grad():
        ref = (mix(x) + unflip_3d(mix(flip_2d(x)))) / 2
    torch.testing.assert_close(mixste_prior(mix, x), ref)
    torch.testing.assert_close(mixste_prior(mix, x, flip_augment=False), mix(x))


def test_single_step_cpn_config_is_one_ddim_step_at_t0(nets):
    """CPN video config (6, 1) evaluates t = 0 only: output = x̂0 = (x - √(1-ᾱ0) ε̂) / √ᾱ0, root-centred."""
    mix, den, betas = nets
    clips = torch.randn(2, F, J, 2) * 0.3
    out = lift_video_clips(mix, den, clips, betas, 6, 1)
    prior = mixste_prior(mix, clips).reshape(-1, J, 3)
    x = torch.cat([clips.reshape(-1, J, 2), prior], dim=2)
    with torch.no_grad():
        eps = den(x, torch.zeros(x.shape[0]))
    a0 = compute_alpha(betas, torch.zeros(1, dtype=torch.long))
    x0 = ((x - eps * (1 - a0).sqrt()) / a0.sqrt())[..., 2:]
    torch.testing.assert_close(out.reshape(-1, J, 3), x0 - x0[:, :1])


def _official_files(nets, folder):
    mix, den, _ = nets
    folder.mkdir(parents=True, exist_ok=True)
    sd = OrderedDict(("module." + k, v) for k, v in den.state_dict().items())
    torch.save([sd, {"state": {}, "param_groups": []}, 3, 7], folder / "diffpose_video_uvxyz_cpn.pth")
    torch.save({"epoch": 1, "model_pos": OrderedDict(("module." + k, v) for k, v in mix.state_dict().items())},
               folder / "mixste_cpn_243f.bin")
    return folder / "diffpose_video_uvxyz_cpn.pth"


def test_video_convert_and_lift_sequence(nets, tmp_path, monkeypatch):
    mix, den, betas = nets
    src = _official_files(nets, tmp_path / "official")
    from skeleton_diffusion.methods.diffpose import checkpoint as ck
    small = ck.DiffPoseSettings(hid_dim=16, num_layer=1, n_head=2, test_timesteps=1, test_num_diffusion_timesteps=6)
    monkeypatch.setitem(ck.PRESETS, "video_cpn", small)
    convert(src, tmp_path / "run", preset="video_cpn", mixste_heads=2)   # mixste_*.bin found beside src
    lifter = load_run(tmp_path / "run", device="cpu")
    seq = torch.randn(12, J, 2) * 0.3
    out = lifter.lift(seq, num_samples=2)
    assert out.shape == (1, 2, 12, J, 3)
    clips = lift_video_clips(mix, den, clip_sequence(seq, F), betas, 6, 1)
    torch.testing.assert_close(out[0, 0, :7], clips[:2].reshape(-1, J, 3)[:7])
    torch.testing.assert_close(out[0, 0, 7:], clips[2])
    torch.testing.assert_close(out[0, 1], out[0, 0])                              # eta 0: deterministic
    short = lifter.lift(seq[:3], num_samples=1)
    assert short.shape == (1, 1, 3, J, 3)
