"""Official-format DiffPose checkpoints -> convert -> load_run reproduces the official test outputs."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from skeleton_diffusion.methods.diffpose import convert, load_run
from skeleton_diffusion.methods.diffpose.networks import GCNdiff, strip_data_parallel
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError

OFFICIAL_YAML = """data:
    dataset: "human36m"
    dataset_path: "./data/data_3d_h36m.npz"
    dataset_path_train_2d: "./data/data_2d_h36m_gt_gmm.npz"
    dataset_path_test_2d: "./data/data_2d_h36m_gt_gmm.npz"
model:
    hid_dim: {hid}
    emd_dim: {hid}
    coords_dim: [5,5]
    num_layer: {layers}
    n_head: {heads}
    dropout: 0.25
    n_pts: 17
diffusion:
    beta_schedule: linear
    beta_start: {b0}
    beta_end: {b1}
    num_diffusion_timesteps: {T}
testing:
    test_times: 1
    test_timesteps: {tsteps}
    test_num_diffusion_timesteps: {ttest}
"""


@pytest.fixture(scope="module")
def fx(shared_dir):
    path = shared_dir / "fixtures" / "lifting" / "diffpose.pt"
    if not path.exists():
        pytest.skip(f"fixture not available: {path}")
    return torch.load(path, weights_only=True)


def _write_official(fx, folder):
    """torch.save lists as the official runner writes them (DataParallel keys, Adam state, EMA without prefix)."""
    c = fx["config"]
    sd = OrderedDict(fx["state_dict_diffusion"])
    net = GCNdiff(c["hid_dim"], c["num_layer"], c["n_head"])
    net.load_state_dict(strip_data_parallel(sd))
    opt = torch.optim.Adam(net.parameters(), lr=2e-5)
    net(torch.zeros(2, 17, 5), torch.zeros(2)).sum().backward()
    opt.step()
    ema = OrderedDict((k, v.clone() * 0) for k, v in strip_data_parallel(sd).items())   # must NOT be used
    folder.mkdir(parents=True, exist_ok=True)
    torch.save([sd, opt.state_dict(), 79, 12345, ema], folder / "diffpose_uvxyz_cpn.pth")
    torch.save([OrderedDict(fx["state_dict_pose"]), {"state": {}, "param_groups": []}, 10, 99],
               folder / "gcn_xyz_cpn.pth")
    return folder / "diffpose_uvxyz_cpn.pth", folder / "gcn_xyz_cpn.pth"


@pytest.fixture(scope="module")
def official(fx, tmp_path_factory):
    return _write_official(fx, tmp_path_factory.mktemp("official"))


def _close(ours, ref, rel):
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=rel * float(ref.abs().max()))


@pytest.mark.parametrize("case, preset", [("cpn_eta0", "cpn"), ("gt_eta0", "gt")])
def test_convert_and_reproduce_official_test(fx, official, tmp_path, case, preset):
    src, prior = official
    out = convert(src, tmp_path / "run", prior=prior, preset=preset)
    assert out.is_file() and (tmp_path / "run" / "config.yaml").is_file()
    ck = torch.load(out, weights_only=True)
    assert ck["meta"]["method"] == "diffpose" and ck["meta"]["epoch"] == 79
    lifter = load_run(tmp_path / "run", device="cpu")
    ref = fx["test"][case]
    x2d = ref["start_uvxyz"][:, :, :2]
    out_xyz = lifter.lift(x2d, num_samples=1)
    assert out_xyz.shape == (x2d.shape[0], 1, 17, 3)
    _close(out_xyz[:, 0], ref["output_xyz"], 1e-4)


def test_convert_with_official_yaml_and_auto_prior(fx, official, tmp_path):
    c = fx["config"]
    src, _ = official
    yml = tmp_path / "human36m_diffpose_uvxyz_gt.yml"
    yml.write_text(OFFICIAL_YAML.format(hid=c["hid_dim"], layers=c["num_layer"], heads=c["n_head"],
                                        b0=c["beta_start"], b1=c["beta_end"], T=c["num_diffusion_timesteps"],
                                        tsteps=c["test_timesteps"], ttest=c["test_num_diffusion_timesteps_gt"]))
    out = convert(src, tmp_path / "run", config=yml)                   # gcn_xyz_*.pth found beside src
    lifter = load_run(out, device="cpu")
    assert lifter.settings.test_2d == "data_2d_h36m_gt_gmm.npz"
    ref = fx["test"]["gt_eta0"]
    _close(lifter.lift(ref["start_uvxyz"][:, :, :2], 3).mean(1), ref["output_xyz"], 1e-4)


def test_convert_refuses_and_explains(official, tmp_path):
    src, prior = official
    out = convert(src, tmp_path / "run", prior=prior)
    with pytest.raises(CheckpointError, match="not empty"):
        convert(src, tmp_path / "run", prior=prior)
    convert(src, tmp_path / "run", prior=prior, force=True)
    with pytest.raises(CheckpointError, match="2 normalised|GCNpose"):
        convert(src, tmp_path / "run2", prior=src)                     # denoiser given as the prior
    with pytest.raises(CheckpointError, match="already one of our"):
        convert(out, tmp_path / "run3", prior=prior)
    with pytest.raises(ConfigError, match="preset"):
        convert(src, tmp_path / "run4", prior=prior, preset="nope")
    evil = tmp_path / "evil.pth"
    torch.save([{"a": torch.zeros(1)}, ConfigError("x")], evil)
    with pytest.raises(CheckpointError, match="Refusing"):
        convert(evil, tmp_path / "run5", prior=prior)
    with pytest.raises(CheckpointError, match="not a converted DiffPose"):
        load_run(src)


def test_ema_weights_are_selectable(official, tmp_path):
    src, prior = official
    convert(src, tmp_path / "run", prior=prior, use_ema=True)
    lifter = load_run(tmp_path / "run", device="cpu")
    assert all(float(p.detach().abs().sum()) == 0 for p in lifter.denoiser.parameters())    # the zeroed EMA copy
