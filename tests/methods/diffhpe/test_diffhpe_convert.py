"""Official-format DiffHPE files written by the test -> convert -> load_run -> the fixture outputs; the MixSTE
conditioner from a prt_mixste file; safe loading of official files."""

from __future__ import annotations

import datetime
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from skeleton_diffusion.methods.diffhpe import DiffHPELifter, convert, load_run
from skeleton_diffusion.methods.diffhpe.files import (
    read_error_stats,
    safe_load_official,
)
from skeleton_diffusion.methods.diffhpe.mixste import MixSTE, load_mixste_state
from skeleton_diffusion.methods.diffhpe.run import new_wrapper_model
from skeleton_diffusion.utils.errors import CheckpointError, DataFormatError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
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


def _official_run(folder: Path, fx: dict, *, prefix: str = "", anisotropic: bool = True) -> Path:
    """What the official training leaves: model.pth, params.pth and the Hydra .hydra/config.yaml."""
    (folder / ".hydra").mkdir(parents=True)
    state = OrderedDict((prefix + k, v.clone()) for k, v in fx["state_dict"].items())
    assert not any("diffusion_embedding.embedding" in k for k in state)     # the official file lacks the table
    torch.save(state, folder / "model.pth")
    torch.save({"optimizer": {"state": {}, "param_groups": []}, "scheduler": {}, "epoch": 7}, folder / "params.pth")
    np.save(folder / "err_var.npy", fx["anisotropic_files"]["err_var"].numpy())
    np.save(folder / "err_ave.npy", fx["anisotropic_files"]["err_ave"].numpy())
    c = fx["config"]
    diffusion = {k: c[k] for k in ("layers", "channels", "use_nonlocal", "diffusion_embedding_dim", "beta_start",
                                   "beta_end", "num_steps", "schedule", "p_dropout", "conditioning", "cond_mix_mode")}
    diffusion.update(arch="gcn", anisotropic=anisotropic, err_var_path=str(folder / "err_var.npy"),
                     err_ave_path=str(folder / "err_ave.npy"), skeleton_time_regularization=0.0)
    doc = {"run": {"mode": "train", "seed": 42}, "diffusion": diffusion,
           "data": {"joints": 17, "seq_len": int(c["seq_len"]), "miss_type": "no_miss", "miss_rate": 20}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(doc))
    return folder


@pytest.mark.parametrize("prefix", ["", "module."])
def test_convert_reproduces_fixture(tmp_path, fx, prefix):
    src = _official_run(tmp_path / "official", fx, prefix=prefix)
    ckpt = convert(src, tmp_path / "ours")
    assert ckpt == tmp_path / "ours" / "checkpoints" / "checkpoint_7.pt"
    assert (tmp_path / "ours" / "config.yaml").is_file()
    meta = torch.load(ckpt, weights_only=True)["meta"]
    assert meta["method"] == "diffhpe" and meta["official_config"]["layers"] == fx["config"]["layers"]
    lifter = load_run(tmp_path / "ours", device="cpu")
    assert isinstance(lifter, DiffHPELifter)
    x2, ref = fx["inputs"]["data_2d_BCJL"], fx["sample_anisotropic"]
    out = lifter.model.impute(x2, int(ref["n_samples"]), ref["draws"], lifter.err_var, lifter.err_mean)
    torch.testing.assert_close(out, ref["samples_BSCJL"], rtol=1e-5, atol=1e-4 * float(ref["samples_BSCJL"].abs().max()))
    f = fx["forward"]
    with torch.no_grad():
        eps = lifter.model.denoiser(lifter.model.condition(f["noisy"], x2), f["t"])
    torch.testing.assert_close(eps, f["out"], rtol=1e-5, atol=1e-5 * float(f["out"].abs().max()))


def test_lift_windows_match_impute(tmp_path, fx):
    lifter = load_run(convert(_official_run(tmp_path / "o", fx, anisotropic=False), tmp_path / "r"), device="cpu")
    kp = fx["inputs"]["data_2d_BCJL"].permute(0, 3, 2, 1)                       # [B, L, J, 2]
    got = lifter.lift(kp, 2, generator=torch.Generator().manual_seed(3), n_steps=4)
    want = lifter.model.impute(kp.permute(0, 3, 2, 1), 2, n_steps=4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, want.permute(0, 1, 4, 3, 2))
    # a longer sequence is cut into windows; the padded tail is dropped
    long = torch.cat([kp[0], kp[1, :5]])                                        # [L + 5, J, 2]
    out = lifter.lift(long, 1, generator=torch.Generator().manual_seed(0), n_steps=2)
    assert out.shape == (1, long.shape[0], 17, 3) and torch.isfinite(out).all()


