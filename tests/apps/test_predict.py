"""The `predict` CLI / API: observation file in metres -> npz (+ GIF) of sampled futures in metres.

Runs on a tiny randomly initialised model saved in our checkpoint format (no ../shared needed).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.apps.predict import gif_paths, load_observation, main, save_prediction
from skeleton_diffusion.utils.errors import DataFormatError, InputError

T_OBS, T_PRED_SHORT = 30, 6


def _compose(name, overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from skeleton_diffusion.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder of ours with a tiny AMASS model: checkpoints/checkpoint_3.pt + config.yaml."""
    import skeleton_diffusion.tasks.hmp.input_checks  # noqa: F401  (Predictor's observation checks)
    from skeleton_diffusion.config import save_config
    from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder, build_diffusion
    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.checkpoints.format import make_meta
    from skeleton_diffusion.utils.io import atomic_torch_save

    out = tmp_path_factory.mktemp("tiny") / "run"
    ae_cfg = _compose("train_autoencoder", ["dataset=amass", "debug=autoencoder", "model.latent_size=16",
                                            "model.autoenc_arch.encoder_hidden_size=16",
                                            "model.autoenc_arch.decoder_hidden_size=16",
                                            "task.pose_box_size=1.2", "output_log_path=unused"])
    ae_cfg = OmegaConf.create(OmegaConf.to_container(ae_cfg, resolve=True))
    cfg = _compose("train_diffusion", ["debug=diffusion", "model.diffusion_timesteps=4",
                                       f"output_log_path={out}"])
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.autoencoder = ae_cfg
    cfg.autoencoder_checkpoint = "none"
    sk = get_skeleton("amass")
    torch.manual_seed(0)
    ae = build_autoencoder(ae_cfg.model, sk)
    diff = build_diffusion(cfg.model, cfg.cov_matrix, sk, latent_size=16)
    meta = make_meta("diffusion", "amass", dataset="amass", pose_box_size=1.2, obs_length=T_OBS, pred_length=120,
                     config=OmegaConf.to_container(cfg, resolve=True))
    atomic_torch_save({"model": diff.state_dict(), "autoencoder": ae.state_dict(), "meta": meta},
                      out / "checkpoints" / "checkpoint_3.pt")
    save_config(cfg, out / "config.yaml")
    return out


def body_motion(n_frames: int, seed: int = 0) -> np.ndarray:
    """Plausible AMASS-layout motion in metres [n_frames, 22, 3] (the synthetic dataset's generator)."""
    from skeleton_diffusion.data.builders.synthetic import generate_clip

    return generate_clip(np.random.default_rng(seed), n_frames)[0].astype(np.float32)


def test_cli_writes_npz_and_gif(run_dir, tmp_path):
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    obs = body_motion(T_OBS)
    np.save(tmp_path / "obs.npy", obs)
    summary = main([f"checkpoint_path={run_dir}", f"input={tmp_path / 'obs.npy'}", f"output={tmp_path / 'p.npz'}",
                    "num_samples=3", "seed=1", f"pred_length={T_PRED_SHORT}", f"gif={tmp_path / 'p.gif'}",
                    "gif_max_samples=2", "device=cpu"])
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    assert data["pred"].shape == (1, 3, T_PRED_SHORT, 22, 3) and data["pred"].dtype == np.float32
    np.testing.assert_array_equal(data["obs"], obs[None])
    assert tuple(data["joint_names"]) == get_skeleton("amass").joint_names
    assert float(data["fps"]) == 60.0 and int(data["num_samples"]) == 3 and int(data["seed"]) == 1
    assert str(data["skeleton"]) == "amass" and float(data["pose_box_size"]) == pytest.approx(1.2)
    pred = data["pred"]
    assert np.isfinite(pred).all()
    # the root stays at the last observed hip position, the body is placed around it
    np.testing.assert_allclose(pred[..., 0, :], np.broadcast_to(obs[-1, 0], pred[..., 0, :].shape))
    assert np.abs(pred[..., 1:, :] - obs[-1, 0]).max() < 1.2 * 1.5
    assert (pred[0, 0] != pred[0, 1]).any()  # different samples
    gif = tmp_path / "p.gif"
    assert summary["gifs"] == [gif] and gif.is_file()
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == T_OBS + T_PRED_SHORT


