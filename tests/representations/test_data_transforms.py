"""Coordinate-space transforms: world -> metric -> input and back (numpy and torch)."""

import numpy as np
import pytest
import torch

from skeleton_diffusion.representations.hmp import (
    add_zero_root,
    input_to_metric,
    metric_to_input,
    to_input_space,
    to_metric_space,
)
from skeleton_diffusion.utils.errors import InputError


def _world(rng, shape=(2, 5, 22, 3)):
    x = rng.normal(size=shape).astype(np.float32)
    x[..., 0, :] += np.array([3.0, -2.0, 0.9], dtype=np.float32)  # root far from the origin
    return x


def test_metric_space_is_hip_centred_and_drops_root():
    x = _world(np.random.default_rng(0))
    m = to_metric_space(x)
    assert m.shape == (2, 5, 21, 3)
    np.testing.assert_allclose(m[0, 3, 4], x[0, 3, 5] - x[0, 3, 0], rtol=0, atol=1e-6)
    # translating the whole body per frame does not change the metric pose
    shift = np.random.default_rng(1).normal(size=(2, 5, 1, 3)).astype(np.float32)
    np.testing.assert_allclose(to_metric_space(x + shift), m, atol=1e-5)


@pytest.mark.parametrize("box", [1.0, 1.2, 1.5])
def test_input_round_trip_numpy_and_torch(box):
    x = _world(np.random.default_rng(2))
    inp = to_input_space(x, box)
    np.testing.assert_allclose(inp * box, to_metric_space(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(input_to_metric(inp, box), to_metric_space(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(metric_to_input(input_to_metric(inp, box), box), inp, rtol=1e-6, atol=1e-7)
    xt = torch.from_numpy(x)
    it = to_input_space(xt, box)
    assert isinstance(it, torch.Tensor) and it.dtype == torch.float32
    np.testing.assert_allclose(it.numpy(), inp, rtol=1e-6, atol=1e-7)
    assert isinstance(input_to_metric(it, box), torch.Tensor)


def test_add_zero_root_inverts_drop():
    x = _world(np.random.default_rng(3))
    m = to_metric_space(x)
    full = add_zero_root(m)
    assert full.shape == x.shape and np.all(full[..., 0, :] == 0)
    np.testing.assert_allclose(to_metric_space(full), m)
    assert torch.equal(add_zero_root(torch.from_numpy(m))[..., 1:, :], torch.from_numpy(m))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(InputError, match="xyz last"):
        to_metric_space(np.zeros((4, 22, 2)))
    with pytest.raises(InputError, match="pose_box_size"):
        to_input_space(np.zeros((4, 22, 3)), 0.0)
    with pytest.raises(InputError, match="numpy array or torch tensor"):
        to_metric_space([[0, 0, 0]])


def test_matches_official_input_space_fixture():
    from conftest import official_fixture

    case = torch.load(official_fixture("autoencoder.pt"), weights_only=True)["cases"]["amass"]
    box = case["config"]["pose_box_size"]
    x = to_input_space(case["motion_metres"], box)  # official skeleton.tranform_to_input_space
    assert torch.equal(x[:, :30], case["obs"]) and torch.equal(x[:, 30:], case["future"])
    xn = to_input_space(case["motion_metres"].numpy(), box)
    assert np.array_equal(xn[:, :30], case["obs"].numpy())