def test_convert_refuses_non_empty_output(tmp_path, fx):
    src = _official_run(tmp_path / "o", fx)
    out = tmp_path / "r"
    convert(src, out)
    with pytest.raises(CheckpointError, match="not empty"):
        convert(src, out)
    assert convert(src, out, force=True).is_file()


class _Payload:
    pass


def test_unsafe_files_are_refused(tmp_path):
    bad = tmp_path / "model.pth"
    torch.save({"x": _Payload()}, bad)
    with pytest.raises(CheckpointError, match="refusing"):
        safe_load_official(bad)
    torch.save({"when": datetime.date(2023, 1, 1)}, bad)
    with pytest.raises(CheckpointError):
        safe_load_official(bad)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError):
        read_error_stats(tmp_path / "obj.npy")
    np.save(tmp_path / "shape.npy", np.ones((17, 2)))
    with pytest.raises(DataFormatError, match=r"\[17, 3\]"):
        read_error_stats(tmp_path / "shape.npy", 17)
    np.save(tmp_path / "ok.npy", np.full((17, 3), 0.5))
    assert read_error_stats(tmp_path / "ok.npy", 17).shape == (17, 3)


def test_mixste_wrapper_from_prt_file(tmp_path):
    torch.manual_seed(0)
    seq_len, dim = 9, 16
    full = MixSTE(seq_len, 17, 2, 3, dim, depth=2, num_heads=4).eval()
    with torch.no_grad():
        for p in full.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # an official prt_mixste file: DataParallel keys, training extras incl. a numpy RNG state
    torch.save({"model_pos": OrderedDict(("module." + k, v) for k, v in full.state_dict().items()), "epoch": 3,
                "random_state": np.random.RandomState(0).get_state()}, tmp_path / "prt_mixste_h36m_L9_C16.pt")
    state = load_mixste_state(tmp_path / "prt_mixste_h36m_L9_C16.pt")
    assert set(state) == set(full.state_dict())
    cfg = {"layers": 2, "channels": 8, "diffusion_embedding_dim": 8, "cond_channels": dim, "cond_layers": 2,
           "cond_nheads": 4, "p_dropout": 0.0}
    model = new_wrapper_model(cfg, seq_len, tmp_path / "prt_mixste_h36m_L9_C16.pt").eval()
    trainable = {n for n, p in model.conditioning.named_parameters() if p.requires_grad}
    assert trainable == {"data_enc.weight", "data_enc.bias"}
    x2, noisy = torch.randn(2, 2, 17, seq_len), torch.randn(2, 3, 17, seq_len)
    feats = {}
    full.head[0].register_forward_hook(lambda m, i, o: feats.__setitem__("ln", o))
    with torch.no_grad():
        full(x2)
        cond = model.condition(noisy, x2)
    assert cond.shape == (2, 2 * dim, 17, seq_len)
    torch.testing.assert_close(cond[:, dim:], feats["ln"].permute(0, 3, 2, 1))
    torch.testing.assert_close(cond[:, :dim], model.conditioning.data_enc(noisy.permute(0, 3, 2, 1)).permute(0, 3, 2, 1))
    # the wrapper's model.pth (conditioning.* + diffmodel.*) converts and loads with the same outputs
    src = tmp_path / "wrapper"
    src.mkdir()
    torch.save(model.state_dict(), src / "model.pth")
    (src / "config.yaml").write_text(yaml.safe_dump({"diffusion": {**cfg, "conditioning": "pt_mixste"},
                                                     "data": {"seq_len": seq_len}}))
    lifter = load_run(convert(src, tmp_path / "ours"), device="cpu")
    t = torch.tensor([4, 30])
    with torch.no_grad():
        torch.testing.assert_close(lifter.model.denoiser(lifter.model.condition(noisy, x2), t),
                                   model.denoiser(cond, t))
