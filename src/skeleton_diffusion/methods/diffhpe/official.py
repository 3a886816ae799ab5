"""Oracle facade for DiffHPE (``valeoai/diffhpe`` @ 444aef9): official layouts and key names in, official outputs
out. Names and signatures are those of ``fixtures/lifting/INTERFACE.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from skeleton_diffusion.methods.diffhpe.model import LiftingDiffusionModel
from skeleton_diffusion.methods.diffhpe.occlusion import official_occlusion_mask
from skeleton_diffusion.methods.diffhpe.schedule import diffhpe_noise_schedule
from skeleton_diffusion.utils.errors import CheckpointError

__all__ = ["diffhpe_noise_schedule", "load_diffhpe", "official_occlusion_mask", "strip_module_prefix"]


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a ``module.`` (``nn.DataParallel``) prefix carried by every key."""
    state = {str(k): v for k, v in state_dict.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_diffhpe(state_dict: Mapping[str, Tensor], config: Mapping[str, Any], seq_len: int,
                 **options: Any) -> LiftingDiffusionModel:
    """An official ``model.pth`` state dict (``diffmodel.*`` [+ ``conditioning.*``]) -> the model in eval mode.

    ``config``: the official ``diffusion`` settings (see :class:`LiftingDiffusionModel`); ``options``:
    ``bones_rewired``, ``anisotropic_step_noise`` (defaults = official). The diffusion-embedding table,
    absent from official checkpoints, is rebuilt from ``num_steps``."""
    state = strip_module_prefix(state_dict)
    model = LiftingDiffusionModel(config, seq_len, **options)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"the DiffHPE state dict does not match the network built from the config (layers={config.get('layers')}"
            f", channels={config.get('channels')}, conditioning={config.get('conditioning')}, seq_len={seq_len}): "
            f"{str(exc).splitlines()[0]} ... {str(exc)[-300:]}") from exc
    return model.eval()
