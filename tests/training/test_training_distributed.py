"""Rank handling on 2 CPU processes (gloo): rank 0 alone writes; paths are broadcast; sampler shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _worker(local_rank: int, root: str) -> None:
    import ignite.distributed as idist
    from ignite.engine import Engine

    from skeleton_diffusion.training.checkpointing import CheckpointSaver
    from skeleton_diffusion.training.sampler import ResumableRandomSampler
    from skeleton_diffusion.training.run_dir import broadcast_path, prepare_run_dir

    rank = idist.get_rank()
    # every rank proposes its own folder (the Hydra ${now:} trap); rank 0's wins everywhere
    path = broadcast_path(Path(root) / f"run_from_rank{rank}")
    assert path == Path(root) / "run_from_rank0"
    run = prepare_run_dir(path, {"seed": 1})
    saver = CheckpointSaver(run.checkpoints, {"model": torch.nn.Linear(2, 2)})
    engine = Engine(lambda e, b: None)
    engine.state.epoch = 3
    written = saver(engine)
    assert (written is not None) == (rank == 0)
    sampler = ResumableRandomSampler(10, seed=5, batch_size=2)
    assert sampler.num_replicas == 2 and sampler.rank == rank
    idx = torch.tensor(list(sampler))
    gathered = idist.all_gather(idx)
    assert sorted(gathered.tolist()) == list(range(10))
    idist.barrier()


def test_rank_zero_writes_and_broadcast(tmp_path: Path) -> None:
    import ignite.distributed as idist

    with idist.Parallel(backend="gloo", nproc_per_node=2) as parallel:
        parallel.run(_worker, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_from_rank0"]
    assert sorted(p.name for p in (tmp_path / "run_from_rank0" / "checkpoints").iterdir()) == [
        "checkpoint_3.pt", "last.pt"]
