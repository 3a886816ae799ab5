"""Helpers shared by the official T2M evaluation tests (fixture loading and the README tolerance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def t2m_dir(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "t2m"
    if not path.is_dir():
        pytest.skip(f"T2M fixtures not available: {path}")
    return path


def close(actual, ref, name: str = "") -> None:
    """README tolerance: ``rtol=1e-5, atol=1e-5 * max|ref|``."""
    a = actual.detach().cpu().double().numpy() if torch.is_tensor(actual) else np.asarray(actual, dtype=np.float64)
    r = ref.detach().cpu().double().numpy() if torch.is_tensor(ref) else np.asarray(ref, dtype=np.float64)
    assert a.shape == r.shape, f"{name}: shape {a.shape} != {r.shape}"
    np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()), err_msg=name)
