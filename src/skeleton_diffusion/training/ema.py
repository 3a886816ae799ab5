"""EMA of the diffusion weights with the official ``ema_pytorch.EMA`` semantics (spec §6.3).

We use the installed ``ema_pytorch.EMA`` (0.8.x) itself: its update rule is exactly the official one.
For the n-th call of ``update()`` (n = 1, 2, ...), with ``s = n - 1`` the counter before the increment:

* ``s % update_every != 0``: nothing happens (except at n = 1, which always copies: initialisation);
* ``s <= update_after_step``: the EMA copies the online weights;
* otherwise ``ema <- decay * ema + (1 - decay) * online`` (parameters and floating buffers) with
  ``decay = clamp(1 - (1 + e / inv_gamma) ** -power, min_value, beta)``, ``e = n - update_after_step - 1``
  (:func:`ema_decay`).

:class:`ModelEMA` only changes what is checkpointed: by default the online model is NOT duplicated inside
the EMA state dict (it is saved under ``model`` already); ``load_state_dict`` accepts both layouts, i.e. also
the official ``ema`` entry with its ``online_model.*`` keys.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from ema_pytorch import EMA

from skeleton_diffusion.utils.errors import CheckpointError

__all__ = ["ModelEMA", "ema_decay", "ema_update_kind", "attach_ema"]


def ema_decay(
    step_after: int,
    beta: float = 0.995,
    update_after_step: int = 100,
    inv_gamma: float = 1.0,
    power: float = 2.0 / 3.0,
    min_value: float = 0.0,
) -> float:
    """Decay used by an EMA update whose counter *after* the increment is ``step_after`` (0 when e <= 0)."""
    e = max(step_after - update_after_step - 1, 0)
    if e <= 0:
        return 0.0
    value = 1.0 - (1.0 + e / inv_gamma) ** (-power)
    return float(min(max(value, min_value), beta))


def ema_update_kind(call_index: int, update_every: int = 10, update_after_step: int = 100) -> str:
    """What the ``call_index``-th (1-based) ``update()`` does: ``'init'``, ``'copy'``, ``'lerp'`` or ``'skip'``."""
    s = call_index - 1
    if s == 0:
        return "init"
    if s % update_every != 0:
        return "skip"
    return "copy" if s <= update_after_step else "lerp"


class ModelEMA(EMA):
    """``ema_pytorch.EMA`` with official defaults (beta 0.995, after 100, every 10, inv_gamma 1, power 2/3, min 0).

    ``ema.ema_model`` is the averaged copy (a deepcopy of the model, buffers included); call ``ema.update()``
    after each optimizer step (or use :func:`attach_ema`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        beta: float = 0.995,
        update_after_step: int = 100,
        update_every: int = 10,
        inv_gamma: float = 1.0,
        power: float = 2.0 / 3.0,
        min_value: float = 0.0,
        include_online_model: bool = False,
    ) -> None:
        super().__init__(
            model,
            beta=beta,
            update_after_step=update_after_step,
            update_every=update_every,
            inv_gamma=inv_gamma,
            power=power,
            min_value=min_value,
            include_online_model=include_online_model,
        )

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load our layout or the official one (extra ``online_model.*`` keys are dropped when not held)."""
        state = dict(state_dict)
        if not self.include_online_model:
            state = {k: v for k, v in state.items() if not k.startswith("online_model.")}
        try:
            return super().load_state_dict(state, strict=strict, assign=assign)
        except RuntimeError as exc:
            raise CheckpointError(f"EMA state does not match the model: {str(exc).splitlines()[0]}") from exc


def attach_ema(engine: Any, ema: EMA) -> None:
    """Call ``ema.update()`` at every ``ITERATION_COMPLETED`` (the official calls it inside the train step)."""
    from ignite.engine import Events

    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda _: ema.update())


def ema_from_config(model: torch.nn.Module, model_cfg: Any) -> Optional[ModelEMA]:
    """The EMA a trainer keeps of ``model`` from its ``model:`` config block (keys ``if_use_ema``, ``ema_decay``,
    ``step_start_ema``, ``ema_update_every``, ``ema_power``, ``ema_min_value``; absent keys take the official
    defaults of :class:`ModelEMA`), or None when ``if_use_ema`` is false."""
    m = model_cfg
    if not bool(m.get("if_use_ema", True)):
        return None
    return ModelEMA(model, beta=float(m.get("ema_decay", 0.995)), update_after_step=int(m.get("step_start_ema", 100)),
                    update_every=int(m.get("ema_update_every", 10)), power=float(m.get("ema_power", 2.0 / 3.0)),
                    min_value=float(m.get("ema_min_value", 0.0)))
