"""The demo shows motion: an example observation in motion, numbers that measure the futures, a readable GIF
(issue 15.9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _pipeline_helpers import make_synthetic
from skeleton_diffusion.apps.demo import joint_speed, motion_summary, pick_example_window, write_example_observation
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.viz.animation import render_prediction_frames


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"))


def test_example_window_is_in_motion(data_root, tmp_path) -> None:
    from skeleton_diffusion.data.processed import load_processed

    test = load_processed(data_root / "processed" / "Synthetic" / "hmp" / "data_3d_synthetic.npz")["test"]
    name, start = pick_example_window(data_root)
    seq = test[name]
    chosen = min(joint_speed(seq[start:start + 30]), joint_speed(seq[start + 29:start + 150]))
    assert chosen > 0.3  # m/s of hip-relative joint motion, observation and future alike
    import csv

    with open(data_root / "processed" / "Synthetic" / "hmp" / "segments_test.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    speeds = [min(joint_speed(test[r["name"]][int(r["init"]):int(r["pred_init"])]),
                  joint_speed(test[r["name"]][int(r["pred_init"]) - 1:int(r["pred_end"]) + 1])) for r in rows]
    assert chosen >= max(speeds) - 1e-6 and chosen > 1.5 * float(np.median(speeds))  # the liveliest window
    path = write_example_observation(tmp_path / "obs.npy", data_root=data_root)
    obs, gt = np.load(path), np.load(tmp_path / "obs_gt_future.npy")
    assert obs.shape == (30, 22, 3) and gt.shape == (120, 22, 3)
    np.testing.assert_array_equal(obs, seq[start:start + 30])
    np.testing.assert_array_equal(gt, seq[start + 30:start + 150])


def test_motion_summary_numbers(tmp_path) -> None:
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(22, 3)).astype(np.float32)
    obs = np.repeat(pose[None], 30, axis=0)
    obs[:, 1:, 2] += np.linspace(0, 0.3, 30)[:, None]  # non-root joints rise 30 cm over 29 frames
    last = obs[-1]
    ramp = np.linspace(0, 0.1, 120)[:, None, None] * np.array([1.0, 0, 0])  # 10 cm along x over the future
    still = np.repeat(last[None], 120, axis=0)
    moving = still.copy()
    moving[:, 1:] += ramp[:, :21]
    pred = np.stack([still, moving])[None].astype(np.float32)
    np.savez(tmp_path / "pred.npz", pred=pred, obs=obs[None], fps=np.float32(60))
    np.save(tmp_path / "gt.npy", moving)
    m = motion_summary(tmp_path / "pred.npz", tmp_path / "gt.npy")
    assert m["spread_final"] == pytest.approx(10.0, rel=1e-4)
    assert m["spread_mean"] == pytest.approx(5.0, rel=1e-4)
    assert m["pred_travel"] == pytest.approx(5.0, rel=1e-4)
    assert m["pred_speed"] == pytest.approx(10.0 / (119 / 60) / 2, rel=1e-4)
    assert m["gt_speed"] == pytest.approx(10.0 / (119 / 60), rel=1e-4)
    assert m["obs_speed"] == pytest.approx(30.0 / (29 / 60), rel=1e-4)


def test_gif_observation_panel_and_ghost_trails() -> None:
    amass = get_skeleton("amass")
    rng = np.random.default_rng(1)
    base = rng.normal(scale=0.3, size=(22, 3))
    obs = np.repeat(base[None], 6, axis=0)
    steps = np.linspace(0, 0.5, 8)[:, None, None]
    samples = np.stack([base + steps * np.array([1.0, 0, 0]), base + steps * np.array([0, 1.0, 0])])  # [2, 8, 22, 3]
    kw = dict(dpi=30, panel_size=1.5, ncols=None)
    plain = render_prediction_frames(obs, samples, amass, **kw)
    with_obs = render_prediction_frames(obs, samples, amass, obs_panel=True, **kw)
    assert plain.shape[0] == with_obs.shape[0] == 14
    assert with_obs.shape[2] > plain.shape[2]  # one more panel in the row: observation + 2 samples
    ghosts = render_prediction_frames(obs, samples, amass, trail=4, **kw)
    assert ghosts.shape == plain.shape
    assert np.array_equal(ghosts[:2], plain[:2])  # nothing to trail yet (lags 2 and 4): no ghost at first
    assert not np.array_equal(ghosts[-1], plain[-1])  # moving skeletons leave a faded ghost behind


def test_second_demo_run_reuses_finished_stages(data_root, tmp_path) -> None:
    """``resume=auto`` on a finished run with the demo's own ``dataset=synthetic``: nothing is retrained (Ignite
    would restart a finished engine from epoch 0) and the same group choice is not taken for a swap."""
    from _pipeline_helpers import ae_cfg
    from skeleton_diffusion.methods.skeleton_diffusion import train_autoencoder as autoencoder_trainer
    from skeleton_diffusion.utils.errors import ConfigError

    run = tmp_path / "ae"
    first = autoencoder_trainer.main(ae_cfg(data_root, run, ["dataset=synthetic"]))
    stamps = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    again = ["dataset=synthetic", f"output_log_path={run}", "resume=auto"]
    second = autoencoder_trainer.main(ae_cfg(data_root, run, again), overrides=again)
    assert second["epochs"] == first["epochs"] == 2 and second["iterations"] == first["iterations"]
    assert {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == stamps  # nothing rewritten
    assert second["checkpoint"] and Path(second["checkpoint"]).is_file()
    swap = ["dataset=h36m", f"output_log_path={run}", "resume=auto"]
    with pytest.raises(ConfigError, match="swaps the config group 'dataset'"):
        autoencoder_trainer.main(ae_cfg(data_root, run, ["dataset=synthetic", f"output_log_path={run}",
                                                         "resume=auto"]), overrides=swap)


def test_comparison_gif_with_ground_truth(tmp_path) -> None:
    from PIL import Image

    from skeleton_diffusion.apps.demo import write_comparison_gif

    rng = np.random.default_rng(2)
    obs = rng.normal(scale=0.3, size=(4, 22, 3)).astype(np.float32)
    pred = (obs[-1] + np.linspace(0, 0.2, 8)[:, None, None])[None, None].repeat(2, axis=1).astype(np.float32)
    np.savez(tmp_path / "pred.npz", pred=pred, obs=obs[None], fps=np.float32(60), skeleton=np.array("amass"))
    gt = obs[-1] + np.linspace(0, 3.0, 8)[:, None, None] * np.array([1.0, 0, 0])  # walks 3 m away
    np.save(tmp_path / "gt.npy", gt.astype(np.float32))
    out = write_comparison_gif(tmp_path / "pred.npz", tmp_path / "gt.npy", tmp_path / "cmp.gif")
    with Image.open(out) as im:
        assert im.n_frames == 12 and im.size[0] >= 3 * 200  # ground-truth panel + 2 samples, 240 px panels
