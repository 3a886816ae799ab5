"""Both trainers on the tiny synthetic dataset (CPU): loss decreases, checkpoints reload, exact resume, EMA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _pipeline_helpers import ae_cfg, diffusion_cfg, make_synthetic
from skeleton_diffusion.methods.skeleton_diffusion import (
    train_autoencoder as autoencoder_trainer,
    train_diffusion as diffusion_trainer,
)
from skeleton_diffusion.training.launch import setup_run
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.utils.io import safe_torch_load


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def ae_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ae") / "run"
    autoencoder_trainer.main(ae_cfg(data_root, out, ["model.num_epochs=3"]))
    return out


def _tb_scalars(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tb"))
    ea.Reload()
    return [e.value for e in ea.Scalars(tag)]


def test_autoencoder_trains_and_writes_checkpoints(ae_run):
    losses = _tb_scalars(ae_run, "training/loss")
    assert len(losses) == 18 and all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first, f"loss did not decrease: {first:.4f} -> {last:.4f}"
    ckpts = sorted(p.name for p in (ae_run / "checkpoints").glob("*.pt"))
    assert "last.pt" in ckpts and "checkpoint_3.pt" in ckpts
    ck = safe_torch_load(ae_run / "checkpoints" / "last.pt")  # weights_only=True
    assert ck["meta"]["stage"] == "autoencoder" and ck["meta"]["skeleton"] == "amass"
    assert ck["trainer"]["iteration"] == 18
    assert (ae_run / "config.yaml").is_file()


def test_autoencoder_checkpoint_reloads_into_model(ae_run):
    from omegaconf import OmegaConf

    from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    from skeleton_diffusion.data.registry import build_dataset

    cfg = OmegaConf.load(ae_run / "config.yaml")
    sk = get_skeleton("amass")
    model = build_autoencoder(cfg.model, sk)
    model.load_state_dict(safe_torch_load(ae_run / "checkpoints" / "last.pt")["model"])
    x = torch.randn(2, int(cfg.model.obs_length), 21, 3) * 0.1
    assert model.decode(x, model(x), None, ph=5).shape == (2, 5, 21, 3)
    # numbers, not shapes: on the training clips (no augmentation) the reloaded weights reconstruct the future
    # far better than the untrained initialisation
    ds = build_dataset(cfg.dataset, "train_eval", **autoencoder_trainer.dataset_kwargs(cfg, sk))
    idx = range(0, len(ds), max(1, len(ds) // 32))  # 32 windows spread over the clips
    obs = torch.stack([ds[i][0] for i in idx])
    fut = torch.stack([ds[i][1] for i in idx])
    torch.manual_seed(0)
    fresh = build_autoencoder(cfg.model, sk)

    def l1(m):
        with torch.no_grad():
            return float((m.eval().autoencode(fut, obs, ph=fut.shape[1], compute_past_embedding=False)[0]
                          - fut).abs().mean())

    trained, untrained = l1(model), l1(fresh)
    # measured: 0.047 m-scaled L1 vs 0.171 untrained (ratio 0.28); 0.5 leaves ~1.8x margin, while a reload that
    # dropped the weights (ratio ~1) fails
    assert trained < 0.5 * untrained, (trained, untrained)


def _same(x, y) -> bool:
    """Deep equality for nested dicts/lists of tensors and plain values."""
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return isinstance(y, (list, tuple)) and len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    return x == y


def _state(path: Path, key: str) -> dict:
    return safe_torch_load(path)[key]


def test_autoencoder_exact_resume(data_root, tmp_path):
    full = tmp_path / "full"
    autoencoder_trainer.main(ae_cfg(data_root, full, ["model.num_epochs=2"]))
    part = tmp_path / "part"
    autoencoder_trainer.main(ae_cfg(data_root, part, ["model.num_epochs=1"]))
    with pytest.raises(ConfigError, match="already holds a training run"):  # never overwrite a run
        autoencoder_trainer.main(ae_cfg(data_root, part, ["model.num_epochs=1"]))
    # official four-key form; the CLI override model.num_epochs=2 extends the saved config
    resume_args = ["if_resume_training=true", "load=true", f"output_log_path={part}", "load_path=",
                   "model.num_epochs=2"]
    autoencoder_trainer.main(ae_cfg(data_root, tmp_path / "ignored", resume_args), overrides=resume_args)
    a, b = full / "checkpoints" / "checkpoint_2.pt", part / "checkpoints" / "checkpoint_2.pt"
    for key in ("model",):
        sa, sb = _state(a, key), _state(b, key)
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{key}.{name} differs after resume"
    oa, ob = _state(a, "optimizer"), _state(b, "optimizer")
    for pid in oa["state"]:
        for k2, v in oa["state"][pid].items():
            assert torch.equal(v, ob["state"][pid][k2]), f"optimizer state {pid}.{k2} differs"


def test_diffusion_trains_resumes_and_updates_ema(data_root, ae_run, tmp_path):
    full = tmp_path / "dfull"
    res = diffusion_trainer.main(diffusion_cfg(data_root, ae_run, full, ["model.num_epochs=2"]))
    losses = _tb_scalars(full, "training/loss")
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    ck = safe_torch_load(Path(res["checkpoint"]))
    assert ck["meta"]["stage"] == "diffusion" and "autoencoder" in ck and "ema" in ck
    # EMA: first updates copy the online weights (step <= step_start_ema), later ones average
    assert int(ck["ema"]["step"]) == 12
    # exact resume: 1 epoch + resume to 2 == 2 epochs
    part = tmp_path / "dpart"
    diffusion_trainer.main(diffusion_cfg(data_root, ae_run, part, ["model.num_epochs=1"]))
    resume_args = [f"resume={part}", "model.num_epochs=2"]
    diffusion_trainer.main(diffusion_cfg(data_root, ae_run, tmp_path / "x", resume_args), overrides=resume_args)
    a, b = full / "checkpoints" / "checkpoint_2.pt", part / "checkpoints" / "checkpoint_2.pt"
    for key in ("model", "ema"):
        sa, sb = _state(a, key), _state(b, key)
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{key}.{name} differs after resume"
    oa, ob = _state(a, "optimizer"), _state(b, "optimizer")
    for pid in oa["state"]:
        for k2, v in oa["state"][pid].items():
            assert torch.equal(v, ob["state"][pid][k2]), f"optimizer state {pid}.{k2} differs after resume"
    assert _same(_state(a, "sampler"), _state(b, "sampler")), "data order (sampler state) differs after resume"


def test_diffusion_loss_decreases(data_root, ae_run, tmp_path):
    run = tmp_path / "dlong"
    diffusion_trainer.main(diffusion_cfg(data_root, ae_run, run, ["model.num_epochs=4", "model.lr=3e-3",
                                                                   "model.train_pick_best_sample_among_k=1"]))
    losses = _tb_scalars(run, "training/loss")
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6


def test_diffusion_needs_a_real_autoencoder(data_root, tmp_path):
    with pytest.raises(CheckpointError, match="pretrained_autoencoder_path"):
        diffusion_trainer.main(diffusion_cfg(data_root, tmp_path / "missing", tmp_path / "d"))


def test_diffusion_refuses_a_diffusion_checkpoint_as_autoencoder(data_root, ae_run, tmp_path):
    d = tmp_path / "d1"
    diffusion_trainer.main(diffusion_cfg(data_root, ae_run, d, ["model.num_epochs=1"]))
    with pytest.raises(CheckpointError, match="'diffusion' run"):
        diffusion_trainer.main(diffusion_cfg(data_root, d, tmp_path / "d2", ["model.num_epochs=1"]))


def test_setup_run_refuses_different_config(data_root, tmp_path):
    out = tmp_path / "r"
    setup_run(ae_cfg(data_root, out))
    # a run that never wrote a checkpoint (a failed start) does not block a corrected rerun (issue 28 item 3) ...
    run = setup_run(ae_cfg(data_root, out, ["model.lr=0.1"])).run
    (run.checkpoints / "checkpoint_1.pt").write_bytes(b"x")
    # ... one with checkpoints does
    with pytest.raises(ConfigError, match="already holds a training run with checkpoints"):
        setup_run(ae_cfg(data_root, out, ["model.lr=0.2"]))


def test_validation_logs_metrics_and_pictures_to_tensorboard(data_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "val"  # full 2 s horizon: validation windows come from the dataset's CSV
    autoencoder_trainer.main(ae_cfg(data_root, run, ["model.num_epochs=1", "model.if_run_validation=true",
                                                      "model.eval_frequency=1", "task.prediction_horizon_sec=2"]))
    ea = EventAccumulator(str(run / "tb"), size_guidance={"images": 0})
    ea.Reload()
    assert "validation/val_MPJPE_AVG" in ea.Tags()["scalars"]
    images = ea.Tags()["images"]
    assert "validation/reconstruction/samples" in images and "validation/reconstruction/animation" in images
    assert any(p.name.startswith("checkpoint_1_val_mpjpe=") for p in (run / "checkpoints").iterdir())
    drun = tmp_path / "dval"
    diffusion_trainer.main(diffusion_cfg(data_root, run, drun, ["model.num_epochs=1", "model.if_run_validation=true",
                                                                 "model.eval_frequency=1", "model.num_prob_samples=3",
                                                                 "model.batch_size_eval=64"]))
    ea = EventAccumulator(str(drun / "tb"), size_guidance={"images": 0})
    ea.Reload()
    assert "validation/ADE" in ea.Tags()["scalars"] and "validation/samples/animation" in ea.Tags()["images"]
