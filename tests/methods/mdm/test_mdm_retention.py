"""MDM runs honour the shared checkpoint retention block ``checkpoints.{keep_last, keep_every}`` (H16c)."""

from __future__ import annotations

import re
from pathlib import Path

from _pipeline_helpers import compose_cfg, make_synthetic

TINY = ["model=mdm", "debug=mdm", "dataset=synthetic", "progress=false", "model.num_iter_perepoch=1",
        "model.batch_size=4", "model.arch.latent_dim=16", "model.arch.ff_size=32", "model.arch.num_layers=1",
        "model.diffusion_timesteps=10", "model.sampling_steps=2"]


def _steps(folder: Path) -> list[int]:
    found = (re.fullmatch(r"checkpoint_(\d+)\.pt", p.name) for p in folder.glob("checkpoint_*.pt"))
    return sorted(int(m.group(1)) for m in found if m)


def test_mdm_run_honours_keep_every(tmp_path: Path) -> None:
    from skeleton_diffusion.methods.mdm import trainer as mdm_trainer

    data = make_synthetic(tmp_path / "data")
    run = tmp_path / "run"
    cfg = compose_cfg("train_diffusion", [*TINY, "model.num_epochs=5", "checkpoints.keep_last=1",
                                          "checkpoints.keep_every=2", f"dataset_main_path={data}",
                                          f"output_log_path={run}"])
    mdm_trainer.main(cfg)
    # keep_last=1 alone would leave only epoch 5; keep_every=2 also keeps epochs 2 and 4 forever
    assert _steps(run / "checkpoints") == [2, 4, 5]
    assert (run / "checkpoints" / "last.pt").is_file()


def test_lifting_config_has_the_retention_block() -> None:
    from skeleton_diffusion.training.checkpointing import retention_from_config

    default = compose_cfg("train_lifting", ["method=diffpose", "model.keep_last_n=4"])
    assert retention_from_config(default, 1) == (4, None)
    cfg = compose_cfg("train_lifting", ["method=supervised", "checkpoints.keep_last=2", "checkpoints.keep_every=3"])
    assert retention_from_config(cfg, 1) == (2, 3)


def test_lifting_run_honours_keep_every(tmp_path: Path) -> None:
    from skeleton_diffusion.apps.create_synthetic_lifting_dataset import build_synthetic_lifting
    from skeleton_diffusion.training import lifting as lifting_trainer

    build_synthetic_lifting(tmp_path / "data" / "processed" / "SyntheticLifting", clips_per_subject=1, frames=60,
                            cameras=1)
    run = tmp_path / "lift"
    cfg = compose_cfg("train_lifting", ["method=supervised", "debug=lifting", "model.num_iter_perepoch=4", "progress=false",
                                        "model.num_epochs=3",
                                        "checkpoints.keep_last=1", "checkpoints.keep_every=2",
                                        f"dataset_main_path={tmp_path / 'data'}", f"output_log_path={run}"])
    lifting_trainer.main(cfg)
    assert _steps(run / "checkpoints") == [2, 3]  # keep_last=1 alone: [3]
