"""validate_observation: accepted shapes and one clear InputError per kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skeleton_diffusion.tasks.hmp.input_checks import validate_observation
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import InputError


def _standing(skeleton, t: int, seed: int = 0) -> np.ndarray:
    """A plausible body-sized motion [T, J, 3] in metres: a 1.7 m-tall column of joints with small jitter."""
    rng = np.random.default_rng(seed)
    j = skeleton.num_joints
    base = np.stack([rng.uniform(-0.25, 0.25, j), rng.uniform(-0.1, 0.1, j), np.linspace(-0.9, 0.8, j)], -1)
    base[0] = [0.3, 0.2, 0.0]  # root (world position, not at the origin)
    return base[None] + rng.normal(0, 0.01, (t, j, 3))


@pytest.fixture(scope="module")
def amass():
    return get_skeleton("amass")


def test_accepts_single_and_batched(amass):
    x = _standing(amass, 30)
    out = validate_observation(x, amass, 30)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (1, 30, 22, 3)
    np.testing.assert_allclose(out[0].numpy(), x, rtol=1e-6, atol=1e-6)
    xb = np.stack([_standing(amass, 30, s) for s in range(3)])
    out_b = validate_observation(torch.from_numpy(xb), amass, 30)
    assert out_b.shape == (3, 30, 22, 3)
    np.testing.assert_allclose(out_b.numpy(), xb, atol=1e-6)


def test_real_example_observation_passes(shared_dir, amass):
    ex = np.load(shared_dir / "reference" / "figures" / "example_obs_amass.npy")  # [1, 30, 52, 3] metres
    assert validate_observation(ex[..., :22, :], amass, 30).shape == (1, 30, 22, 3)
    assert validate_observation(ex, get_skeleton("amass-mano"), 30).shape == (1, 30, 52, 3)


def test_wrong_ndim(amass):
    with pytest.raises(InputError, match=r"3 dims .*4 dims.*got 2 dims"):
        validate_observation(np.zeros((30, 66)), amass, 30)
    with pytest.raises(InputError, match="got 5 dims"):
        validate_observation(np.zeros((1, 1, 30, 22, 3)), amass, 30)


def test_wrong_last_dim(amass):
    with pytest.raises(InputError, match="last dimension must be 3"):
        validate_observation(np.zeros((30, 22, 4)), amass, 30)


def test_wrong_joint_count_names_skeleton_and_doc(amass):
    with pytest.raises(InputError) as ei:
        validate_observation(_standing(get_skeleton("h36m"), 30), amass, 30)
    msg = str(ei.value)
    assert "17 joints" in msg and "'amass'" in msg and "22" in msg and "joint_orders.md" in msg
    # root dropped by mistake -> hint
    with pytest.raises(InputError, match="includes_root=False"):
        validate_observation(_standing(amass, 30)[:, 1:], amass, 30)


def test_includes_root_false_puts_zero_root(amass):
    x = _standing(amass, 30)
    nodes = x[:, 1:] - x[:, :1]
    out = validate_observation(nodes, amass, 30, includes_root=False)
    assert out.shape == (1, 30, 22, 3)
    assert torch.all(out[0, :, 0] == 0)
    np.testing.assert_allclose(out[0, :, 1:].numpy(), nodes, atol=1e-6)


def test_wrong_length_and_allow_longer(amass):
    with pytest.raises(InputError, match=r"25 frames .*0\.5 s x 60 fps = 30 frames"):
        validate_observation(_standing(amass, 25), amass, 30)
    long = _standing(amass, 45)
    with pytest.raises(InputError, match="allow_longer=True"):
        validate_observation(long, amass, 30)
    out = validate_observation(long, amass, 30, allow_longer=True)
    assert out.shape == (1, 30, 22, 3)
    np.testing.assert_allclose(out[0].numpy(), long[-30:], atol=1e-6)
    h36m = get_skeleton("h36m")
    with pytest.raises(InputError, match="50 fps = 25 frames"):
        validate_observation(_standing(h36m, 20), h36m, 25)


def test_nan_inf_named(amass):
    x = _standing(amass, 30)
    x[4, 16, 0] = np.nan
    x[7, 16, 2] = np.inf
    x[7, 3, 1] = np.nan
    with pytest.raises(InputError) as ei:
        validate_observation(x, amass, 30)
    msg = str(ei.value)
    assert "NaN/inf" in msg and "frames [4, 7]" in msg and "3:Spine1" in msg and "16:LShoulder" in msg


@pytest.mark.parametrize("scale,unit", [(100.0, "centimetres"), (1000.0, "millimetres")])
def test_units_too_large(amass, scale, unit):
    with pytest.raises(InputError, match=f"looks like {unit}.*divide by {int(scale)}"):
        validate_observation(_standing(amass, 30) * scale, amass, 30)


def test_units_too_small(amass):
    with pytest.raises(InputError, match="too small for metres"):
        validate_observation(_standing(amass, 30) / 20.0, amass, 30)
    assert validate_observation(_standing(amass, 30) / 20.0, amass, 30, check_units=False).shape[1] == 30


def test_non_numeric(amass):
    with pytest.raises(InputError, match="numeric"):
        validate_observation([["a"]], amass, 30)
