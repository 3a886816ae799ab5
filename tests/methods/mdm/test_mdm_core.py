"""MDM core: network, motion-space diffusion (iso / noniso), respacing, DDIM, CFG, inpainting, geometric losses."""

from __future__ import annotations

import pytest
import torch

from skeleton_diffusion.diffusion.motion_space import (build_motion_diffusion, foot_contact_loss, foot_indices,
                                                       masked_mse, mdm_loss, motion_to_x, position_loss,
                                                       velocity_loss, x_to_motion)
from skeleton_diffusion.diffusion.respace import guided_x0, respaced_betas, sample_motion, space_timesteps
from skeleton_diffusion.methods.mdm.predictor import edit_mask
from skeleton_diffusion.nn.motion_transformer import MDM, condition_keep
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError, InputError

SK = get_skeleton("amass")
N, T, OBS = SK.num_nodes, 6, 4


def _diffusion(noise: str = "isotropic", mode: str = "past", steps: int = 20, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    net = MDM(N, T, latent_dim=32, ff_size=64, num_layers=2, num_heads=2, cond_mode=mode, obs_length=OBS,
              num_actions=5, text_dim=8, **kw).eval()
    return build_motion_diffusion({"noise": noise, "diffusion_timesteps": steps}, net, SK, representation="hmp")


def _past(b: int = 3) -> torch.Tensor:
    return torch.randn(b, OBS, N, 3, generator=torch.Generator().manual_seed(1))


def test_layout_roundtrip_and_network_shapes():
    m = torch.randn(2, T, N, 3)
    x = motion_to_x(m)
    assert x.shape == (2, N, T * 3)
    assert torch.equal(x_to_motion(x), m)
    assert torch.equal(x[1, 4, 3:6], m[1, 1, 4])  # joint 4, frame 1
    for mode, cond in (("past", _past(2)), ("action", torch.tensor([0, 4])), ("text", torch.randn(2, 8)),
                       ("none", None)):
        d = _diffusion(mode=mode)
        out = d.model(x, torch.tensor([3, 7]), None, cond)
        assert out.shape == x.shape
        if cond is not None:  # the unconditional branch ignores the condition
            u1 = d.model(x, torch.tensor([3, 7]), None, cond, force_uncond=True)
            u2 = d.model(x, torch.tensor([3, 7]), None, cond.flip(0), force_uncond=True)
            assert torch.allclose(u1, u2, atol=1e-5) and not torch.allclose(u1, out, atol=1e-4)


def test_network_errors_are_clear():
    with pytest.raises(ConfigError, match="obs_length"):
        MDM(N, T, cond_mode="past")
    d = _diffusion()
    with pytest.raises(InputError, match="past condition"):
        d.model(torch.randn(1, N, T * 3), torch.tensor([0]), None, torch.randn(1, OBS + 1, N, 3))


def test_frame_mask_makes_padding_irrelevant():
    d = _diffusion(mode="action")
    x = torch.randn(1, N, T * 3)
    mask = torch.tensor([[True, True, True, True, False, False]])
    x2 = x_to_motion(x).clone()
    x2[:, 4:] += 5.0  # change only padded frames
    a = x_to_motion(d.model(x, torch.tensor([5]), None, torch.tensor([1]), frame_mask=mask))
    b = x_to_motion(d.model(motion_to_x(x2), torch.tensor([5]), None, torch.tensor([1]), frame_mask=mask))
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5)


def test_respacing_rule():
    kept = space_timesteps(1000, 50)
    assert len(kept) == 50 and kept[0] == 0 and kept[-1] == 999 and kept == sorted(kept)
    assert space_timesteps(1000, None) == list(range(1000)) and space_timesteps(1000, 1) == [999]
    with pytest.raises(ConfigError):
        space_timesteps(10, 11)
    ac = torch.cumprod(1 - torch.linspace(1e-4, 0.2, 100), 0)
    beta = respaced_betas(ac, kept := space_timesteps(100, 10))
    assert torch.allclose(torch.cumprod(1 - beta, 0), ac[kept], rtol=1e-5)


