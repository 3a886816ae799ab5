"""Lifting models: noise options, DiffPose schedule and sampling start, mask handling, shapes, learning."""

import pytest
import torch
from torch import nn

from skeleton_diffusion.metrics.lifting import symmetric_bone_pairs
from skeleton_diffusion.nn.lifting.lifter import DiffusionLifter, build_lifter
from skeleton_diffusion.nn.lifting.features import condition_features, from_nodes, to_nodes
from skeleton_diffusion.nn.lifting.lifter import linear_betas, noise_covariance
from skeleton_diffusion.skeletons.lookup import get_skeleton

SK = get_skeleton("h36m")


def _build(method, frames=1, **kw):
    kw.setdefault("prior", {"hidden": 32, "blocks": 1})
    kw.setdefault("denoiser", {"hidden": 16, "layers": 1, "heads": 2})
    return build_lifter(method, node_edges=SK.node_limbs, num_joints=17, frames=frames, limbs=SK.limbs,
                        sym_pairs=symmetric_bone_pairs(SK.joint_names, SK.limbs), **kw)


def test_node_layout_roundtrip():
    x = torch.randn(2, 4, 17, 3)
    x[:, :, 0] = 0
    nodes = to_nodes(x)
    assert nodes.shape == (2, 16, 12)
    assert torch.equal(nodes[0, 2, 3:6], x[0, 1, 3])      # node 2 = joint 3, frame 1
    assert torch.equal(from_nodes(nodes, 4), x)


def test_condition_features_carry_the_mask():
    p2 = torch.randn(1, 2, 17, 2)
    mask = torch.ones(1, 2, 17)
    mask[0, 1, 5] = 0
    f = condition_features(p2, mask).reshape(1, 16, 2, 5)
    assert f[0, 4, 1, 4] == 0 and f[0, 4, 0, 4] == 1            # mask channel of joint 5
    assert torch.equal(f[0, 4, 1, :2], torch.zeros(2))            # its 2D is not read
    other = p2.clone()
    other[0, 1, 5] = 100.0                                        # a missing joint's value is ignored
    assert torch.equal(condition_features(other, mask), condition_features(p2, mask))


def test_noise_options():
    n = 16
    s, lam, u, kind = noise_covariance("isotropic", SK.node_limbs, n)
    assert kind == "isotropic" and torch.equal(s, torch.eye(n))
    std = torch.linspace(1, 4, n)
    s, lam, u, kind = noise_covariance("diagonal", SK.node_limbs, n, std)
    assert kind == "anisotropic" and torch.allclose(lam.mean(), torch.tensor(1.0))
    assert torch.allclose(lam / lam[0], std ** 2 / std[0] ** 2) and torch.equal(s, torch.diag(lam))
    s, lam, u, kind = noise_covariance("skeleton", SK.node_limbs, n)
    assert kind == "anisotropic" and torch.allclose(u @ torch.diag(lam) @ u.T, s, atol=1e-5)
    assert torch.isclose(lam.mean(), torch.tensor(1.0), atol=1e-5)
    i, j = SK.node_limbs[3]
    assert s[i, j] > 0.05 and abs(float(s[0, 15])) < s[i, j]      # correlated along the skeleton


def test_diffpose_official_schedule_and_noise_switch():
    betas = linear_betas(51, 1e-4, 1e-3)
    assert len(betas) == 51 and abs(betas[0] - 1e-4) < 1e-12 and abs(betas[-1] - 1e-3) < 1e-12
    for noise in ("isotropic", "diagonal", "skeleton"):
        m = _build("diffpose", noise=noise, joint_noise_std=torch.rand(17).add(0.5).tolist())
        assert m.diffusion.num_timesteps == 51 and m.start_t == 24 and m.test_steps == 2
        assert torch.allclose(m.diffusion.betas.double(), torch.tensor(betas, dtype=torch.float64), atol=1e-9)
        assert m.diffusion.objective == "pred_noise"


class _Oracle(nn.Module):
    """Denoiser stub that always answers a fixed x0 (pred_x0)."""

    def __init__(self, target):
        super().__init__()
        self.channels, self.out_dim, self.cond_dim = target.shape[1], target.shape[2], 5
        self.register_buffer("target", target)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        return self.target.expand(x.shape[0], -1, -1) + 0 * self.dummy


@pytest.mark.parametrize("noise", ["isotropic", "skeleton"])
def test_ddim_from_start_reaches_the_oracle_x0(noise):
    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion

    target = torch.randn(1, 16, 3)
    s, lam, u, kind = noise_covariance(noise, SK.node_limbs, 16)
    diff = NonisotropicGaussianDiffusion(s, lam, u, _Oracle(target), diffusion_timesteps=51,
                                         beta_schedule=linear_betas(51, 1e-4, 1e-3), diffusion_covariance_type=kind,
                                         diffusion_objective="pred_x0", latent_size=3, clip_denoised=False)
    lifter = DiffusionLifter("diffhpe", 1, None, diff, start_t=24, test_steps=2)
    x = torch.randn(3, 16, 3)
    out = lifter._ddim_from(x, 24, 2, torch.zeros(3, 16, 5))
    assert torch.allclose(out, target.expand(3, -1, -1), atol=1e-5)


