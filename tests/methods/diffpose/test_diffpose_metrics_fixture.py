"""Lifting metrics, DiffPose's aggregation, projection and cameras against fixtures/lifting (metrics.npz, data.pt)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from skeleton_diffusion.metrics import lifting as L
from skeleton_diffusion.metrics import lifting as P  # the facade the acceptance check uses for geometry too
from skeleton_diffusion.metrics.lifting import camera_parameters
from skeleton_diffusion.methods.diffpose.protocol import H36M_ACTIONS, action_base_name, official_action_errors


def _close(ours, ref, rel=1e-5):
    ref = torch.as_tensor(np.asarray(ref)) if not isinstance(ref, torch.Tensor) else ref
    ours = torch.as_tensor(ours).to(ref.dtype)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=rel * float(ref.abs().max()), equal_nan=True)


@pytest.fixture(scope="module")
def m(shared_dir):
    path = shared_dir / "fixtures" / "lifting" / "metrics.npz"
    if not path.exists():
        pytest.skip(f"fixture not available: {path}")
    return dict(np.load(path, allow_pickle=False))


@pytest.fixture(scope="module")
def data(shared_dir):
    path = shared_dir / "fixtures" / "lifting" / "data.pt"
    if not path.exists():
        pytest.skip(f"fixture not available: {path}")
    return torch.load(path, weights_only=True)


def _pg(m):
    return torch.from_numpy(m["pred"]), torch.from_numpy(m["gt"])


def test_mpjpe_without_centring(m):
    pred, gt = _pg(m)
    _close(L.mpjpe(pred, gt, root=None).mean(), m["diffpose_loss_mpjpe"])
    _close(L.mpjpe(pred, gt, root=None).reshape(-1).mean(), m["diffhpe_mpjpe_average"])


def test_p_mpjpe_regular_and_degenerate_rows(m):
    pred, gt = _pg(m)
    pm = L.p_mpjpe(pred, gt)
    n = pred.shape[0] - len(m["special_rows"])
    _close(pm[:n].mean(), m["diffpose_loss_p_mpjpe_regular"])
    rows = torch.from_numpy(m["rows_without_collapsed"])
    _close(pm[rows].mean(), m["diffpose_loss_p_mpjpe_all"])
    _close(pm[rows], m["diffpose_utils_p_mpjpe_per_pose"])
    special = m["diffpose_loss_p_mpjpe_special_rows"]
    for row, name, ref, raises in zip(m["special_rows"], m["special_names"], special,
                                      m["diffpose_loss_p_mpjpe_special_raises"]):
        if raises:      # the official numpy Procrustes raises LinAlgError: no reference number exists
            continue
        assert abs(float(pm[row]) - float(ref)) < 1e-5, name          # against a 1 m scale


def test_n_mpjpe_diffpose_no_centring(m):
    pred, gt = _pg(m)
    n = pred.shape[0] - len(m["special_rows"])
    _close(L.n_mpjpe(pred[:n], gt[:n], root=None).mean(), m["diffpose_loss_n_mpjpe_regular"])
    assert torch.isnan(L.n_mpjpe(pred, gt, root=None).mean()) == bool(np.isnan(m["diffpose_loss_n_mpjpe_all"]))
    seq_p, seq_g = torch.from_numpy(m["seq_pred"]), torch.from_numpy(m["seq_gt"])
    _close(L.n_mpjpe(seq_p, seq_g, root=None).mean(), m["diffpose_n_mpjpe_seq"])
    # the centred default differs (the 33 %): the switch matters
    assert abs(float(L.n_mpjpe(pred[:n], gt[:n]).mean()) - float(m["diffpose_loss_n_mpjpe_regular"])) > 1e-3


def test_mpjve(m):
    seq_p, seq_g = torch.from_numpy(m["seq_pred"]), torch.from_numpy(m["seq_gt"])
    _close(L.mpjve(seq_p, seq_g, root=None), m["diffpose_mpjve"])
    assert np.isnan(m["diffpose_mpjve_one_frame"])
    with pytest.raises(ValueError):
        L.mpjve(seq_p[:1], seq_g[:1], root=None)


def test_multi_hypothesis_diffhpe_strategies(m):
    samples, target = torch.from_numpy(m["diffhpe_eval_samples"]), torch.from_numpy(m["diffhpe_eval_target"])
    out = L.multi_hypothesis(samples, target)
    _close(out["of_mean"].mean() * 1000, m["diffhpe_eval_average_mpjpe_mm"])
    _close(out["best"].mean() * 1000, m["diffhpe_eval_best_mpjpe_mm"])
    out2 = L.multi_hypothesis(samples, target, metric=partial(L.mpjpe, root=None))
    _close(out2["best"], out["best"])


def _action_ids(actions):
    index = {a: i for i, a in enumerate(H36M_ACTIONS)}
    return torch.tensor([index[action_base_name(str(a))] for a in actions])


def test_per_action_mean_official_average(m):
    pred, gt = _pg(m)
    rows = torch.from_numpy(m["rows_without_collapsed"])
    acts = m["actions_rows_without_collapsed"]
    per_pose = L.mpjpe(pred[rows], gt[rows], root=0)           # the official test root-centres first
    ids = _action_ids(acts)
    res = L.per_action_mean(per_pose, ids, H36M_ACTIONS)
    _close(res["average"] * 1000, m["diffpose_test_one_batch_mixed_p1_mm"])
    _close(torch.tensor([res[a] for a in H36M_ACTIONS]), m["diffpose_test_one_batch_mixed_per_action_p1"])
    walk = torch.from_numpy(m["diffpose_test_only_walking_rows"])
    wids = _action_ids(m["actions"][walk.numpy()])
    w_per_pose = L.mpjpe(pred[walk], gt[walk], root=0)
    _close(L.per_action_mean(w_per_pose, wids, H36M_ACTIONS, missing_as_zero=True)["average"] * 1000,
           m["diffpose_test_only_walking_p1_mm"])
    assert L.per_action_mean(w_per_pose, wids, H36M_ACTIONS)["average"] * 1000 > 10 * float(
        m["diffpose_test_only_walking_p1_mm"])


@pytest.mark.parametrize("batch, key", [(None, "one_batch_mixed"), (4, "batches_of_4")])
def test_official_action_aggregation(m, batch, key):
    pred, gt = _pg(m)
    rows = torch.from_numpy(m["rows_without_collapsed"])
    acts = [str(a) for a in m["actions_rows_without_collapsed"]]
    res = official_action_errors(pred[rows], gt[rows], acts, batch)
    _close(res["per_action_p1"], m[f"diffpose_test_{key}_per_action_p1"])
    _close(res["per_action_p2"], m[f"diffpose_test_{key}_per_action_p2"])
    _close(res["p1_mm"], m[f"diffpose_test_{key}_p1_mm"])
    _close(res["p2_mm"], m[f"diffpose_test_{key}_p2_mm"])
    fixed = official_action_errors(pred[rows], gt[rows], acts, batch, mixed_batch_p2=False)
    per_pose = L.p_mpjpe(pred[rows], gt[rows]).double()
    _close(fixed["per_action_p2"], torch.tensor([float(per_pose[_action_ids(acts) == i].mean())
                                                 for i in range(len(H36M_ACTIONS))]))


def test_official_action_aggregation_filtered_run(m):
    pred, gt = _pg(m)
    walk = torch.from_numpy(m["diffpose_test_only_walking_rows"])
    acts = [str(a) for a in m["actions"][walk.numpy()]]
    res = official_action_errors(pred[walk], gt[walk], acts)
    _close(res["per_action_p1"], m["diffpose_test_only_walking_per_action_p1"])
    _close(res["p1_mm"], m["diffpose_test_only_walking_p1_mm"])
    corrected = official_action_errors(pred[walk], gt[walk], acts, average_over_all_actions=False)
    _close(corrected["p1_mm"], res["p1_mm"] * len(H36M_ACTIONS))


def test_projection_and_cameras(data):
    ns = data["normalize_screen"]
    _close(P.normalize_screen_coordinates(ns["pixels"].numpy(), 1000, 1002), ns["w1000_h1002"])
    _close(P.normalize_screen_coordinates(ns["pixels"].numpy(), 1000, 1000), ns["w1000_h1000"])
    pj = data["project_to_2d"]
    _close(P.project_to_2d(pj["points"].numpy(), pj["intrinsic"].numpy()), pj["out"])
    _close(P.project_to_2d(pj["points_far"].numpy(), pj["intrinsic"].numpy()), pj["out_far"])
    for key, cam in data["cameras"].items():
        subject, c = key.split("/")
        ours = camera_parameters(subject, int(c))
        for k in ("intrinsic", "orientation", "translation"):
            _close(ours[k], cam[k])
    for key, ref in data["camera_3d_absolute"].items():
        subject, action, c = key.split("/")
        cam = data["cameras"][f"{subject}/{c}"]
        world = data["world_17"][f"{subject}/{action}"].numpy()
        _close(P.world_to_camera(world, cam["orientation"].numpy(), cam["translation"].numpy()), ref)