@pytest.mark.parametrize("noise", ["isotropic", "nonisotropic"])
def test_full_chain_equals_ancestral_sampler(noise):
    """eta=1 over every step is the core's ancestral DDPM sampler (same draws, same result)."""
    d = _diffusion(noise)
    cond = _past()
    a = sample_motion(d, 3, x_cond=cond, generator=torch.Generator().manual_seed(0))
    b = d.sample(3, cond, generator=torch.Generator().manual_seed(0), sampler="ancestral", clip_denoised=False)
    assert torch.allclose(a, b, atol=1e-4)


def test_ddim_deterministic_and_respaced_sampling():
    d = _diffusion("nonisotropic")
    cond = _past()
    noise = torch.randn(3, N, T * 3)
    a = sample_motion(d, 3, x_cond=cond, steps=5, eta=0.0, start_noise=noise, generator=torch.Generator().manual_seed(0))
    b = sample_motion(d, 3, x_cond=cond, steps=5, eta=0.0, start_noise=noise, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(a, b)  # DDIM draws no step noise
    c = sample_motion(d, 3, x_cond=cond, steps=5, eta=1.0, start_noise=noise, generator=torch.Generator().manual_seed(9))
    assert not torch.allclose(a, c) and torch.isfinite(c).all()


def test_classifier_free_guidance():
    d = _diffusion(mode="action")
    x, t, y = torch.randn(4, N, T * 3), torch.tensor([1, 5, 9, 19]), torch.tensor([0, 1, 2, 3])
    cond = d.model(x, t, None, y)
    uncond = d.model(x, t, None, y, force_uncond=True)
    one = guided_x0(d, x, t, y, 1.0, skip_uncond_at_one=False)
    assert torch.allclose(one, cond, atol=1e-5)
    assert torch.allclose(guided_x0(d, x, t, y, 0.0), uncond, atol=1e-5)
    assert torch.allclose(guided_x0(d, x, t, y, 2.5), uncond + 2.5 * (cond - uncond), atol=1e-5)
    assert not torch.allclose(guided_x0(d, x, t, y, 2.5), cond, atol=1e-3)


def test_cond_dropout_in_training():
    d = _diffusion(mode="action", cond_mask_prob=0.5)
    d.model.train()
    torch.manual_seed(0)
    keep = condition_keep(d.model, 2000, torch.device("cpu"), False)
    assert 0.4 < keep.mean().item() < 0.6
    d.model.eval()
    assert condition_keep(d.model, 10, torch.device("cpu"), False).min() == 1


@pytest.mark.parametrize("mode,keep", [("inbetween", [0, 1, 4, 5]), ("prefix", [2]), ("joints", [0, 3, 7])])
def test_inpainting_keeps_the_given_part_exactly(mode, keep):
    d = _diffusion("nonisotropic")
    known_m = torch.randn(2, T, N, 3)
    mask_tj = edit_mask(mode, T, N, keep)
    known = motion_to_x(known_m)
    km = motion_to_x(mask_tj[None, :, :, None].expand(2, -1, -1, 3))
    out = sample_motion(d, 2, x_cond=_past(1), steps=4, known=known, known_mask=km,
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[km], known[km])
    assert not torch.allclose(out[~km], known[~km], atol=1e-2)
    assert mask_tj.sum() > 0 and (~mask_tj).sum() > 0


def test_edit_mask_errors():
    with pytest.raises(InputError, match="prefix"):
        edit_mask("prefix", T, N, [T])
    with pytest.raises(InputError, match="edit mode"):
        edit_mask("middle", T, N, [1])


def test_nonisotropic_noise_is_correlated_across_joints_only():
    """x_t noise covariance across joints is U diag(Λ̄_t) Uᵀ (skeleton-shaped) for noniso, diagonal for iso;
    frames / xyz features stay independent."""
    iso, non = _diffusion("isotropic"), _diffusion("nonisotropic")
    n_draws, t_last = 4000, 19
    x0 = torch.zeros(n_draws, N, T * 3)
    t = torch.full((n_draws,), t_last)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    a, b = SK.node_limbs[-1]  # two adjacent joints
    cov = non.U @ torch.diag(non.Lambda_bar_t[t_last]) @ non.U.T
    expected = (cov[a, b] / (cov[a, a] * cov[b, b]).sqrt()).item()
    assert expected > 0.2
    for d, corr in ((iso, 0.0), (non, expected)):
        xt = d.q_sample(x0, t, eps)
        c = torch.corrcoef(torch.stack([xt[:, a, 0], xt[:, b, 0]]))[0, 1].item()
        frames = torch.corrcoef(torch.stack([xt[:, a, 0], xt[:, a, 3]]))[0, 1].item()  # same joint, next frame
        assert abs(c - corr) < 0.06, (c, corr)
        assert abs(frames) < 0.06


def test_geometric_losses_hand_computed():
    gt = torch.zeros(1, 3, 2, 3)
    pred = gt.clone()
    pred[0, 1, 0, 0] = 0.3  # joint 0 moves out and back at frame 1
    assert torch.allclose(position_loss(pred, gt), torch.tensor([0.09 / 18]))
    # velocities of pred: +0.3 then -0.3 on one coordinate; gt: zero -> (0.09 + 0.09) / (2*2*3)
    assert torch.allclose(velocity_loss(pred, gt), torch.tensor([0.18 / 12]))
    mask = torch.tensor([[True, False, False]])
    assert torch.allclose(masked_mse(pred, gt, mask), torch.tensor([0.0]))


def test_foot_contact_loss():
    feet = [0]
    static = torch.zeros(1, 4, 2, 3)
    moving = static.clone()
    moving[0, :, 0, 0] = torch.tensor([0.0, 0.1, 0.2, 0.3])  # foot slides 0.1 m/frame
    # feet that do not move -> zero (whatever GT does)
    assert foot_contact_loss(static, static, feet).item() == 0.0
    assert foot_contact_loss(static, moving, feet).item() == 0.0
    # GT foot moving (no contact): the predicted foot may move freely
    assert foot_contact_loss(moving, moving, feet).item() == 0.0
    # GT foot planted, prediction slides -> penalised: (3 frames * 0.01) / (3 * 1 foot * 3 xyz)
    assert torch.allclose(foot_contact_loss(moving, static, feet), torch.tensor([0.03 / 9]))
    assert foot_indices(SK.node_names) and all("Foot" in SK.node_names[i] or "Heel" in SK.node_names[i]
                                                for i in foot_indices(SK.node_names))


def test_mdm_loss_terms():
    d = _diffusion("nonisotropic")
    x0 = motion_to_x(torch.randn(2, T, N, 3) * 0.1)
    t, noise = torch.tensor([3, 15]), torch.randn(2, N, T * 3)
    terms = mdm_loss(d, x0, x_cond=_past(2), t=t, noise=noise, lambda_vel=2.0, lambda_fc=1.0,
                     feet=foot_indices(SK.node_names), add_root=True, pose_box_size=1.5)
    out = d.model(d.q_sample(x0, t, noise), t, None, _past(2))
    assert torch.allclose(terms["simple"], ((out - x0) ** 2).mean(), atol=1e-6)
    assert "pos" not in terms and "vel" in terms and "fc" in terms
    assert torch.allclose(terms["loss"], terms["simple"] + 2.0 * terms["vel"] + terms["fc"])
    terms["loss"].backward()
    assert d.model.input_process.weight.grad is not None
    with pytest.raises(ConfigError, match="pred_x0"):
        build_motion_diffusion({"diffusion_objective": "pred_noise"}, d.model, SK, representation="hmp")


def test_compare_table_side_by_side(tmp_path):
    from skeleton_diffusion.apps.compare import compare_table
    from skeleton_diffusion.tasks.results import write_results

    def run(ade, seed):
        return {"metrics": {"ADE": ade, "FDE": 2 * ade}, "num_windows": 10, "num_samples": 5,
                "stats_mode": "deterministic", "seed": seed}

    for name, ades in (("a", (1.0, 3.0)), ("b", (0.5, 0.5))):
        write_results(tmp_path / name, [run(v, s) for s, v in enumerate(ades)], dataset="synthetic", seeds=[0, 1],
                      extra={"method": f"M{name}"})
    table = compare_table([(None, tmp_path / "a"), ("Other", tmp_path / "b" / "results.json")])
    rows = [r for r in table.splitlines() if r.startswith("| M") or r.startswith("| Other")]
    assert rows[0].startswith("| Ma | 2.0000 ± ") and rows[1].startswith("| Other | 0.5000 ± 0.0000 | 1.0000")
    write_results(tmp_path / "c", [run(1.0, 0)], dataset="synthetic", seeds=[0])
    with pytest.raises(InputError, match=r"not comparable.*same seeds"):
        compare_table([(None, tmp_path / "a"), (None, tmp_path / "c")])