def test_batch_npz_input_is_reproducible_per_seed(run_dir, tmp_path):
    obs = np.stack([body_motion(T_OBS, 1), body_motion(T_OBS, 2)])
    np.savez(tmp_path / "obs.npz", obs=obs, other=np.zeros(3))
    args = [f"checkpoint_path={run_dir / 'checkpoints' / 'checkpoint_3.pt'}", f"input={tmp_path / 'obs.npz'}",
            "num_samples=2", f"pred_length={T_PRED_SHORT}", "device=cpu"]
    main(args + [f"output={tmp_path / 'a.npz'}", "seed=7"])
    main(args + [f"output={tmp_path / 'b.npz'}", "seed=7"])
    main(args + [f"output={tmp_path / 'c.npz'}", "seed=8"])
    a, b, c = (np.load(tmp_path / f"{n}.npz")["pred"] for n in "abc")
    assert a.shape == (2, 2, T_PRED_SHORT, 22, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4
    # each observation keeps its own root position
    np.testing.assert_allclose(a[:, :, :, 0], np.broadcast_to(obs[:, -1, 0][:, None, None], a[:, :, :, 0].shape))


def test_longer_input_needs_allow_longer(run_dir, tmp_path):
    obs = body_motion(T_OBS + 10)
    np.save(tmp_path / "long.npy", obs)
    base = [f"checkpoint_path={run_dir}", f"input={tmp_path / 'long.npy'}", f"output={tmp_path / 'o.npz'}",
            "num_samples=1", f"pred_length={T_PRED_SHORT}", "device=cpu"]
    with pytest.raises(SystemExit) as exc:
        main(base)
    assert exc.value.code == 2 and not (tmp_path / "o.npz").exists()
    main(base + ["allow_longer=true"])
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["obs"][0], obs[-T_OBS:])


def test_user_errors_are_one_clear_paragraph(run_dir, tmp_path, capsys):
    np.save(tmp_path / "h36m_like.npy", np.zeros((T_OBS, 17, 3), np.float32) + 0.1)
    cases = [
        ([f"input={tmp_path / 'h36m_like.npy'}", f"output={tmp_path / 'x.npz'}"], "checkpoint_path"),
        ([f"checkpoint_path={run_dir}", f"input={tmp_path / 'h36m_like.npy'}", f"output={tmp_path / 'x.npz'}"],
         "22"),
        ([f"checkpoint_path={run_dir}", f"input={tmp_path / 'missing.npy'}", f"output={tmp_path / 'x.npz'}"],
         "missing.npy"),
        ([f"checkpoint_path={tmp_path / 'nope'}", f"input={tmp_path / 'h36m_like.npy'}", "output=x.npz"], "nope"),
        ([f"checkpoint_path={run_dir}", "no_such_option=1"], "no_such_option"),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv + ["device=cpu"])
        err = capsys.readouterr().err
        assert exc.value.code == 2, argv
        assert "error (" in err and needle in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "x.npz").exists()


def test_load_observation_formats(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 22, 3))
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", whatever=x)
    np.savez(tmp_path / "c.npz", obs=x, gt=x)
    for name in ("a.npy", "b.npz", "c.npz"):
        got = load_observation(tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (30, 22, 3)
        np.testing.assert_allclose(got, x.astype(np.float32))
    np.savez(tmp_path / "d.npz", a=x, b=x)
    with pytest.raises(DataFormatError, match="'obs'"):
        load_observation(tmp_path / "d.npz")
    np.save(tmp_path / "e.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="pickle"):
        load_observation(tmp_path / "e.npy")
    np.save(tmp_path / "f.npy", np.array(["a", "b"]))
    with pytest.raises(DataFormatError, match="dtype"):
        load_observation(tmp_path / "f.npy")
    with pytest.raises(InputError, match="not found"):
        load_observation(tmp_path / "none.npy")


def test_save_prediction_and_gif_names(tmp_path):
    p = save_prediction(tmp_path / "out.npz", np.zeros((1, 2, 3, 4, 3)), np.zeros((1, 5, 4, 3)),
                        joint_names=["a", "b", "c", "d"], fps=50, seed=3, checkpoint="x.pt")
    with np.load(p, allow_pickle=False) as f:
        assert f["pred"].shape == (1, 2, 3, 4, 3) and list(f["joint_names"]) == ["a", "b", "c", "d"]
        assert float(f["fps"]) == 50 and int(f["seed"]) == 3 and str(f["checkpoint"]) == "x.pt"
    assert gif_paths(tmp_path / "p.gif", 1) == [tmp_path / "p.gif"]
    assert gif_paths(tmp_path / "p.gif", 2) == [tmp_path / "p_0.gif", tmp_path / "p_1.gif"]


def test_help_lists_the_options(capsys):
    assert main(["--help"]) is None
    out = capsys.readouterr().out
    for key in ("checkpoint_path", "num_samples", "allow_longer", "gif"):
        assert key in out
