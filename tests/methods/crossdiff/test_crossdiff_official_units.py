"""Unit checks of the official CrossDiff pieces that the fixture does not cover: sampling loops, batched
classifier-free guidance, the 196-frame rule, input validation, the schedule and the evaluation switches."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from skeleton_diffusion.methods.crossdiff.diffusion import (
    OfficialDiffusion,
    official_betas,
)
from skeleton_diffusion.methods.crossdiff.loss import masked_l2
from skeleton_diffusion.methods.crossdiff.network import OfficialCrossDiffNet
from skeleton_diffusion.methods.crossdiff.protocol import (
    CrossDiffEvalProtocol,
    confidence_interval,
    crossdiff_diversity,
    diversity_times,
    eval_feature_index,
)
from skeleton_diffusion.methods.crossdiff.sampling import (
    guided_x0,
    official_guidance_param,
    sample_official,
)
from skeleton_diffusion.utils.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def tiny() -> SimpleNamespace:
    torch.manual_seed(0)
    net = OfficialCrossDiffNet(latent_dim=16, layers=1, layers2=1, num_frames=12, ff_size=32, root_ff_size=16)
    net.eval()
    diff = OfficialDiffusion("cosine", steps=6)
    return SimpleNamespace(net=net, diff3d=diff, diff2d=diff, args={"cond_mask_prob": 0.1})


def test_cosine_schedule_matches_its_definition() -> None:
    betas = official_betas("cosine", 1000)
    ac = np.cumprod(1 - betas)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    expected = np.array([f((i + 1) / 1000) / f(0) for i in range(1000)])
    assert betas.shape == (1000,) and betas.max() <= 0.999
    assert np.allclose(ac[:990], expected[:990], rtol=1e-9)  # the last steps are clipped at beta 0.999


def test_masked_l2_counts_frames_and_entries() -> None:
    a, b = torch.ones(2, 3, 1, 4), torch.zeros(2, 3, 1, 4)
    frame = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)[:, None, None]
    assert torch.allclose(masked_l2(a, b, frame), torch.ones(2))
    a[:, :, :, 2:] = 5.0  # masked-out frames do not count
    assert torch.allclose(masked_l2(a, b, frame), torch.ones(2))
    full = torch.zeros(2, 3, 1, 4, dtype=torch.bool)
    full[0, 0, 0, 0] = True
    assert torch.allclose(masked_l2(a, b, full), torch.tensor([1.0, 0.0]))


def test_frame_rule_and_input_checks(tiny: SimpleNamespace) -> None:
    x, t, text = torch.randn(2, 263, 1, 12), torch.tensor([0, 3]), torch.randn(2, 512)
    assert tiny.net(x, t, text)["3d"].shape == (2, 263, 1, 12)
    with pytest.raises(InputError, match="exactly 12 frames"):
        tiny.net(x[..., :8], t, text)
    with pytest.raises(InputError, match="channels"):
        tiny.net(torch.randn(2, 100, 1, 12), t, text)
    with pytest.raises(InputError, match="domain_in"):
        tiny.net(x, t, text, domain_in="2d")
    loose = OfficialCrossDiffNet(latent_dim=16, layers=1, layers2=1, num_frames=12, ff_size=32, root_ff_size=16,
                                 strict_frames=False)
    loose.load_state_dict(tiny.net.state_dict())
    loose.eval()
    out = loose(torch.randn(2, 134, 1, 8), t, text, domains_out=("3d", "2d"))
    assert out["3d"].shape == (2, 263, 1, 8) and out["2d"].shape == (2, 134, 1, 8)


def test_batched_guidance_equals_two_passes(tiny: SimpleNamespace) -> None:
    x, t, text = torch.randn(3, 263, 1, 12), torch.tensor([5, 2, 0]), torch.randn(3, 512)
    with torch.no_grad():
        cond = tiny.net(x, t, text)["3d"]
        uncond = tiny.net(x, t, text, force_uncond=True)["3d"]
        guided = guided_x0(tiny.net, x, t, text, "3d", "3d", 2.5)
        plain = guided_x0(tiny.net, x, t, text, "3d", "3d", 1.0)
    assert torch.allclose(guided, uncond + 2.5 * (cond - uncond), atol=1e-5)
    assert torch.equal(plain, cond)


def test_per_row_condition_drop(tiny: SimpleNamespace) -> None:
    x, t, text = torch.randn(2, 134, 1, 12), torch.tensor([1, 4]), torch.randn(2, 512)
    with torch.no_grad():
        mixed = tiny.net(x, t, text, domains_out=("2d",), force_uncond=torch.tensor([False, True]))["2d"]
        cond = tiny.net(x, t, text, domains_out=("2d",))["2d"]
        uncond = tiny.net(x, t, text, domains_out=("2d",), force_uncond=True)["2d"]
    assert torch.allclose(mixed[0], cond[0], atol=1e-6) and torch.allclose(mixed[1], uncond[1], atol=1e-6)


@pytest.mark.parametrize("start,change_idx", [("3d", 0), ("2d", 3), ("2d", 0)])
def test_sampling_loops_are_seeded_and_shaped(tiny: SimpleNamespace, start: str, change_idx: int) -> None:
    text = torch.randn(2, 512)
    runs = [sample_official(tiny, text, start=start, change_idx=change_idx, guidance_param=2.5 if start == "3d"
                            else 1.0, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0].shape == (2, 263, 1, 12) and torch.isfinite(runs[0]).all()
    assert torch.equal(runs[0], runs[1])


def test_three_d_loop_is_the_ddpm_posterior_chain(tiny: SimpleNamespace) -> None:
    """The 3D loop = initial noise, then x0-prediction + posterior step per t, noise drawn in that order."""
    text = torch.randn(1, 512)
    out = sample_official(tiny, text, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 263, 1, 12, generator=g)
    with torch.no_grad():
        for i in reversed(range(tiny.diff3d.num_timesteps)):
            t = torch.full((1,), i, dtype=torch.long)
            x0 = tiny.net(x, t, text)["3d"]
            noise = torch.randn(x.shape, generator=g)
            mean = tiny.diff3d.q_posterior_mean(x0, x, t)
            var = tiny.diff3d.tables["posterior_log_variance_clipped"][i]
            x = mean + (0.0 if i == 0 else math.exp(0.5 * var)) * noise
    assert torch.allclose(out, x, atol=1e-5)


def test_official_guidance_param() -> None:
    assert official_guidance_param({"cond_mask_prob": 0.1}) == 2.5
    assert official_guidance_param({"cond_mask_prob": 0}) == 1.0


def test_eval_part_columns() -> None:
    full, upper, lower = (eval_feature_index(p) for p in ("all", "upper", "lower"))
    assert full == list(range(259))
    assert (len(upper), len(lower)) == (156, 103)  # sizes stated in the official code
    assert not set(upper) & set(lower) and set(upper) | set(lower) | set(range(259, 263)) == set(range(263))
    assert {0, 1, 2, 3} <= set(lower) and not {259, 260, 261, 262} & (set(upper) | set(lower))


def test_protocol_switches() -> None:
    p = CrossDiffEvalProtocol()
    assert (p.fid_reference, p.test_limit, p.replications, p.mm_generations, p.mm_times) == \
        ("same_batches", 20, 20, 30, 10)
    assert diversity_times(301) == 300 and diversity_times(300) == 10
    with pytest.raises(ConfigError, match="eval_upper_lower"):
        CrossDiffEvalProtocol(eval_upper_lower=1)
    act = np.random.RandomState(0).randn(40, 8)
    rs1, rs2 = np.random.RandomState(5), np.random.RandomState(5)
    i, j = rs2.choice(40, 10, replace=False), rs2.choice(40, 10, replace=False)
    assert crossdiff_diversity(act, rs1) == pytest.approx(np.linalg.norm(act[i] - act[j], axis=1).mean())
    mean, ci = confidence_interval(np.array([1.0, 3.0]))
    assert mean == 2.0 and ci == pytest.approx(1.96 * 1.0 / math.sqrt(2))
