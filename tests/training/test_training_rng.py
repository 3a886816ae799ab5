"""RNG capture/restore, seeding, per-epoch reseeding, resumable sampler."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from torch.utils.data import DataLoader

from skeleton_diffusion.training.engine_utils import EpochReseeder, make_generator, worker_init_fn
from skeleton_diffusion.training.rng import RNGState, capture_rng_state, restore_rng_state, seed_everything
from skeleton_diffusion.training.sampler import ResumableRandomSampler
from skeleton_diffusion.utils.errors import CheckpointError


def _draw(gen: torch.Generator) -> tuple:
    return (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=gen)))


def test_capture_restore_all_streams_weights_only() -> None:
    gen = make_generator(3)
    seed_everything(11, gen)
    _draw(gen)
    state = capture_rng_state(gen)
    first = _draw(gen)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)  # no numpy arrays / pickled objects inside
    _draw(gen)
    restore_rng_state(loaded, gen)
    assert _draw(gen) == first
    assert isinstance(state["cuda"], list)
    if not torch.cuda.is_available():
        assert state["cuda"] == []


def test_official_random_state_dict_layout_is_accepted() -> None:
    gen = make_generator(0)
    seed_everything(5, gen)
    official = {
        "random": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "torch_random": torch.random.get_rng_state(),
        "torch_cuda": torch.zeros(16, dtype=torch.uint8),
        "generator": gen.get_state(),
    }
    expected = _draw(gen)
    _draw(gen)
    RNGState(gen).load_state_dict(official)  # CPU-only: the CUDA entry is ignored, not a crash
    assert _draw(gen) == expected
    with pytest.raises(CheckpointError, match="missing key"):
        restore_rng_state({"numpy": official["numpy"]})


def test_seed_everything_and_epoch_reseeder() -> None:
    gen = make_generator(0)
    seed_everything(42, gen)
    a = _draw(gen)
    seed_everything(42, gen)
    assert _draw(gen) == a
    with pytest.raises(ValueError):
        seed_everything(-1)
    seen = []
    engine = Engine(lambda e, b: seen.append((e.state.epoch, float(torch.rand(1)), float(torch.rand(1, generator=gen)))))
    EpochReseeder(100, gen).attach(engine)
    engine.run([0], max_epochs=3)
    for epoch, t, g in seen:
        seed_everything(100 + epoch, gen)
        assert (t, g) == (float(torch.rand(1)), float(torch.rand(1, generator=gen)))
    # mid-epoch (iteration % epoch_length != 0): no reseed
    engine.state.iteration, engine.state.epoch_length, engine.state.epoch = 5, 3, 2
    torch.manual_seed(1)
    before = torch.get_rng_state()
    EpochReseeder(100, gen)(engine)
    assert torch.equal(torch.get_rng_state(), before)


def test_worker_init_fn_seeds_from_torch_initial_seed() -> None:
    torch.manual_seed(2**40 + 17)  # workers get base_seed + id; numpy needs it modulo 2**32
    worker_init_fn(0)
    a = (float(np.random.rand()), random.random())
    np.random.seed(17)
    random.seed(17)
    assert a == (float(np.random.rand()), random.random())
    g1, g2 = make_generator(5), make_generator(5)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_resumable_sampler_replays_the_interrupted_pass() -> None:
    s = ResumableRandomSampler(10, seed=0, batch_size=3, num_replicas=1, rank=0)
    loader = DataLoader(list(range(10)), batch_size=3, sampler=s)
    it = iter(loader)
    first = [next(it).tolist() for _ in range(2)]
    s.on_batch()
    s.on_batch()
    state = s.state_dict()
    rest = [b.tolist() for b in it] + [b.tolist() for b in loader]  # finish pass 1, then pass 2
    s2 = ResumableRandomSampler(10, seed=12345, batch_size=3, num_replicas=1, rank=0)
    s2.load_state_dict(state)
    loader2 = DataLoader(list(range(10)), batch_size=3, sampler=s2)
    replay = [b.tolist() for b in loader2] + [b.tolist() for b in loader2]
    assert replay == rest
    assert sorted(sum(first + rest[:2], [])) == list(range(10))  # pass 1 is a permutation
    with pytest.raises(CheckpointError, match="dataset of 10"):
        ResumableRandomSampler(11, 0, 3, 1, 0).load_state_dict(state)


def test_resumable_sampler_shards_like_distributed_sampler() -> None:
    parts = [list(ResumableRandomSampler(10, seed=4, batch_size=2, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(p) == 4 for p in parts)  # ceil(10 / 3), padded
    assert set(sum(parts, [])) == set(range(10))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_states_round_trip() -> None:
    seed_everything(9)
    state = capture_rng_state()
    assert len(state["cuda"]) == torch.cuda.device_count()
    a = torch.rand(3, device="cuda")
    restore_rng_state(state)
    assert torch.equal(torch.rand(3, device="cuda"), a)
