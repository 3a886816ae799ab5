"""Helpers shared by the network unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def single_thread():
    """These recurrences are thousands of tiny ops: one thread avoids OpenMP stalls on a busy shared CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter distinct random values (official init ties types and makes G the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("G"):
                p.copy_(torch.eye(p.shape[0]) + 0.2 * noise)
            elif name.endswith("G_add"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(0.3 * noise)
