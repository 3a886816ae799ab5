"""Issue 28 item 4: ``predict`` with an action-conditioned MDM says it is not a prediction model and points to
``generate`` (before: "the model expects 0 frames ... allow_longer=True", which then failed with NaN)."""

from __future__ import annotations

import numpy as np
import pytest

from _pipeline_helpers import make_synthetic, run_repo_command

TINY_MDM = ["model=mdm", "debug=mdm", "dataset=synthetic", "progress=false", "model.num_epochs=1",
            "model.num_iter_perepoch=2", "model.batch_size=8", "model.arch.latent_dim=32", "model.arch.ff_size=64",
            "model.diffusion_timesteps=20", "model.sampling_steps=2", "condition.num_frames=60"]  # fmt: skip


@pytest.mark.slow
def test_predict_with_action_mdm_points_to_generate(tmp_path):
    import os
    import subprocess
    import sys

    data = make_synthetic(tmp_path / "datasets")
    run = tmp_path / "mdm_action"
    run_repo_command(["train_diffusion.py", *TINY_MDM, "condition=action", f"output_log_path={run}",
                      f"dataset_main_path={data}"])
    obs = tmp_path / "obs.npy"
    np.save(obs, np.zeros((30, 22, 3), np.float32))
    res = subprocess.run([sys.executable, "-m", "skeleton_diffusion.apps.predict", f"checkpoint_path={run}",
                          f"input={obs}", f"output={tmp_path / 'p.npz'}", "num_samples=2"], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    text = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "action-conditioned" in text and "not a prediction model" in text
    assert "skeleton_diffusion.apps.generate" in text and "allow_longer" not in text
    assert not (tmp_path / "p.npz").exists()
    # the demo's use of the action model it trains (make demo-mdm): one motion batch per label, and a GIF
    from skeleton_diffusion.apps.demo_mdm import generate_actions

    npz = generate_actions(run, tmp_path / "action.npz", num_samples=2)
    with np.load(npz) as d:
        motion, actions = d["motion"], d["actions"]
    assert motion.shape[:2] == (len(actions), 2) and motion.shape[-2:] == (22, 3) and np.isfinite(motion).all()
    assert (tmp_path / "action.gif").is_file()