class _NoiseOracle(_Oracle):
    """pred_noise stub: the exact noise that maps the target to x_t (needs the diffusion's buffers)."""

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        return self.diffusion[0].predict_noise_from_start(x, t, self.target.expand(x.shape[0], -1, -1))


@pytest.mark.parametrize("noise", ["isotropic", "diagonal", "skeleton"])
def test_ddim_from_start_with_pred_noise_oracle(noise):
    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion

    target = torch.randn(1, 16, 3) * 0.3
    s, lam, u, kind = noise_covariance(noise, SK.node_limbs, 16, torch.linspace(1, 3, 16))
    oracle = _NoiseOracle(target)
    diff = NonisotropicGaussianDiffusion(s, lam, u, oracle, diffusion_timesteps=51,
                                         beta_schedule=linear_betas(51, 1e-4, 1e-3), diffusion_covariance_type=kind,
                                         diffusion_objective="pred_noise", latent_size=3, clip_denoised=False)
    oracle.diffusion = [diff]  # a list: not registered as a submodule
    lifter = DiffusionLifter("diffhpe", 1, None, diff, test_steps=2)
    x = torch.randn(3, 16, 3)
    out = lifter._ddim_from(x, 24, 2, torch.zeros(3, 16, 5))
    assert torch.allclose(out, target.expand(3, -1, -1), atol=1e-4)


@pytest.mark.parametrize("method,frames,kw", [
    ("supervised", 1, {}),
    ("diffpose", 1, {"noise": "skeleton"}),
    ("diffpose", 3, {"noise": "diagonal"}),                       # video-based DiffPose
    ("diffhpe", 5, {"mode": "standalone", "diffusion": {"timesteps": 10, "beta_end": 0.2,
                                                         "diffusion_objective": "pred_x0"}, "test_steps": 3,
                    "reg_bone_time": 1.0, "reg_symmetry": 1.0}),
    ("diffhpe", 5, {"mode": "refiner", "noise": "skeleton",
                    "diffusion": {"timesteps": 10, "beta_end": 0.2, "diffusion_objective": "pred_x0"}}),
])
def test_predict_shapes_and_training_loss(method, frames, kw):
    torch.manual_seed(0)
    m = _build(method, frames, **kw)
    p2, p3 = torch.randn(4, frames, 17, 2) * 0.3, torch.randn(4, frames, 17, 3) * 0.3
    mask = torch.ones(4, frames, 17)
    loss, logs = m.training_loss(p2, mask, p3)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in m.parameters() if p.requires_grad)
    m.eval()
    out = m.predict(p2, mask, 3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, frames, 17, 3) and torch.equal(out[..., 0, :], torch.zeros_like(out[..., 0, :]))
    if method == "supervised":
        assert torch.equal(out[:, 0], out[:, 1])
    else:
        assert not torch.allclose(out[:, 0], out[:, 1])           # K different hypotheses


def test_regularisers_need_x0_and_method_checks():
    with pytest.raises(ValueError, match="pred_x0"):
        m = _build("diffpose", reg_symmetry=1.0)
        m.training_loss(torch.zeros(2, 1, 17, 2), torch.ones(2, 1, 17), torch.zeros(2, 1, 17, 3))
    with pytest.raises(ValueError, match="method must be one of"):
        _build("diffwhat")
    with pytest.raises(ValueError, match="noise must be one of"):
        _build("diffpose", noise="pink")


def test_supervised_lifter_learns_a_linear_lifting():
    torch.manual_seed(0)
    m = _build("supervised", prior={"hidden": 64, "blocks": 1, "dropout": 0.0})
    w = torch.randn(2, 3)
    p2 = torch.randn(128, 1, 17, 2) * 0.3
    p3 = p2 @ w
    p3 = p3 - p3[:, :, :1]
    mask = torch.ones(128, 1, 17)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    first = None
    for _ in range(80):
        loss, _ = m.training_loss(p2, mask, p3)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first


# ------------------------------------------------------------------ full predict, numerically (issue 30 item 4)
class _CondOracle(nn.Module):
    """Denoiser stub whose clean answer x0 is read off the condition: ``pick(x_cond)`` per row. With ``pred_noise``
    it answers the noise that maps that x0 to x_t (needs the diffusion's buffers)."""

    def __init__(self, pick, objective: str):
        super().__init__()
        self.pick, self.objective, self.diffusion = pick, objective, []
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, x_self_cond=None, x_cond=None):
        x0 = self.pick(x_cond) + 0 * self.dummy
        return x0 if self.objective == "pred_x0" else self.diffusion[0].predict_noise_from_start(x, t, x0)


