"""An official prefix-completion MDM (``context_len``/``pred_len``, HumanML3D) behind the Predictor contract:
``predict`` app and ``OfficialMDMRun.as_predictor`` on a tiny official-format checkpoint written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _mdm_helpers import mdm_dir, mdm_load, write_official_folder  # noqa: F401  (mdm_dir, mdm_load: fixtures)
from skeleton_diffusion.apps.predict import compose_config, run as run_predict
from skeleton_diffusion.methods.mdm import official as O
from skeleton_diffusion.methods.mdm.prefix import observation_features
from skeleton_diffusion.methods.registry import load_model
from skeleton_diffusion.representations.humanml3d import T2M_PARENTS, T2M_RAW_OFFSETS
from skeleton_diffusion.utils.errors import ConfigError


def walk(frames: int, yaw: float = 0.6, shift=(1.5, 0.0, -2.0)) -> np.ndarray:
    """A straight walk ``[frames, 22, 3]`` metres (Y up, 20 fps): constant heading, feet on the floor, arms
    swinging; rotated by ``yaw`` about Y and shifted in the world."""
    rest = np.zeros((22, 3))
    for j in range(1, 22):
        rest[j] = rest[T2M_PARENTS[j]] + T2M_RAW_OFFSETS[j] * (0.35 if j in (13, 14) else 0.2)  # wide shoulders
    rest[:, 1] -= rest[:, 1].min()                               # lowest joints (feet) at y = 0
    t = np.arange(frames)[:, None]
    p = np.repeat(rest[None], frames, 0)
    p[:, [18, 19, 20, 21], 2] += 0.1 * np.sin(0.4 * t)           # arm swing (z)
    p[..., 2] += 0.05 * t                                        # 1 m/s forward (+z)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return (p @ rot.T + np.asarray(shift)).astype(np.float32)


@pytest.fixture(scope="module")
def text_ckpt(mdm_dir) -> dict:
    return torch.load(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt", weights_only=True)


@pytest.fixture(scope="module")
def prefix_run(mdm_load, text_ckpt, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefix")
    fix = mdm_load("prefix_humanml.pt")
    src = write_official_folder(tmp / "official", fix["state_dict_without_pe"], fix["config"]["args_json"], text_ckpt)
    O.convert(src, tmp / "run")
    data = tmp / "data"
    data.mkdir()
    g = np.random.default_rng(0)
    np.save(data / "Mean.npy", (0.1 * g.standard_normal(263)).astype(np.float32))
    np.save(data / "Std.npy", (0.5 + g.random(263)).astype(np.float32))
    return tmp


def test_prefix_round_trip_and_oracle_continuation(prefix_run, monkeypatch):
    p = load_model(prefix_run / "run", device="cpu").as_predictor(data_root=prefix_run / "data")
    c, ph = p.obs_length, p.pred_length
    assert (c, ph, p.fps, p.skeleton.num_joints) == (4, 8, 20.0, 22)
    motion = walk(c + ph + 1)
    obs = motion[:c]
    # recover_from_ric ∘ features on the observation: measured max error 1.6e-8 m (float32 features); x60 margin
    np.testing.assert_allclose(p.reconstruct_observation(obs)[0], obs, atol=1e-6)
    # an oracle network that returns the normalised features of the true continuation: predict must give the true
    # future frames in metres, in the observation's own (rotated, shifted) frame
    full = torch.as_tensor(observation_features(motion[:-1]), dtype=torch.float32)[c:]        # rows C..C+P-1
    calls = []

    def oracle(n, x_cond=None, **kw):
        calls.append((n, x_cond, kw))
        return ((full - p.mean) / p.std).T[None].expand(n, -1, -1)

    monkeypatch.setattr(p.run, "sample", oracle)
    pred = p.predict(obs, num_samples=2, seed=0)
    assert pred.shape == (1, 2, ph, 22, 3) and pred.dtype == np.float32
    assert set(calls[0][1]) == {"past"} and calls[0][1]["past"].shape == (2, c, 263, 1)   # empty text: no text
    assert calls[0][2]["guidance_param"] is None and calls[0][2]["num_frames"] == ph
    # measured max error 2.4e-7 m (float32 normalisation round trip, 12 integrated frames); x40 margin
    np.testing.assert_allclose(pred[0, 1], motion[c:c + ph], atol=1e-5)


def test_predict_app_runs_the_tiny_official_prefix_model(prefix_run, tmp_path):
    obs = walk(4)
    np.save(tmp_path / "obs.npy", obs)
    cfg = compose_config([f"checkpoint_path={prefix_run / 'run'}", f"input={tmp_path / 'obs.npy'}",
                          f"output={tmp_path / 'pred.npz'}", f"data_root={prefix_run / 'data'}", "num_samples=3",
                          "sampling_steps=5", "device=cpu", "pred_length=12"])
    summary = run_predict(cfg)
    with np.load(summary["output"], allow_pickle=False) as f:
        pred, fps = f["pred"], float(f["fps"])
    assert pred.shape == (1, 3, 12, 22, 3) and np.isfinite(pred).all() and fps == 20.0   # 12 > pred_len: rolled out
    again = run_predict(compose_config([*cfg_overrides(cfg, tmp_path / "pred2.npz")]))
    with np.load(again["output"], allow_pickle=False) as f:
        np.testing.assert_array_equal(f["pred"], pred)                                     # seeded


def cfg_overrides(cfg, out) -> list[str]:
    keys = ("checkpoint_path", "input", "data_root", "num_samples", "sampling_steps", "device", "pred_length")
    return [f"{k}={cfg[k]}" for k in keys] + [f"output={out}"]


def test_text_conditions_the_prefix_model(prefix_run):
    run = load_model(prefix_run / "run", device="cpu")
    torch.manual_seed(0)
    table = torch.randn(1, 512)
    run.extra.update(_encoder_key=("clip", "None"), _encoder=lambda texts: table.expand(len(texts), -1))
    p = run.as_predictor(data_root=prefix_run / "data", steps=5)
    obs = walk(4)
    a = p.predict(obs, num_samples=2, seed=1)
    b = p.predict(obs, num_samples=2, seed=1, text="a person walks")
    assert np.isfinite(b).all() and not np.allclose(a, b)
    np.testing.assert_array_equal(b, p.predict(obs, num_samples=2, seed=1, text="a person walks"))


def test_non_prefix_official_model_says_use_generate(mdm_dir, tmp_path):
    np.save(tmp_path / "obs.npy", walk(4))
    O.convert(mdm_dir / "humanml_text_checkpoint" / "model000000000.pt", tmp_path / "text_run")
    cfg = compose_config([f"checkpoint_path={tmp_path / 'text_run'}",
                          f"input={tmp_path / 'obs.npy'}", f"output={tmp_path / 'p.npz'}", "device=cpu"])
    with pytest.raises(ConfigError, match="not a prediction model, use generate"):
        run_predict(cfg)


def test_prefix_model_needs_mean_std(prefix_run):
    with pytest.raises(ConfigError, match="Mean.npy"):
        load_model(prefix_run / "run", device="cpu").as_predictor()
