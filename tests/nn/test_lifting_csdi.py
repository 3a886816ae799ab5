"""CSDI-style DiffHPE denoiser: shapes, temporal / joint mixing, condition layout, gradients, learning, config."""

import pytest
import torch
from torch import nn

from skeleton_diffusion.metrics.lifting import symmetric_bone_pairs
from skeleton_diffusion.nn.lifting.csdi import CSDIDenoiser
from skeleton_diffusion.nn.lifting.denoiser import GraphDenoiser
from skeleton_diffusion.nn.lifting.lifter import build_lifter
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError, InputError

SK = get_skeleton("h36m")
N, F = 16, 5


def _net(cond_splits=(5,), **kw):
    torch.manual_seed(0)
    kw = {"hidden": 16, "layers": 2, "heads": 2, "dropout": 0.0, **kw}
    net = CSDIDenoiser(N, F, cond_splits, **kw)
    nn.init.normal_(net.out2.weight, std=0.5)          # the zero-initialised output would hide all mixing
    return net.eval()


def _inputs(b=2, c=5):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, N, F * 3, generator=g), torch.tensor([3, 7][:b]), torch.randn(b, N, F * c, generator=g)


def test_shapes_and_zero_initialised_output():
    x, t, c = _inputs()
    fresh = CSDIDenoiser(N, F, (5,), hidden=16, layers=2, heads=2)
    assert torch.equal(fresh(x, t, None, c), torch.zeros_like(x))     # CSDI zero-inits the last projection
    out = _net()(x, t, None, c)
    assert out.shape == (2, N, F * 3) and torch.isfinite(out).all() and out.abs().sum() > 0
    assert _net()(x, t, None, None).shape == x.shape                   # no condition -> zeros


def test_temporal_attention_mixes_frames_and_joint_attention_mixes_joints():
    net = _net()
    x, t, c = _inputs()
    base = net(x, t, None, c).reshape(2, N, F, 3)
    xf = x.clone().reshape(2, N, F, 3)
    xf[:, 4, 2] += 1.0                                                 # frame 2 of joint 4 only
    out = net(xf.reshape(2, N, F * 3), t, None, c).reshape(2, N, F, 3)
    diff = (out - base).abs().sum(-1)                                  # [B, N, F]
    other_frames = [k for k in range(F) if k != 2]
    other_joints = [j for j in range(N) if j != 4]
    assert diff[:, 4, other_frames].min() > 1e-6                       # same joint, other frames (temporal)
    assert diff[:, other_joints, 2].min() > 1e-6                       # same frame, other joints (joint attention)
    # with one frame and one joint nothing else exists to mix: the layers are skipped, outputs stay finite
    single = CSDIDenoiser(1, 1, (5,), hidden=16, layers=1, heads=2)
    assert single(torch.randn(3, 1, 3), torch.tensor([1, 2, 3]), None, torch.randn(3, 1, 5)).shape == (3, 1, 3)


def test_condition_blocks_are_read_per_frame():
    net = _net(cond_splits=(5, 3))
    x, t, _ = _inputs()
    c = torch.randn(2, N, F * 8)
    base = net(x, t, None, c)
    c2 = c.clone()
    c2[:, 0, F * 5 + 3 * 1: F * 5 + 3 * 2] += 1.0                    # the refiner block, frame 1 of node 0
    out = net(x, t, None, c2)
    assert (out - base).abs().sum() > 0
    with pytest.raises(InputError, match="x_cond"):
        net(x, t, None, torch.randn(2, N, F * 5))
    with pytest.raises(InputError, match="divisible"):
        CSDIDenoiser(N, F, hidden=10, heads=4)


def test_timestep_changes_the_output_and_gradients_flow():
    net = _net().train()
    x, t, c = _inputs()
    assert not torch.allclose(net(x, t, None, c), net(x, t + 20, None, c))
    net(x, t, None, c).pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_csdi_trains_down_on_a_tiny_problem():
    torch.manual_seed(0)
    net = CSDIDenoiser(N, F, (5,), hidden=16, layers=2, heads=2, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    c = torch.randn(4, N, F * 5, generator=g)
    target = c.reshape(4, N, F, 5)[..., :3].roll(1, dims=2).reshape(4, N, F * 3)   # needs temporal mixing
    x, t = torch.randn(4, N, F * 3, generator=g), torch.full((4,), 5)
    first = None
    for _ in range(40):
        loss = (net(x, t, None, c) - target).pow(2).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("mode", ["standalone", "refiner"])
def test_build_lifter_selects_the_denoiser(mode):
    kw = dict(node_edges=SK.node_limbs, num_joints=17, frames=F, limbs=SK.limbs, mode=mode,
              sym_pairs=symmetric_bone_pairs(SK.joint_names, SK.limbs), prior={"hidden": 32, "blocks": 1},
              denoiser={"hidden": 16, "layers": 1, "heads": 2}, test_steps=2, reg_bone_time=1.0, reg_symmetry=1.0,
              diffusion={"timesteps": 10, "beta_end": 0.2, "diffusion_objective": "pred_x0"})
    torch.manual_seed(0)
    m = build_lifter("diffhpe", denoiser_type="csdi", **kw)
    assert isinstance(m.diffusion.model, CSDIDenoiser)
    assert m.diffusion.model.cond_splits == ((5, 3) if mode == "refiner" else (5,))
    p2, p3, mask = torch.randn(4, F, 17, 2) * 0.3, torch.randn(4, F, 17, 3) * 0.3, torch.ones(4, F, 17)
    loss, _ = m.training_loss(p2, mask, p3)
    loss.backward()
    assert torch.isfinite(loss)
    m.eval()
    out = m.predict(p2, mask, 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 2, F, 17, 3) and torch.isfinite(out).all()
    assert isinstance(build_lifter("diffhpe", denoiser_type="graph", **kw).diffusion.model, GraphDenoiser)
    with pytest.raises(ConfigError, match="denoiser_type"):
        build_lifter("diffhpe", denoiser_type="unet", **kw)
