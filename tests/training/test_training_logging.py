"""TensorBoard / progress helpers and validation wiring."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from skeleton_diffusion.training.checkpointing import CheckpointSaver
from skeleton_diffusion.training.rng import RNGState, capture_rng_state
from skeleton_diffusion.training.loggers import (
    attach_progress_bar,
    attach_running_average,
    attach_validation_logging,
    scalar_output_transform,
    setup_tensorboard,
)
from skeleton_diffusion.training.engine_utils import attach_standard_handlers, attach_validation, make_generator


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_output_transform_forms() -> None:
    assert scalar_output_transform({"loss": torch.tensor(0.5), "pred_horiz": 7, "pred": torch.zeros(3)}) == {
        "loss": 0.5, "pred_horiz": 7.0}
    assert scalar_output_transform((torch.tensor(2.0), "x")) == {"loss": 2.0}
    assert scalar_output_transform(1.5) == {"loss": 1.5}


def test_tensorboard_training_and_validation_tags(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(engine, batch):
        opt.zero_grad()
        loss = model(torch.ones(1, 2)).pow(2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "pred horiz": engine.state.iteration}

    trainer = Engine(step)
    evaluator = Engine(lambda e, b: None)

    @evaluator.on(Events.COMPLETED)
    def _metrics(e):
        e.state.metrics = {"ADE": 0.25, "FDE": 0.5}

    tb = setup_tensorboard(tmp_path, trainer, opt, model=model, norms_every=2)
    attach_validation_logging(tb, evaluator, trainer, tag="validation")
    attach_running_average(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run([0]))
    assert attach_progress_bar(trainer, enabled=False) is None
    trainer.run([0] * 3, max_epochs=2)
    tb.close()
    s = _scalars(tmp_path)
    assert [st for st, _ in s["training/loss"]] == [1, 2, 3, 4, 5, 6]
    assert s["training/pred horiz"][-1] == (6, 6.0)
    assert s["training/lr/group_0"][0] == (1, pytest.approx(0.1))
    assert [st for st, _ in s["losses/lr/group_0"]] == [1, 2]
    assert s["validation/ADE"] == [(1, 0.25), (2, 0.25)]  # global step = trainer epoch
    assert any(t.startswith("weights_norm/") for t in s) and any(t.startswith("grads_norm/") for t in s)
    assert "Loss" in trainer.state.metrics


def test_validation_uses_seed_zero_and_restores_training_rng(tmp_path: Path) -> None:
    gen = make_generator(3)
    trainer = Engine(lambda e, b: float(torch.rand(1)))
    drawn = []
    holder = RNGState(gen)
    best = CheckpointSaver(tmp_path, {"random_states": holder}, score_fn=lambda e: float(e.state.epoch), score_name="val_ade")

    def validate(engine):
        drawn.append(float(torch.rand(1)))
        torch.rand(100)  # validation consumes randomness

    before = {}
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: before.update(capture_rng_state(gen)))
    attach_validation(trainer, validate, every=1, generator=gen, after=[best])
    trainer.run([0, 0], max_epochs=2)
    assert torch.equal(torch.get_rng_state(), before["torch"])  # training RNG restored after validation
    torch.manual_seed(0)
    assert drawn == [float(torch.rand(1))] * 2  # seeded with 0 each time (official)
    saved = torch.load(best.last_saved, weights_only=True)["random_states"]
    assert torch.equal(saved["torch"], before["torch"])  # the checkpoint holds the training RNG, not validation's


def test_standard_handlers_argument_checks() -> None:
    trainer = Engine(lambda e, b: 0.0)
    with pytest.raises(ValueError, match="eval_every"):
        attach_standard_handlers(trainer, validate=lambda e: None)
    with pytest.raises(ValueError, match="best_checkpoint"):
        attach_standard_handlers(trainer, best_checkpoint=object())  # type: ignore[arg-type]
    attached = attach_standard_handlers(Engine(lambda e, b: 0.0), seed=1, progress=None)
    assert set(attached) == {"reseeder", "nan_guard"}
    attached = attach_standard_handlers(Engine(lambda e, b: 0.0), seed=1, progress=False)  # per-epoch lines
    assert set(attached) == {"reseeder", "nan_guard", "progress"}