def _inputs(b=3, frames=1):
    torch.manual_seed(1)
    p2 = torch.randn(b, frames, 17, 2) * 0.3
    return p2, torch.ones(b, frames, 17)


def test_supervised_predict_repeats_its_single_answer_exactly():
    m = _build("supervised").eval()
    p2, mask = _inputs()
    out = m.predict(p2, mask, 4)
    with torch.no_grad():
        one = from_nodes(m.prior(condition_features(p2, mask)), 1)          # the one answer, [B, F, J, 3]
    assert one[..., 1:, :].abs().min() > 0                                   # a real answer, not zeros
    for k in range(4):
        assert torch.equal(out[:, k], one), k
    for i in range(3):                                                       # item i's answer, not another's
        torch.testing.assert_close(m.predict(p2[i:i + 1], mask[i:i + 1], 1)[0, 0], one[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method,frames,kw,pick", [
    # DiffPose starts from the prior's answer noised to start_t: an oracle that answers x0 = prior(cond)
    ("diffpose", 1, {"noise": "skeleton"}, "prior"),
    ("diffpose", 3, {"noise": "diagonal"}, "prior"),
    # DiffHPE standalone: from noise; the oracle answers the first 3F condition channels of each node
    ("diffhpe", 5, {"mode": "standalone", "diffusion": {"timesteps": 10, "beta_end": 0.2,
                                                         "diffusion_objective": "pred_x0"}, "test_steps": 3}, "cond"),
    # DiffHPE refiner: its condition ends with the prior's answer; the oracle answers that
    ("diffhpe", 5, {"mode": "refiner", "noise": "skeleton",
                    "diffusion": {"timesteps": 10, "beta_end": 0.2, "diffusion_objective": "pred_x0"}}, "tail"),
])
def test_diffusion_lifter_predict_returns_the_oracle_answer_per_item(method, frames, kw, pick):
    """The whole ``predict`` (conditioning, K-fold repeat, start, DDIM, node -> joint layout) with a denoiser that
    knows the clean answer of each row: every hypothesis of item i is item i's answer (root at 0)."""
    torch.manual_seed(0)
    m = _build(method, frames, joint_noise_std=torch.linspace(0.5, 2, 17).tolist(), **kw).eval()
    d = m.diffusion
    oracle_pick = {"prior": lambda c: m.prior(c), "cond": lambda c: c[..., :3 * frames], "tail": lambda c: c[..., -3 * frames:]}
    oracle = _CondOracle(oracle_pick[pick], d.objective)
    d.model, oracle.diffusion = oracle, [d]
    p2, mask = _inputs(3, frames)
    out = m.predict(p2, mask, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond = condition_features(p2, mask)
        want = from_nodes(oracle_pick[pick](m._denoiser_cond(cond, m._prior(cond))), frames)
    assert want[..., 1:, :].abs().amax(dim=(-1, -2)).min() > 0.05             # items have distinct, non-zero answers
    assert not torch.allclose(want[0], want[1], atol=0.05)
    # pred_noise: x0 is recovered through (x_t - sqrt(1 - ab) eps) / sqrt(ab) in float32; measured 8.3e-7, margin 12
    tol = 1e-5
    for k in range(4):
        torch.testing.assert_close(out[:, k], want, rtol=0, atol=tol, msg=lambda s: f"hypothesis {k}: {s}")


@pytest.mark.parametrize("method,kw", [
    ("diffpose", {"noise": "skeleton"}),
    ("diffhpe", {"mode": "standalone", "diffusion": {"timesteps": 10, "beta_end": 0.2,
                                                      "diffusion_objective": "pred_x0"}, "test_steps": 3}),
])
def test_diffusion_lifter_hypotheses_differ_and_are_reproducible(method, kw):
    """Untrained denoiser: K hypotheses differ (the noise is drawn per hypothesis) and the same generator gives the
    same K; DiffPose's hypotheses stay near the prior's answer (start_t = 24 of 51 with betas 1e-4..1e-3 keeps
    sqrt(1 - alpha_bar) = 0.089 of noise; measured max deviation 0.30 m with a random denoiser, for answers up
    to 1.9 m; bound 0.30 x 2 m)."""
    torch.manual_seed(0)
    m = _build(method, **kw).eval()
    p2, mask = _inputs()
    out = m.predict(p2, mask, 4, generator=torch.Generator().manual_seed(0))
    again = m.predict(p2, mask, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    for a in range(4):
        for b in range(a + 1, 4):
            assert (out[:, a] - out[:, b])[..., 1:, :].abs().amax() > 1e-3, (a, b)
    if method == "diffpose":
        with torch.no_grad():
            prior = from_nodes(m.prior(condition_features(p2, mask)), 1)
        dev = (out - prior[:, None]).abs().amax()
        assert 1e-3 < float(dev) < 0.6
