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

# the aggregation is protocol code shared with ``eval.py task=lifting``; it lives in the metrics layer
from skeleton_diffusion.metrics.lifting import H36M_ACTIONS, action_base_name, official_action_errors

__all__ = ["H36M_ACTIONS", "action_base_name", "official_action_errors"]
