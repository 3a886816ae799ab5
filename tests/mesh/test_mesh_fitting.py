"""SMPL fitting on a synthetic SMPL-format model: loading (safe reader, smplx), chain joints, recovery < 5 mm."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")

from _mesh_helpers import model_joints, random_params, write_release_like_model  # noqa: E402

from skeleton_diffusion.mesh import (BodyModelNotFoundError, FitConfig, chain_joints, fit_smpl,  # noqa: E402
                                     load_body_model, read_model_file)
from skeleton_diffusion.mesh.synthetic import synthetic_smpl_arrays, write_synthetic_smpl  # noqa: E402
from skeleton_diffusion.utils.errors import DataFormatError, InputError  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("body_models")
    write_release_like_model(d, seed=0)
    return d


@pytest.fixture(scope="module")
def model(model_dir):
    return load_body_model(model_dir)


def test_release_like_pickle_reads_to_the_written_arrays(model_dir):
    arrays = read_model_file(model_dir / "smpl" / "SMPL_NEUTRAL.pkl")
    ref = synthetic_smpl_arrays(0)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        np.testing.assert_allclose(arrays[key], ref[key], rtol=0, atol=0, err_msg=key)
    assert arrays["kintree_table"].shape == (2, 24)


def test_npz_model_and_plain_pickle_give_the_same_model(tmp_path, model):
    for fmt in ("npz", "pkl"):
        path = write_synthetic_smpl(tmp_path / fmt, seed=0, fmt=fmt)
        other = load_body_model(path)
        for name in ("v_template", "shapedirs", "J_regressor", "posedirs", "lbs_weights"):
            torch.testing.assert_close(getattr(other, name), getattr(model, name), rtol=0, atol=0)
        assert other.faces.shape == model.faces.shape


def test_unsafe_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "smpl" / "SMPL_NEUTRAL.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(DataFormatError, match="allow-list"):
        load_body_model(tmp_path)


def test_missing_model_names_where_to_put_it(tmp_path):
    with pytest.raises(BodyModelNotFoundError) as err:
        load_body_model(tmp_path / "nowhere")
    msg = str(err.value)
    assert "SMPL_NEUTRAL.pkl" in msg and str(tmp_path / "nowhere" / "smpl") in msg
    assert "smpl.is.tue.mpg.de" in msg and "--model-dir" in msg and "\n" not in msg


def test_model_missing_a_key_is_named(tmp_path):
    arrays = synthetic_smpl_arrays(0)
    del arrays["weights"]
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match="weights"):
        load_body_model(tmp_path)


def test_chain_joints_equal_the_smplx_forward(model):
    params = random_params(5, seed=3)
    ours = chain_joints(model, params["betas"], params["global_orient"], params["body_pose"], params["transl"])
    np.testing.assert_allclose(ours.numpy(), model_joints(model, params), atol=2e-5, rtol=0)


def test_fit_recovers_the_models_own_joints(model):
    params = random_params(30, seed=1)
    target = model_joints(model, params)
    fit = fit_smpl(target, model)
    assert fit.vertices.shape == (30, 6890, 3) and fit.faces.shape[1] == 3
    err = np.linalg.norm(fit.joints - target, axis=-1) * 1000
    assert fit.mean_error_mm == pytest.approx(err.mean(), rel=1e-4)
    assert fit.mean_error_mm < 5.0 and err.max() < 15.0
    assert fit.body_pose.shape == (30, 69) and np.all(fit.body_pose[:, 63:] == 0)
    # the shape explains the bone lengths: fitted rest joints match the true ones to a few mm
    ref = chain_joints(model, params["betas"], np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    got = chain_joints(model, fit.betas, np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    assert float((ref - got).norm(dim=-1).max()) < 0.01


def test_fit_single_frame_and_bad_inputs(model):
    params = random_params(1, seed=4)
    fit = fit_smpl(model_joints(model, params), model, FitConfig(window=4), with_vertices=False)
    assert fit.vertices is None and fit.mean_error_mm < 5.0
    with pytest.raises(InputError, match=r"\[T, 22, 3\]"):
        fit_smpl(np.zeros((4, 21, 3)), model)
    bad = np.zeros((2, 22, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_smpl(bad, model)
