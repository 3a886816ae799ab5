"""The ``make demo`` autoencoder preset (configs/debug/demo_autoencoder.yaml, README "Quickstart"): it must train on the
full 2-s horizon every step with the MSE loss, at the size of the small preset, and ``make demo`` must use it."""

from __future__ import annotations

import torch

from _pipeline_helpers import compose_cfg
from skeleton_diffusion.apps.demo import demo_commands
from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.methods.skeleton_diffusion.curriculum import HorizonCurriculum


def _curriculum(m) -> HorizonCurriculum:  # built exactly as training/autoencoder_trainer.py does
    return HorizonCurriculum(int(m.num_iter_perepoch), curriculum_it=int(m.curriculum_it or 0),
                             prediction_horizon_train=int(m.prediction_horizon_train),
                             ph_min_target=int(m.prediction_horizon_train_min),
                             ph_min_from_epoch=int(m.prediction_horizon_train_min_from_epoch),
                             random_prediction_horizon=bool(m.random_prediction_horizon))


def test_demo_uses_the_demo_autoencoder_preset() -> None:
    ae_cmd = [c for c in demo_commands("output/demo") if "train_autoencoder.py" in c][0]
    assert "debug=demo_autoencoder" in ae_cmd and "debug=autoencoder" not in ae_cmd


def test_demo_autoencoder_preset_trains_full_horizon_with_mse() -> None:
    demo = compose_cfg("train_autoencoder", ["dataset=synthetic", "debug=demo_autoencoder"]).model
    small = compose_cfg("train_autoencoder", ["dataset=synthetic", "debug=autoencoder"]).model
    # no longer than the small preset (the demo must stay a few minutes on CPU)
    assert demo.num_epochs * demo.num_iter_perepoch <= small.num_epochs * small.num_iter_perepoch
    assert demo.autoenc_arch.decoder_hidden_size <= small.autoenc_arch.decoder_hidden_size
    # every step of every epoch reconstructs the whole 120-frame future (the small preset draws shorter ones)
    cur, it, drawn = _curriculum(demo), 0, set()
    for epoch in range(1, int(demo.num_epochs) + 1):
        for _ in range(int(demo.num_iter_perepoch)):
            it += 1
            cur.advance()
            drawn.add(cur.sample(it, epoch))
    assert drawn == {int(demo.prediction_horizon)} == {120}
    cur_small = _curriculum(small)
    cur_small.advance()
    assert cur_small.sample(1, 1) < 120
    # the network's loss is the squared error (summed over xyz, mean over joints and time)
    net = build_autoencoder(demo, get_skeleton("amass"))
    y = torch.zeros(2, 4, net.num_nodes, 3)
    y_pred = y.clone()
    y_pred[..., 0] = 0.5
    assert torch.allclose(net.loss(y_pred, y), torch.tensor(0.25))
    assert torch.allclose(build_autoencoder(small, get_skeleton("amass")).loss(y_pred, y), torch.tensor(0.5))
