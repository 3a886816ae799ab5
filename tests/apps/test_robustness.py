"""Fault tolerance and the bad-input catalogue: every mistake gives a clear message, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _pipeline_helpers import TINY_AE, ae_cfg, diffusion_cfg, make_synthetic
from skeleton_diffusion.methods.skeleton_diffusion import (
    train_autoencoder as autoencoder_trainer,
    train_diffusion as diffusion_trainer,
)
from skeleton_diffusion.utils.errors import (CheckpointError, ConfigError, DataFormatError, DatasetNotPreparedError,
                                             InputError)
from skeleton_diffusion.utils.io import safe_torch_load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    autoencoder_trainer.main(ae_cfg(data_root, root / "ae", ["model.num_epochs=1", "task.prediction_horizon_sec=2"]))
    diffusion_trainer.main(diffusion_cfg(data_root, root / "ae", root / "diff", ["model.num_epochs=1"]))
    return root


def _cli(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------- configuration
def test_unknown_config_key_and_group_option_are_named():
    proc = _cli(["train_autoencoder.py", "model.num_epochz=3", "--cfg", "job"])
    assert proc.returncode != 0 and "num_epochz" in proc.stderr
    proc = _cli(["train_autoencoder.py", "dataset=amazz", "--cfg", "job"])
    assert proc.returncode != 0 and "amazz" in proc.stderr and "amass" in proc.stderr  # lists the options


def test_user_errors_are_one_paragraph_without_traceback(tmp_path):
    proc = _cli(["train_diffusion.py", f"model.pretrained_autoencoder_path={tmp_path}/nope",
                 f"output_log_path={tmp_path}/d"])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "pretrained_autoencoder_path" in proc.stderr
    assert "train_autoencoder.py" in proc.stderr  # says how to fix it


# -------------------------------------------------------------------------------------------------- data
def test_missing_processed_dataset_names_path_and_command(tmp_path):
    cfg = ae_cfg(tmp_path / "empty", tmp_path / "run")
    with pytest.raises(DatasetNotPreparedError) as err:
        autoencoder_trainer.main(cfg)
    msg = str(err.value)
    assert "data_3d_synthetic.npz" in msg and "create_synthetic_dataset" in msg


def test_corrupt_processed_file_is_reported(data_root, tmp_path):
    import shutil

    bad_root = tmp_path / "bad"
    shutil.copytree(data_root, bad_root)
    npz = bad_root / "processed" / "Synthetic" / "hmp" / "data_3d_synthetic.npz"
    npz.write_bytes(b"this is not a zip file")
    with pytest.raises((DataFormatError, DatasetNotPreparedError)) as err:
        autoencoder_trainer.main(ae_cfg(bad_root, tmp_path / "run"))
    assert "data_3d_synthetic.npz" in str(err.value)


def test_wrong_array_shape_names_file_and_shapes(tmp_path):
    from skeleton_diffusion.data.processed import load_processed, save_processed

    path = tmp_path / "data_3d_x.npz"
    save_processed(path, {"train": {"clip": np.zeros((100, 21, 3), np.float32)}})
    with pytest.raises(DataFormatError) as err:
        load_processed(path, num_joints=22)
    msg = str(err.value)
    assert "data_3d_x.npz" in msg and "21" in msg and "22" in msg


# ------------------------------------------------------------------------------------------ checkpoints
def test_pickled_object_checkpoint_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        safe_torch_load(path)


def test_truncated_checkpoint_is_reported(runs, tmp_path):
    src = runs / "diff" / "checkpoints" / "last.pt"
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        safe_torch_load(bad)


def test_wrong_stage_checkpoint_for_eval_and_predict(runs):
    from skeleton_diffusion.methods.registry import load_model

    with pytest.raises(CheckpointError, match="'autoencoder' checkpoint"):
        load_model(runs / "ae")


def test_wrong_skeleton_for_eval(runs, data_root):
    from _pipeline_helpers import compose_cfg
    from skeleton_diffusion.apps.evaluate import main as evaluate

    cfg = compose_cfg("eval", [f"checkpoint_path={runs / 'diff'}", "dataset=h36m", f"dataset_main_path={data_root}"])
    with pytest.raises(ConfigError, match="skeleton 'amass'"):
        evaluate(cfg)


def test_observation_errors_through_the_predictor(runs):
    from skeleton_diffusion.methods.registry import load_model

    predictor = load_model(runs / "diff", device="cpu")
    good = np.zeros((30, 22, 3), np.float32)
    good[:, :, 2] = np.linspace(0, 1.7, 22)  # a body-sized pose
    with pytest.raises(InputError, match="22"):
        predictor.predict(good[:, :17], num_samples=2)
    with pytest.raises(InputError, match="30"):
        predictor.predict(good[:10], num_samples=2)
    nan = good.copy()
    nan[3, 5] = np.nan
    with pytest.raises(InputError, match="NaN|nan"):
        predictor.predict(nan, num_samples=2)
    with pytest.raises(InputError, match="centimetre|centimeter|cm"):
        predictor.predict(good * 100, num_samples=2)
    out = predictor.predict(good, num_samples=2, seed=0)
    assert out.shape == (1, 2, predictor.pred_length, 22, 3)
    np.testing.assert_array_equal(out, predictor.predict(good, num_samples=2, seed=0))  # seeded


# --------------------------------------------------------------------------------------------- training
def test_non_finite_loss_stops_with_message_and_keeps_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    from skeleton_diffusion.methods.skeleton_diffusion.autoencoder import AutoEncoder
    from skeleton_diffusion.checkpoints.format import NonFiniteLossError

    real_loss = AutoEncoder.loss
    calls = {"n": 0}

    def loss(self, *a, **kw):
        calls["n"] += 1
        out = real_loss(self, *a, **kw)
        return out * float("nan") if calls["n"] > 8 else out  # NaN in the 2nd epoch (6 iterations per epoch)

    monkeypatch.setattr(AutoEncoder, "loss", loss)
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as err:
        autoencoder_trainer.main(ae_cfg(data_root, run, ["model.num_epochs=3"]))
    assert "checkpoint_1.pt" in str(err.value) or "last.pt" in str(err.value)
    ck = safe_torch_load(run / "checkpoints" / "last.pt")
    assert ck["meta"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_sigkill_during_training_then_resume(data_root, tmp_path):
    run = tmp_path / "killed"
    args = ["train_autoencoder.py", "dataset=synthetic", *TINY_AE, f"dataset_main_path={data_root}",
            f"output_log_path={run}", "model.num_epochs=100000"]  # still running when killed
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def latest_epoch() -> int:  # only the newest few latest_<epoch>.pt are kept, so look for any >= 2
        return max((int(p.stem.split("_")[-1]) for p in (run / "checkpoints").glob("latest_*.pt")), default=0)

    try:
        deadline = time.time() + 240
        while time.time() < deadline and latest_epoch() < 2 and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "training stopped before it was killed"
        assert latest_epoch() >= 2, "no checkpoint of epoch >= 2 written before the deadline"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ck = safe_torch_load(run / "checkpoints" / "last.pt")  # the last checkpoint loads
    epoch = ck["meta"]["epoch"]
    assert epoch >= 2
    for path in (run / "checkpoints").glob("*.pt"):  # every file under a final name is complete
        assert safe_torch_load(path)["meta"]["stage"] == "autoencoder"
    resumed = autoencoder_trainer.main(ae_cfg(data_root, tmp_path / "unused", [f"resume={run}",
                                                                                f"model.num_epochs={epoch + 1}"]),
                                       overrides=[f"resume={run}", f"model.num_epochs={epoch + 1}"])
    assert resumed["epochs"] == epoch + 1


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_gloo_match_single_process(data_root, tmp_path):
    extra = ["dataset.data_loader_train.augmentation=0", "model.num_epochs=1", "model.batch_size=16"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    autoencoder_trainer.main(ae_cfg(data_root, single, extra))
    autoencoder_trainer.main(ae_cfg(data_root, ddp, extra + ["nproc_per_node=2", "dist_backend=gloo", "device=cpu"]))
    a = safe_torch_load(single / "checkpoints" / "last.pt")["model"]
    b = safe_torch_load(ddp / "checkpoints" / "last.pt")["model"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=f"AE {name}")
    dextra = ["model.num_epochs=1", "model.batch_size=16"]
    diffusion_trainer.main(diffusion_cfg(data_root, single, tmp_path / "d1", dextra))
    diffusion_trainer.main(diffusion_cfg(data_root, single, tmp_path / "d2",
                                         dextra + ["nproc_per_node=2", "dist_backend=gloo", "device=cpu"]))
    a = safe_torch_load(tmp_path / "d1" / "checkpoints" / "last.pt")["model"]
    b = safe_torch_load(tmp_path / "d2" / "checkpoints" / "last.pt")["model"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=f"diffusion {name}")
