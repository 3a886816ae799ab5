"""A shuffling sampler whose position survives a checkpoint (exact data order on resume).

With a plain ``DataLoader(shuffle=True, generator=g)`` and the official per-epoch reseeding of ``g``, resume
is exact only when an epoch is a full pass over the data (the diffusion trainer): after a restart Ignite
opens a *new* pass. The AE trainer's epochs are fixed-length slices (580 iterations) of passes that span
epochs, so the interrupted pass would be lost. :class:`ResumableRandomSampler` fixes this: each pass draws
``randperm(n)`` from its own generator; the generator state at the start of the current pass and the number
of batches the engine consumed from it are checkpointed, so a resumed run re-creates the same permutation
and skips what was already used.

Worker processes: data order is exact with any ``num_workers``; randomness drawn *inside* workers
(augmentation) after a mid-pass resume follows a new worker seed (DataLoader draws it per iterator).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
from torch.utils.data import Sampler

from skeleton_diffusion.utils.errors import CheckpointError

__all__ = ["ResumableRandomSampler"]


class ResumableRandomSampler(Sampler[int]):
    """Random permutation sampler with ``state_dict`` / ``load_state_dict`` and engine-side batch counting.

    Args:
        num_samples: dataset length.
        seed: seed of the sampler's own permutation generator (the same on every rank).
        batch_size: per-process batch size of the DataLoader using it (consumed batches -> samples).
        num_replicas, rank: DDP sharding like ``DistributedSampler`` (default: from ``ignite.distributed``).

    Use it for exact resume in both trainers: torch's ``RandomSampler`` draws one extra (empty) permutation
    from its generator when a pass is exhausted, so a plain shuffled loader cannot be resumed bit-exactly.

    Call :meth:`attach` on the Ignite trainer so consumed batches are counted at ``GET_BATCH_COMPLETED``.
    """

    def __init__(self, num_samples: int, seed: int, batch_size: int, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if num_replicas is None or rank is None:
            import ignite.distributed as idist

            num_replicas = idist.get_world_size() if num_replicas is None else num_replicas
            rank = idist.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in [0, {num_replicas})")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.per_rank = -(-self.num_samples // self.num_replicas)  # ceil, as DistributedSampler (padding)
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))
        self._pass_start_state: torch.Tensor | None = None
        self._pass_index = -1
        self.consumed_batches = 0
        self._resume_skip = 0

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        if self._resume_skip == 0 or self._pass_start_state is None:
            # a fresh pass: remember where the permutation stream stood
            self._pass_start_state = self.generator.get_state()
            self._pass_index += 1
            self.consumed_batches = 0
            skip = 0
        else:
            # resuming inside a pass: replay its permutation, skip what the engine already used
            self.generator.set_state(self._pass_start_state)
            skip = self._resume_skip
            self.consumed_batches = skip // self.batch_size
        self._resume_skip = 0
        perm = torch.randperm(self.num_samples, generator=self.generator)
        if self.num_replicas > 1:  # every rank draws the same permutation and takes its own stride
            total = self.per_rank * self.num_replicas
            if total > self.num_samples:
                perm = torch.cat([perm, perm[: total - self.num_samples]])
            perm = perm[self.rank : total : self.num_replicas]
        yield from perm[skip:].tolist()

    def on_batch(self, _: Any = None) -> None:
        self.consumed_batches += 1

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self.on_batch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "pass_index": self._pass_index,
            "pass_start_state": self._pass_start_state,
            "generator": self.generator.get_state(),
            "consumed_samples": self.consumed_batches * self.batch_size,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["num_samples"]) != self.num_samples:
            raise CheckpointError(
                f"sampler state is for a dataset of {state['num_samples']} samples but this dataset has "
                f"{self.num_samples}; the data changed since the checkpoint was written"
            )
        self._pass_index = int(state["pass_index"])
        start = state["pass_start_state"]  # map_location may have moved the byte states off the CPU
        self._pass_start_state = None if start is None else start.cpu().to(torch.uint8)
        self.generator.set_state(state["generator"].cpu().to(torch.uint8))
        consumed = int(state["consumed_samples"])
        self._resume_skip = consumed if 0 < consumed < self.per_rank else 0
        self.consumed_batches = consumed // self.batch_size if self._resume_skip else 0
