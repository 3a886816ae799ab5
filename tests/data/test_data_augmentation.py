"""Augmentation primitives: official semantics, no in-place modification, RNG usage."""

import numpy as np
import pytest

from skeleton_diffusion.data.augment.augmentation import (
    add_observation_noise,
    left_right_pairs,
    mirror,
    rotate_z,
    rotation_matrix_z,
)
from skeleton_diffusion.skeletons.lookup import get_skeleton


def _x(seed=0, shape=(5, 22, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_mirror_negates_x_and_y_independently_without_touching_inputs():
    a, b = _x(0), _x(1)
    a0, b0 = a.copy(), b.copy()
    out = mirror([a, b, None], 1.0, np.random.RandomState(0))
    np.testing.assert_array_equal(out[0][..., :2], -a0[..., :2])
    np.testing.assert_array_equal(out[0][..., 2], a0[..., 2])
    assert out[2] is None
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    # p = 0.5: the two axes follow two successive uniform draws
    rs = np.random.RandomState(3)
    flips = [rs.rand() < 0.5, rs.rand() < 0.5]
    out = mirror([a], 0.5, np.random.RandomState(3))[0]
    for m in (0, 1):
        np.testing.assert_array_equal(out[..., m], -a0[..., m] if flips[m] else a0[..., m])


def test_zero_probability_draws_nothing():
    np.random.seed(11)
    state = np.random.get_state()[1].copy()
    a = _x()
    assert mirror([a], 0.0)[0] is a and rotate_z([a], 0.0)[0] is a
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_rotation_about_z_preserves_geometry():
    a = _x(2)
    r = rotate_z([a], 1.0, np.random.RandomState(5))[0]
    rs = np.random.RandomState(5)
    rs.rand()
    deg = rs.randint(0, 360)
    np.testing.assert_allclose(r, a @ rotation_matrix_z(deg).T, atol=1e-6)
    np.testing.assert_allclose(r[..., 2], a[..., 2], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(r[..., :2], axis=-1), np.linalg.norm(a[..., :2], axis=-1), rtol=1e-5)
    np.testing.assert_allclose(rotation_matrix_z(90) @ np.array([1, 0, 0], np.float32), [0, 1, 0], atol=1e-6)


def test_label_swapping_mirror_option():
    names = get_skeleton("amass").joint_names
    pairs = left_right_pairs(names)
    assert len(pairs) == 8 and all(names[a][1:] == names[b][1:] for a, b in pairs)
    a = _x(4)

    def flips(seed):
        rs = np.random.RandomState(seed)
        return rs.rand() < 0.5, rs.rand() < 0.5

    seed = next(s for s in range(100) if flips(s) == (True, False))
    out = mirror([a], 0.5, np.random.RandomState(seed), swap_pairs=pairs)[0]  # one reflection (x): labels swap
    l, r = pairs[0]
    np.testing.assert_array_equal(out[:, l, 0], -a[:, r, 0])
    np.testing.assert_array_equal(out[:, l, 1], a[:, r, 1])
    # two reflections (x and y) are a rotation: chirality and labels unchanged
    both = mirror([a], 1.0, np.random.RandomState(0), swap_pairs=pairs)[0]
    np.testing.assert_array_equal(both[..., :2], -a[..., :2])
    mano = left_right_pairs(get_skeleton("amass-mano").joint_names)
    assert len(mano) == 8 + 15


def test_observation_noise_spares_root_and_copies():
    obs = _x(5, (30, 22, 3))
    before = obs.copy()
    noisy = add_observation_noise(obs, 0.25, 0.02, np.random.default_rng(0))
    np.testing.assert_array_equal(obs, before)
    np.testing.assert_array_equal(noisy[:, 0], obs[:, 0])
    changed = (noisy[:, 1:] != obs[:, 1:]).any(-1)
    assert 0.15 < changed.mean() < 0.35
    assert np.abs(noisy - obs).max() < 0.2
    with pytest.raises(ValueError):
        add_observation_noise(obs, 1.5, 0.02)


def test_observation_noise_replays_official_draws():
    obs = _x(6, (30, 22, 3))
    np.random.seed(9)
    ours = add_observation_noise(obs, 0.25, 0.02)  # numpy global RNG, as the official loader
    np.random.seed(9)
    ref = obs.copy()
    body = ref[..., 1:, :]
    noise = np.random.randn(*body.shape) * 0.02  # official order: Gaussian first, then the Bernoulli mask
    mask = np.random.rand(*body.shape[:-1]) < 0.25
    body[mask] += noise[mask]
    np.testing.assert_array_equal(ours, ref)


def test_rotation_table_equals_scipy_per_degree():
    from scipy.spatial.transform import Rotation

    for d in range(360):
        expect = Rotation.from_euler("z", d, degrees=True).as_matrix().astype(np.float32)
        assert np.array_equal(rotation_matrix_z(d), expect)
    np.testing.assert_allclose(rotation_matrix_z(45.5)[0, 0], np.cos(np.deg2rad(45.5)), rtol=1e-6)
