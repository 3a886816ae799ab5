"""Shared helpers of the MDM official-equivalence tests (fixtures: ``../shared/fixtures/mdm``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def to_ours(x: torch.Tensor) -> torch.Tensor:
    """official ``[B, J, C, T]`` -> our ``[B, J, T*C]``."""
    b, j, c, t = x.shape
    return x.permute(0, 1, 3, 2).reshape(b, j, t * c)


def frame_mask(mask: torch.Tensor) -> torch.Tensor:
    """official ``[B, 1, 1, T]`` -> ``[B, T]``."""
    return mask[:, 0, 0, :].bool()


def assert_fixture_close(ours: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    """README tolerance: rtol 1e-5, atol 1e-5 * max|ref| (compared in float64)."""
    ref = ref.double()
    ours = torch.broadcast_to(ours.double(), ref.shape) if ours.dim() == ref.dim() else ours.double()
    atol = 1e-5 * float(ref.abs().max()) if ref.numel() else 0.0
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=atol, msg=lambda m: f"{what}: {m}")


@pytest.fixture(scope="session")
def mdm_dir(shared_dir: Path) -> Path:
    d = shared_dir / "fixtures" / "mdm"
    if not d.is_dir():
        pytest.skip(f"MDM fixtures not found at {d}")
    return d


@pytest.fixture(scope="session")
def mdm_load(mdm_dir: Path):
    cache: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = torch.load(mdm_dir / name, weights_only=True)
        return cache[name]

    return load


def write_official_folder(folder: Path, state: dict, args_json: str, pe_source: dict, *, ema_decoy: bool = False,
                          args_overrides: dict | None = None) -> Path:
    """An official run folder as ``train_mdm.py`` writes it: ``model000000000.pt`` + ``args.json``. ``state`` lacks
    the two ``pe`` tables; they are copied from ``pe_source`` at their official key positions."""
    folder.mkdir(parents=True, exist_ok=True)
    full: dict = {}
    for k, v in state.items():
        if k.startswith("seqTrans") and "sequence_pos_encoder.pe" not in full:
            full["sequence_pos_encoder.pe"] = pe_source["sequence_pos_encoder.pe"]
        if k.startswith("embed_timestep.time_embed") and "embed_timestep.sequence_pos_encoder.pe" not in full:
            full["embed_timestep.sequence_pos_encoder.pe"] = pe_source["embed_timestep.sequence_pos_encoder.pe"]
        full[k] = v
    if "sequence_pos_encoder.pe" not in full or "embed_timestep.sequence_pos_encoder.pe" not in full:
        raise AssertionError("state dict has no transformer / timestep keys")
    args = json.loads(args_json)
    args.update(args_overrides or {})
    (folder / "args.json").write_text(json.dumps(args, indent=4, sort_keys=True))
    obj = full
    if ema_decoy:
        decoy = {k: (v if k.endswith("sequence_pos_encoder.pe") else torch.randn_like(v)) for k, v in full.items()}
        obj = {"model": decoy, "model_avg": full}
    torch.save(obj, folder / "model000000000.pt")
    return folder / "model000000000.pt"
