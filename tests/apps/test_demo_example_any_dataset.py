"""The demo's example-window helpers work on any processed dataset (the real-motion script,
scripts/results/train_real_motion.sh, takes its GIF windows from the CMU / DeepMimic test splits)."""

from __future__ import annotations

import numpy as np

from skeleton_diffusion.apps import demo


def test_example_window_from_another_dataset_with_its_own_lengths(tmp_path) -> None:
    from skeleton_diffusion.data.builders.synthetic import build_synthetic_dataset
    from skeleton_diffusion.data.processed import load_processed

    folder = tmp_path / "processed" / "Other" / "hmp"
    build_synthetic_dataset(folder, seed=1, small=True, verbose=False)
    npz = "data_3d_synthetic.npz"
    out = tmp_path / "ex" / "obs.npy"
    assert demo.main(["--write-example-obs", str(out), "--example-from", str(folder), npz,
                      "--example-frames", "15", "30"]) == 0
    obs, fut = np.load(out), np.load(out.with_name("obs_gt_future.npy"))
    assert obs.shape == (15, 22, 3) and fut.shape == (30, 22, 3)
    name, start = demo.pick_example_window(obs_length=15, folder=folder, npz=npz)
    seq = np.asarray(load_processed(folder / npz)["test"][name], dtype=np.float32)
    np.testing.assert_array_equal(obs, seq[start:start + 15])            # the chosen window, continued by its future
    np.testing.assert_array_equal(fut, seq[start + 15:start + 45])


def test_comparison_gif_takes_a_skeleton_file(tmp_path) -> None:
    """A native-skeleton prediction names a skeleton that only its dataset's skeleton.json defines."""
    import json

    rng = np.random.default_rng(0)
    joints = 4
    parents = [-1, 0, 1, 1]
    sk = tmp_path / "skeleton.json"
    sk.write_text(json.dumps({"name": "toy4", "joint_names": ["root", "spine", "l_arm", "r_arm"], "parents": parents}))
    obs = rng.normal(scale=0.2, size=(1, 5, joints, 3)).astype(np.float32)
    pred = (obs[:, -1][:, None, None] + 0.01 * rng.normal(size=(1, 2, 6, joints, 3))).astype(np.float32)  # [B,S,T,J,3]
    np.savez(tmp_path / "pred.npz", pred=pred, obs=obs, fps=np.float32(30), skeleton=np.array("toy4"))
    np.save(tmp_path / "gt.npy", pred[0, 0])
    gif = demo.write_comparison_gif(tmp_path / "pred.npz", tmp_path / "gt.npy", tmp_path / "cmp.gif", skeleton=str(sk))
    assert gif.is_file() and gif.read_bytes()[:3] == b"GIF"
