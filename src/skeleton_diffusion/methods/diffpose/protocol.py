"""DiffPose's evaluation aggregation (official ``common/utils.py``: ``test_calculation`` + ``print_error``).

Protocol #1 (MPJPE) and #2 (P-MPJPE) are accumulated per action over the test batches, in dataset order. Two
official defects are reproduced by default, each behind a switch:

* ``mixed_batch_p2=True``: in a batch that mixes actions, every pose is credited the **batch mean** P-MPJPE
  (``update(np.mean(dist), 1)``) instead of its own; a single-action batch is correct (``False`` = per pose);
* ``average_over_all_actions=True``: the reported average is the sum of the 15 per-action means divided by 15,
  actions without data counting 0 (``False`` = the mean over the actions present).

As in the official test, prediction and target are root-centred (joint ``root``) first; ``root=None`` uses them
as given.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from skeleton_diffusion.metrics.lifting import mpjpe, p_mpjpe
from skeleton_diffusion.utils.errors import InputError

__all__ = ["H36M_ACTIONS", "action_base_name", "official_action_errors"]

#: The official 15-action list (``test_action_list`` of ``test_hyber``), in its order.
H36M_ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)


def action_base_name(action: str) -> str:
    """``'Walking 1'`` -> ``'Walking'`` (the text before the first space)."""
    return action.split(" ")[0]


def official_action_errors(pred: Tensor, gt: Tensor, actions: Sequence[str], batch_size: int | None = None, *,
                           action_list: Sequence[str] = H36M_ACTIONS, mixed_batch_p2: bool = True,
                           average_over_all_actions: bool = True, root: int | None = 0) -> dict[str, object]:
    """Per-action protocol #1/#2 of ``pred, gt [N, J, 3]`` (metres) with ``actions[N]`` (H36M names, a take
    suffix allowed), accumulated over consecutive batches of ``batch_size`` (all at once if None).

    Returns ``{'per_action_p1': [A], 'per_action_p2': [A]}`` (metres, float64, 0 for absent actions) and
    ``'p1_mm'``, ``'p2_mm'``: the reported averages (mm).
    """
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise InputError(f"pred and gt must both be [N, J, 3], got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if len(actions) != pred.shape[0]:
        raise InputError(f"actions must name each of the {pred.shape[0]} poses, got {len(actions)} names")
    index = {a: i for i, a in enumerate(action_list)}
    names = [action_base_name(a) for a in actions]
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise InputError(f"unknown actions {unknown}; expected one of {list(action_list)}")
    ids = torch.tensor([index[a] for a in names], dtype=torch.long)
    n_act = len(action_list)
    sums = {k: torch.zeros(n_act, dtype=torch.float64) for k in ("p1", "p2")}
    counts = {k: torch.zeros(n_act, dtype=torch.float64) for k in ("p1", "p2")}
    step = pred.shape[0] if batch_size is None else int(batch_size)
    for start in range(0, pred.shape[0], step):
        p, g, a = pred[start:start + step], gt[start:start + step], ids[start:start + step]
        d1 = mpjpe(p, g, root=root).double()
        d2 = p_mpjpe(p, g).double()
        if mixed_batch_p2 and len(set(a.tolist())) > 1:
            d2 = d2.mean().expand_as(d2)
        for k, d in (("p1", d1), ("p2", d2)):
            sums[k].index_add_(0, a, d)
            counts[k].index_add_(0, a, torch.ones_like(d))
    out: dict[str, object] = {}
    for k in ("p1", "p2"):
        per = torch.where(counts[k] > 0, sums[k] / counts[k].clamp_min(1), torch.zeros_like(sums[k]))
        out[f"per_action_{k}"] = per
        denom = n_act if average_over_all_actions else max(1, int((counts[k] > 0).sum()))
        out[f"{k}_mm"] = float(per.sum() * 1000.0 / denom)
    return out
