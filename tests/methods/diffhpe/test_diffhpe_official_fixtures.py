"""DiffHPE against the official fixtures (``../shared/fixtures/lifting``): every diffhpe.pt tensor, the masks of
data.pt and DiffHPE's coherence metrics of metrics.npz, through the INTERFACE.md names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skeleton_diffusion.metrics.lifting import (
    bone_asymmetry,
    bone_length_std,
)
from skeleton_diffusion.methods.diffhpe.model import (
    bone_lengths_bcjl,
    side_symmetry,
    time_consistency,
)
from skeleton_diffusion.methods.diffhpe.official import (
    diffhpe_noise_schedule,
    load_diffhpe,
    official_occlusion_mask,
)
from skeleton_diffusion.methods.diffhpe.skeleton import (
    H36M17_JOINTS_GROUP,
    H36M17_PARENTS,
    adjacency_from_parents,
    official_bone_sides,
    official_bones,
)


def close(ours, ref, scale: float = 1e-5) -> None:
    ref = torch.as_tensor(ref)
    ours = torch.as_tensor(ours).to(ref.dtype)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=scale * float(ref.abs().max()))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fx(shared_dir: Path) -> dict:
    path = shared_dir / "fixtures" / "lifting" / "diffhpe.pt"
    if not path.exists():
        pytest.skip(f"missing {path}")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def model(fx):
    torch.manual_seed(123)   # the loaded weights must not depend on the init
    return load_diffhpe(fx["state_dict"], fx["config"], int(fx["inputs"]["data_3d_BCJL"].shape[-1]))


def test_schedules(fx):
    for name, ref in fx["schedule"].items():
        ours = diffhpe_noise_schedule(name, 1e-4, 0.5, int(ref["beta"].shape[0]))
        for key in ("beta", "alpha", "alpha_hat", "sigma"):
            assert ours[key].dtype == torch.float64
            close(ours[key], ref[key])


def test_skeleton(fx):
    sk = fx["skeleton"]
    assert list(H36M17_PARENTS) == sk["parents"].tolist()
    assert [list(b) for b in official_bones()] == sk["bones"].tolist()
    left, right = official_bone_sides()
    assert list(left) == sk["bones_left"].tolist() and list(right) == sk["bones_right"].tolist()
    assert [j for g in H36M17_JOINTS_GROUP for j in g] == sk["joints_group_flat"].tolist()
    close(adjacency_from_parents(H36M17_PARENTS), sk["adjacency"])
    # the rewired bones attach the shoulders to the thorax (8): the official ones do not
    assert (11, 8) in official_bones(rewired=True) and (11, 7) in official_bones()


def test_forward(fx, model):
    f, x2 = fx["forward"], fx["inputs"]["data_2d_BCJL"]
    with torch.no_grad():
        total = model.condition(f["noisy"], x2)
        close(total, f["total_input"])
        close(model.diffmodel.diffusion_embedding.embedding, f["diffusion_embedding_table"])
        close(model.diffmodel.diffusion_embedding(f["t"]), f["diffusion_emb"])
        close(model.denoiser(total, f["t"]), f["out"])
        close(model.denoiser(total, torch.tensor([7])), f["out_scalar_t"])


def test_losses(fx, model):
    x2, x3 = fx["inputs"]["data_2d_BCJL"], fx["inputs"]["data_3d_BCJL"]
    err = fx["anisotropic_files"]
    with torch.no_grad():
        ref = fx["loss_isotropic"]
        close(model.calc_loss(x2, x3, ref["t"], ref["noise_white"]), ref["loss"])
        ref = fx["loss_anisotropic"]
        close(model.shape_noise(ref["noise_white"], err["err_var"], err["err_ave"]), ref["noise_shaped"])
        close(model.calc_loss(x2, x3, ref["t"], ref["noise_white"], err["err_var"], err["err_ave"]), ref["loss"])
        ref = fx["loss_regularised"]
        got = model.calc_loss(x2, x3, ref["t"], ref["noise_white"], reg_time=ref["skeleton_time_regularization"],
                              reg_side=ref["skeleton_side_regularization"])
        close(got, ref["loss_with_mode_average"])
    assert "mode" in fx["official_regulariser_error"]


def test_regularisers(fx):
    r = fx["regularisers"]
    x = r["poses_BCJL"]
    bones = official_bones()
    left, right = official_bone_sides()
    close(bone_lengths_bcjl(x, bones), r["bone_lengths"])
    close(time_consistency(x, bones, "average"), r["time_var_average"])
    close(time_consistency(x, bones, "sum"), r["time_var_sum"])
    close(time_consistency(x, bones, "std"), r["time_std_average"])
    close(bone_lengths_bcjl(x, bones).std(dim=2).mean(dim=0), r["time_std_per_bone"])
    close(side_symmetry(x, bones, left, right, "average", squared=True), r["symmetry_sq_average"])
    close(side_symmetry(x, bones, left, right, "average", squared=False), r["symmetry_abs_average"])
    # the project metrics on [B, L, J, 3] give the same numbers
    seq = x.permute(0, 3, 2, 1)
    limbs = [(p, j) for j, p in bones]
    close(bone_length_std(seq, limbs, unbiased=True).mean(), r["time_std_average"])
    assert not torch.allclose(bone_length_std(seq, limbs, unbiased=False).mean(), r["time_std_average"])
    close(bone_asymmetry(seq, limbs, list(zip(left, right))).mean(), r["symmetry_abs_average"])


@pytest.mark.parametrize("name", ["sample_isotropic", "sample_anisotropic"])
def test_samplers(fx, model, name):
    ref, err = fx[name], fx["anisotropic_files"]
    kw = {"err_var": err["err_var"], "err_mean": err["err_ave"]} if name.endswith("anisotropic") else {}
    got = model.impute(fx["inputs"]["data_2d_BCJL"], int(ref["n_samples"]), ref["draws"], **kw)
    close(got, ref["samples_BSCJL"], scale=1e-4)


def test_sampler_from_start_pose(fx, model):
    ref = fx["sample_start_pose_5steps"]
    x2 = fx["inputs"]["data_2d_BCJL"]
    steps = ref["draws"].shape[0] + 1
    got = model.impute(x2, 1, ref["draws"][None], starting_pose=ref["starting_pose"], n_steps=steps)
    close(got, ref["samples_BSCJL"], scale=1e-4)
    # the INTERFACE layout: draws[s, 0] is ignored when starting from a pose
    padded = torch.cat([torch.full_like(ref["draws"][:1], 1e3), ref["draws"]])[None]
    got2 = model.impute(x2, 1, padded, starting_pose=ref["starting_pose"], n_steps=steps)
    torch.testing.assert_close(got2, got)


def test_coherence_metrics(shared_dir):
    m = np.load(shared_dir / "fixtures" / "lifting" / "metrics.npz")
    pred = torch.from_numpy(m["diffhpe_eval_average_pred_mm"])            # [B, L, J, 3] mm
    limbs = [(p, j) for j, p in official_bones()]
    pairs = list(zip(*official_bone_sides()))
    close(bone_asymmetry(pred, limbs, pairs).mean(), m["diffhpe_sag_sym_mm"])
    close(bone_length_std(pred, limbs, unbiased=True).mean(), m["diffhpe_seg_std_mm"])


def test_occlusion_masks(shared_dir):
    data = torch.load(shared_dir / "fixtures" / "lifting" / "data.pt", weights_only=True)
    windows, seq_len = data["masks_note"].tolist()
    seed = int(data["meta"]["seed"])
    rates = {"no_miss": 20, "random": 0.2, "random_left_arm_right_leg": 0.4, "structured_joint": 0.4,
             "structured_frame": 0.2, "all": 20, "random_config_default_rate": 20}
    for key, rate in rates.items():
        rng = np.random.RandomState(seed)
        miss = "random" if key == "random_config_default_rate" else key
        ref = data["masks"][key].numpy()
        got = np.stack([official_occlusion_mask(miss, seq_len, ref.shape[2], rate, rng) for _ in range(windows)])
        assert np.array_equal(np.repeat(got[..., None], 2, axis=-1), ref), key
    assert not data["masks"]["random_config_default_rate"].any()      # miss_rate: 20 masks every joint
    rng = np.random.RandomState(seed)
    ref = data["masks"]["noisy"].numpy()
    outs = [official_occlusion_mask("noisy", seq_len, ref.shape[2], 20, rng) for _ in range(windows)]
    got = np.stack([np.ones(ref.shape[1:]) * mk[..., None] + nz for mk, nz in outs])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
