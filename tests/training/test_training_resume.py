"""Exact resume: N iterations uninterrupted == N/2, save, fresh objects, load, N/2 (bit-identical)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader, TensorDataset

from skeleton_diffusion.checkpoints.format import NonFiniteLossError, find_latest_checkpoint, load_checkpoint, make_meta
from skeleton_diffusion.training.checkpointing import CheckpointSaver
from skeleton_diffusion.training.lr_schedule import ExponentialLRSchedulerWarmup
from skeleton_diffusion.methods.skeleton_diffusion.curriculum import HorizonCurriculum
from skeleton_diffusion.training.ema import ModelEMA
from skeleton_diffusion.training.rng import RNGState, seed_everything
from skeleton_diffusion.training.sampler import ResumableRandomSampler
from skeleton_diffusion.training.engine_utils import attach_standard_handlers, make_generator

N_DATA, BATCH, HORIZON = 36, 4, 6  # 9 batches per data pass


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(HORIZON, HORIZON)
        self.drop = torch.nn.Dropout(0.3)  # consumes the torch global RNG

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.drop(x))


def _dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(N_DATA, HORIZON, generator=g)
    return TensorDataset(x, 2.0 * x.flip(-1) + 0.1)


def _build(ckpt_dir: Path, *, seed: int, epoch_length: int | None, resumable: bool, save_every_iters: int | None):
    seed_everything(seed)
    model = _Net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, amsgrad=True)
    sched = ExponentialLRSchedulerWarmup(opt, lr=1e-2, warmup_duration=2, update_every=1, min_lr=1e-3, gamma_decay=0.7)
    ema = ModelEMA(model, beta=0.9, update_after_step=3, update_every=2)
    ipe = epoch_length or (N_DATA // BATCH)
    curriculum = HorizonCurriculum(iter_per_epoch=ipe, curriculum_it=2, prediction_horizon_train=HORIZON,
                                   ph_min_target=2, ph_min_from_epoch=3, random_prediction_horizon=True)
    gen = make_generator(seed)
    ds = _dataset()
    sampler = ResumableRandomSampler(len(ds), seed=seed, batch_size=BATCH) if resumable else None
    loader = DataLoader(ds, batch_size=BATCH, shuffle=sampler is None, sampler=sampler, generator=gen)

    def step(engine: Engine, batch):
        model.train()
        opt.zero_grad()
        x, y = batch
        ph = curriculum.sample(engine.state.iteration, engine.state.epoch)  # numpy global RNG
        pred = model(x)
        loss = (pred[:, :ph] - y[:, :ph]).abs().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"loss": loss.item(), "pred_horiz": ph}

    trainer = Engine(step)
    objects = {"trainer": trainer, "model": model, "optimizer": opt, "lr_scheduler": sched, "ema": ema,
               "curriculum": curriculum, "random_states": RNGState(gen)}
    if sampler is not None:
        objects["sampler"] = sampler
    saver = CheckpointSaver(ckpt_dir, objects, make_meta("autoencoder", "amass"), n_saved=2,
                            global_step_fn=lambda e: e.state.iteration if save_every_iters else e.state.epoch)
    attach_standard_handlers(trainer, seed=seed, generator=gen, lr_scheduler=sched, curriculum=curriculum,
                             sampler=sampler, ema=ema, checkpoint=saver if not save_every_iters else None)
    if save_every_iters:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=save_every_iters), saver)
    return trainer, loader, objects


def _state(objects) -> dict:
    return {
        "model": {k: v.clone() for k, v in objects["model"].state_dict().items()},
        "ema": {k: v.clone() for k, v in objects["ema"].state_dict().items()},
        "opt": objects["optimizer"].state_dict(),
        "lr": [g["lr"] for g in objects["optimizer"].param_groups],
        "iteration": objects["trainer"].state.iteration,
        "np": np.random.get_state()[1].copy(),
        "torch": torch.get_rng_state().clone(),
    }


def _assert_identical(a: dict, b: dict) -> None:
    assert a["iteration"] == b["iteration"]
    assert a["lr"] == b["lr"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    for pid in sa:
        for key in sa[pid]:
            assert torch.equal(sa[pid][key], sb[pid][key]), (pid, key)
    assert np.array_equal(a["np"], b["np"])
    assert torch.equal(a["torch"], b["torch"])


@pytest.mark.parametrize(
    "epoch_length,resumable,stop_at,save_every_iters",
    [
        (7, True, ("epoch", 3), None),      # AE-like: fixed-length epochs slicing passes (9 batches/pass)
        (None, True, ("epoch", 3), None),   # diffusion-like: an epoch is a full pass
        (7, True, ("iter", 17), 17),        # checkpoint and interruption in the middle of an epoch
    ],
)
def test_resume_is_bit_identical(tmp_path: Path, epoch_length, resumable, stop_at, save_every_iters) -> None:
    max_epochs, seed = 6, 7
    kw = dict(seed=seed, epoch_length=epoch_length, resumable=resumable, save_every_iters=save_every_iters)

    trainer, loader, objs = _build(tmp_path / "full", **kw)
    trainer.run(loader, max_epochs=max_epochs, epoch_length=epoch_length)
    full = _state(objs)

    trainer, loader, objs = _build(tmp_path / "part", **kw)
    kind, at = stop_at
    event = Events.EPOCH_COMPLETED(once=at) if kind == "epoch" else Events.ITERATION_COMPLETED(once=at)
    trainer.add_event_handler(event, lambda e: e.terminate())
    trainer.run(loader, max_epochs=max_epochs, epoch_length=epoch_length)
    assert trainer.state.iteration < full["iteration"]
    ckpt = find_latest_checkpoint(tmp_path / "part")
    assert ckpt is not None and ckpt.name == "last.pt"

    # fresh process-like state: other seeds, fresh objects, then load everything
    seed_everything(999)
    trainer, loader, objs = _build(tmp_path / "part", **kw)
    np.random.seed(4)
    torch.manual_seed(4)
    loaded = load_checkpoint(ckpt, objs, expected_stage="autoencoder", expected_skeleton="amass")
    assert loaded["meta"]["iteration"] == trainer.state.iteration
    trainer.run(loader)
    _assert_identical(full, _state(objs))


def test_resume_without_restoring_differs(tmp_path: Path) -> None:
    """Control: skipping the sampler/RNG state in the load breaks bit-identity (the test can fail)."""
    kw = dict(seed=7, epoch_length=7, resumable=True, save_every_iters=None)
    trainer, loader, objs = _build(tmp_path / "full", **kw)
    trainer.run(loader, max_epochs=4, epoch_length=7)
    full = _state(objs)
    trainer, loader, objs = _build(tmp_path / "part", **kw)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=2), lambda e: e.terminate())
    trainer.run(loader, max_epochs=4, epoch_length=7)
    trainer, loader, objs = _build(tmp_path / "part", **kw)
    partial = {k: v for k, v in objs.items() if k != "sampler"}
    load_checkpoint(find_latest_checkpoint(tmp_path / "part"), partial)
    trainer.run(loader)
    resumed = _state(objs)
    assert not all(torch.equal(full["model"][k], resumed["model"][k]) for k in full["model"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    trainer, loader, objs = _build(tmp_path, seed=1, epoch_length=5, resumable=True, save_every_iters=None)

    @trainer.on(Events.ITERATION_STARTED(once=8))
    def _poison(_):
        with torch.no_grad():
            objs["model"].lin.weight.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"epoch 2, iteration 8.*last good checkpoint.*last\.pt"):
        trainer.run(loader, max_epochs=4, epoch_length=5)
    files = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert files == ["checkpoint_1.pt", "last.pt"]
    good = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.isfinite(good["model"]["lin.weight"]).all()
    assert good["meta"]["epoch"] == 1
