"""The optimiser and EMA the trainers build from our configs equal the official recipes (issue 30).

Expected values are read off the official code, not computed by ours:
* SkeletonDiffusion autoencoder (``src/core/trainer.py`` AutoEncoderTrainer): ``torch.optim.AdamW(params, lr=lr,
  amsgrad=True)`` with ``lr: 0.5e-2`` (``config_train_autoencoder/model/autoencoder.yaml``), so AdamW's defaults
  betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
* SkeletonDiffusion diffusion (TrainerDiffusion): ``Adam(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.)`` with
  ``lr: 1.e-3`` (``config_train_diffusion/model/skeleton_diffusion.yaml``, ``isotropic_diffusion.yaml``); EMA
  ``ema_pytorch.EMA(model, beta=0.995, update_every=10, update_after_step=100, power=2/3, min_value=0)``.
* MDM (``train/training_loop.py``): ``AdamW(params, lr=1e-4, weight_decay=0.0)`` (``utils/parser_util.py``).
"""

from __future__ import annotations

import pytest
import torch
from ema_pytorch import EMA
from hydra.utils import instantiate

from _pipeline_helpers import compose_cfg
from skeleton_diffusion.training.ema import ema_from_config

HYPER = ("lr", "betas", "eps", "weight_decay", "amsgrad")


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(3))]


def _same_recipe(ours: torch.optim.Optimizer, official: torch.optim.Optimizer) -> None:
    assert type(ours) is type(official)
    got, want = ours.param_groups[0], official.param_groups[0]
    for key in HYPER:
        assert got[key] == pytest.approx(want[key], rel=0, abs=0), (key, got[key], want[key])


def test_autoencoder_optimizer_is_the_official_amsgrad_adamw():
    cfg = compose_cfg("train_autoencoder", ["dataset=amass"])
    _same_recipe(instantiate(cfg.model.optimizer)(_params()), torch.optim.AdamW(_params(), lr=0.5e-2, amsgrad=True))


@pytest.mark.parametrize("model", ["skeleton_diffusion", "isotropic_diffusion",
                                   "skeleton_diffusion_run_code_as_isotropic"])
def test_diffusion_optimizer_is_the_official_adam(model):
    cfg = compose_cfg("train_diffusion", [f"model={model}"])
    _same_recipe(instantiate(cfg.model.optimizer)(_params()),
                 torch.optim.Adam(_params(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0))


def test_mdm_optimizer_is_the_official_adamw():
    cfg = compose_cfg("train_diffusion", ["model=mdm", "dataset=synthetic"])
    _same_recipe(instantiate(cfg.model.optimizer)(_params()), torch.optim.AdamW(_params(), lr=1e-4, weight_decay=0.0))


def test_diffusion_ema_from_the_config_equals_the_official_ema_over_399_steps():
    """Same online trajectory into ours (built from the config) and the official ``ema_pytorch.EMA`` call: the
    averaged weights agree exactly at every step (both run the same float32 lerps)."""
    cfg = compose_cfg("train_diffusion", ["model=skeleton_diffusion"])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    ours = ema_from_config(net, cfg.model)
    official = EMA(net, beta=0.995, update_every=10, update_after_step=100, power=2 / 3, min_value=0.0)
    for step in range(399):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
            net[1].running_mean.add_(torch.randn(4))
        ours.update()
        official.update()
        for a, b in zip(ours.ema_model.state_dict().values(), official.ema_model.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m: f"step {step}: {m}")
