"""Helpers shared by the CrossDiff official-fixture tests (``../shared/fixtures/crossdiff/crossdiff.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_fixture(shared_dir: Path) -> dict[str, Any]:
    import pytest

    path = shared_dir / "fixtures" / "crossdiff" / "crossdiff.pt"
    if not path.is_file():
        pytest.skip(f"CrossDiff fixture not available: {path}")
    return torch.load(path, weights_only=True)


def official_state_dict(fx: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The official state dict as TrainLoop.save writes it (the positional table under both keys)."""
    ck = fx["checkpoint"]
    pe = ck["pe_keys"][0]
    return {k: (ck["tensors"][pe] if k in ck["pe_keys"] else ck["tensors"][k]).float().clone()
            for k in ck["key_order"]}


def assert_close(actual: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    """README tolerance: rtol=1e-5, atol=1e-5*max|ref|."""
    actual, ref = torch.as_tensor(actual).double(), torch.as_tensor(ref).double()
    assert actual.shape == ref.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    atol = 1e-5 * ref.abs().max().item()
    err = (actual - ref).abs().max().item()
    assert torch.allclose(actual, ref, rtol=1e-5, atol=atol), f"{what}: max |diff| {err:.3g} > atol {atol:.3g}"
