"""CrossDiff's optimiser, built from our configs as ``methods/crossdiff/trainer.py`` builds it, equals the official
recipe (issue 30 item 5). Expected values are read off the official code (github:wonderNo/crossdiff), not ours:

* ``train/training_loop.py``: ``AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)``, so
  AdamW's default betas (0.9, 0.999), eps 1e-8, amsgrad False; no gradient clipping, no lr schedule
  (``lr_anneal_steps: 0``), no EMA of the weights (sampling uses the trained weights).
* ``configs/base.yaml``: ``lr: 1e-4``, ``weight_decay: 0``; ``configs/crossdiff_pre.yaml``: ``lr: 1e-4``;
  ``configs/crossdiff_finetune.yaml``: ``lr: 1e-5``, ``w_m2j: 0.1``, ``w_j2m: 0.1``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from hydra.utils import instantiate

from _pipeline_helpers import compose_cfg
from skeleton_diffusion.methods.crossdiff.joints_sampling import load_crossdiff
from skeleton_diffusion.training.launch import lr_scheduler_from_config

HYPER = ("lr", "betas", "eps", "weight_decay", "amsgrad")


@pytest.mark.parametrize("experiment,lr,cross_weight", [("crossdiff_pre", 1e-4, 1.0), ("crossdiff_finetune", 1e-5, 0.1)])
def test_crossdiff_optimizer_is_the_official_adamw(experiment, lr, cross_weight):
    cfg = compose_cfg("train_diffusion", [f"experiment={experiment}", "dataset=synthetic"])
    params = [torch.nn.Parameter(torch.zeros(3))]
    ours = instantiate(cfg.model.optimizer)(params)
    official = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr, weight_decay=0)
    assert type(ours) is torch.optim.AdamW
    for key in HYPER:
        assert ours.param_groups[0][key] == official.param_groups[0][key], (key, ours.param_groups[0][key])
    assert lr_scheduler_from_config(ours, cfg.model) is None  # official: constant lr
    assert float(cfg.model.max_grad_norm) == 0.0  # official: no clipping (0 = off in our trainer)
    assert float(cfg.model.w_m2j) == float(cfg.model.w_j2m) == cross_weight


def test_crossdiff_samples_with_the_trained_weights_by_default():
    """The official code keeps no EMA; ours keeps one in the checkpoint but loads the trained weights unless asked."""
    assert inspect.signature(load_crossdiff).parameters["use_ema"].default is False
