"""Metrics: hand-computed tensors and the official values in ``metrics.npz`` (spec data_eval §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import official_fixture
from skeleton_diffusion import metrics as M
from skeleton_diffusion.metrics.fid import (
    ClassifierForFID,
    FIDAccumulator,
    fid,
    fid_features,
    frechet_distance,
    load_fid_classifier,
)
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError

# ----------------------------------------------------------------------------------------------------------
# hand-computed cases


def _zeros(b, s, t, n):
    return torch.zeros(b, s, t, n, 3)


def test_apd_hand_computed_and_single_sample():
    pred = _zeros(1, 3, 1, 1)
    pred[0, 1, 0, 0, 0] = 3.0  # (3,0,0)
    pred[0, 2, 0, 0, 1] = 4.0  # (0,4,0) -> pairwise distances 3, 4, 5
    for exact in (True, False):
        torch.testing.assert_close(M.apd(pred, exact=exact), torch.tensor([4.0]))
    assert M.apd(pred[:, :1]).tolist() == [0.0]
    # flattening over T and N: two frames each differing by 1 in x -> distance sqrt(2)
    two = _zeros(1, 2, 2, 1)
    two[0, 1, :, 0, 0] = 1.0
    torch.testing.assert_close(M.apd(two), torch.tensor([math.sqrt(2.0)]))


def test_ade_fde_use_norm_of_flattened_pose():
    target = torch.zeros(1, 2, 2, 3)
    pred = _zeros(1, 2, 2, 2)
    pred[0, 0, :, 0] = torch.tensor([3.0, 4.0, 0.0])  # 5 m off at every frame (joint 0 only)
    pred[0, 1, 0, :, 2] = 1.0  # frame 0: both joints 1 m off in z -> flattened norm sqrt(2) (per-joint mean: 1)
    per_sample = M.ade(pred, target, reduction="none")
    torch.testing.assert_close(per_sample, torch.tensor([[5.0, math.sqrt(2.0) / 2]]))
    torch.testing.assert_close(M.ade(pred, target), torch.tensor([math.sqrt(2.0) / 2]))
    torch.testing.assert_close(M.fde(pred, target, reduction="none"), torch.tensor([[5.0, 0.0]]))
    assert M.fde(pred, target).tolist() == [0.0]


def test_mmade_mmfde_hand_computed_and_chunk_invariant():
    # one item, two samples, T=2, N=1; samples sit at x=0 and x=2 for all frames
    pred = _zeros(2, 2, 2, 1)
    pred[:, 1, :, 0, 0] = 2.0
    mm0 = torch.zeros(2, 2, 1, 3)
    mm0[0, :, 0, 0] = 0.5  # best: sample 0, ADE 0.5, FDE 0.5
    mm0[1, 0, 0, 0], mm0[1, 1, 0, 0] = 2.0, 3.0  # best: sample 1, ADE 0.5 (0, 1), FDE 1.0
    mm1 = torch.zeros(1, 2, 1, 3)  # item 1: GT equals sample 0
    expected_ade = torch.tensor([0.5, 0.0])
    expected_fde = torch.tensor([0.75, 0.0])
    torch.testing.assert_close(M.mmade(pred, [mm0, mm1]), expected_ade)
    torch.testing.assert_close(M.mmfde(pred, [mm0, mm1]), expected_fde)
    torch.testing.assert_close(M.mmade(pred, [mm0, mm1], chunk_elems=1), expected_ade)
    torch.testing.assert_close(M.mmfde(pred, [mm0, mm1], chunk_elems=1), expected_fde)
    with pytest.raises(InputError, match="one tensor per item"):
        M.mmade(pred, [mm0])


def test_mae_hand_computed_right_angle():
    # chain of three nodes along x; the prediction bends the second limb by 90 degrees
    target = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]).expand(1, 4, 3, 3).clone()
    bent = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]])
    pred = torch.stack([bent.expand(4, 3, 3), target[0]], dim=0).unsqueeze(0)  # [1, 2, 4, 3, 3]
    limbs = [(1, 0), (2, 1)]  # unsorted on purpose: vectors always go lower -> higher index
    per_sample = M.mae(pred, target, limbs, [[0, 1]], reduction="none")
    torch.testing.assert_close(per_sample, torch.tensor([[90.0, 0.0]]))
    assert M.mae(pred, target, limbs, [[0, 1]]).tolist() == [0.0]
    assert M.angle_pairs([[0, 2, 3], [0, 3]]).tolist() == [[0, 2], [2, 3], [0, 3]]
    # degenerate (zero-length) limb: denominator clamped, no NaN
    degenerate = torch.zeros(1, 1, 4, 3, 3)
    assert torch.isfinite(M.mae(degenerate, target, limbs, [[0, 1]])).all()


def test_stretch_and_jitter_hand_computed():
    # one limb (0, 1) of GT length 1; predicted lengths over time 1.1, 0.9, 1.3
    target = torch.tensor([[0.0, 0, 0], [1, 0, 0]]).expand(1, 3, 2, 3).clone()
    lengths = torch.tensor([1.1, 0.9, 1.3], dtype=torch.float64)
    pred = torch.zeros(1, 1, 3, 2, 3, dtype=torch.float64)
    pred[0, 0, :, 1, 0] = lengths
    target = target.double()
    limbs = [(0, 1)]
    assert M.stretch_mean(pred, target, limbs).item() == pytest.approx(10.0)
    assert M.stretch_rmse(pred, target, limbs).item() == pytest.approx(100 * math.sqrt((0.01 + 0.01 + 0.09) / 3))
    assert M.jitter_mean(pred, target, limbs).item() == pytest.approx(30.0)
    assert M.jitter_rmse(pred, target, limbs).item() == pytest.approx(100 * math.sqrt((0.04 + 0.16) / 2))
    assert M.stretch_mean(pred, target, limbs, percent=False).item() == pytest.approx(0.1)
    # LLVar (training validation): unbiased variance over time of 1.1, 0.9, 1.3
    assert M.limb_length_variance(pred, limbs).item() == pytest.approx(0.04)
    assert M.stretch_mean(pred, target, limbs, reduction="persample").shape == (1, 1)
    assert M.stretch_mean(pred, target, limbs, reduction="none").shape == (1, 1, 1)
    with pytest.raises(InputError, match="root dropped"):
        M.stretch_mean(pred, target, [(0, 2)])


def test_cmd_hand_computed():
    # constant speed: every joint moves 0.1 m per frame along x in every sample
    t = torch.arange(4, dtype=torch.float64)
    pred = torch.zeros(2, 3, 4, 2, 3, dtype=torch.float64)
    pred[..., 0] = 0.1 * t.view(1, 1, 4, 1)
    pred[1] *= 2  # item 1 moves 0.2 m per frame
    motion = M.motion_for_cmd(pred)
    torch.testing.assert_close(motion, torch.tensor([[0.1] * 3, [0.2] * 3], dtype=torch.float64))
    # single class: weights T-1..1 = 3, 2, 1
    assert M.cmd_single_class([1.0, 2.0], 1.0) == pytest.approx(1.0)
    assert M.cmd_single_class([0.1, 0.1, 0.1], 0.0) == pytest.approx(0.6)
    # two classes, one item each (weight 1/2); class 2 has no items and is skipped
    value = M.resolve_cmd(motion, [0, 1], [0.0, 0.1, 5.0])
    assert value == pytest.approx(0.5 * 6 * 0.1 + 0.5 * 6 * 0.1)
    # both items in class 0: mean motion 0.15
    assert M.resolve_cmd(motion, [0, 0], [0.1]) == pytest.approx(6 * 0.05)
    np.testing.assert_allclose(M.class_mean_motion(pred[:, 0], [0, 1], 3)[:2], [0.1, 0.2])
    assert np.isnan(M.class_mean_motion(pred[:, 0], [0, 1], 3)[2])
    with pytest.raises(InputError, match="out of range"):
        M.resolve_cmd(motion, [0, 3], [0.0, 0.1])


def test_apde_per_item_skips_zero_reference():
    out = M.apde_per_item(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 0.0, 4.0], dtype=torch.float64))
    assert out.dtype == torch.float64
    assert out[0].item() == pytest.approx(0.5) and math.isnan(out[1].item()) and out[2].item() == pytest.approx(1.0)


def test_validation_mpjpe_and_fde():
    target = torch.zeros(2, 61, 2, 3)
    pred = torch.zeros(2, 3, 61, 2, 3)
    pred[:, 0, :, :, 0] = 1.0  # 1 m off
    pred[:, 1, :, 0, 0] = 0.2  # joint 0 0.2 m off -> per-joint mean 0.1 (best)
    pred[:, 2, :, :, 1] = 0.3  # 0.3 m off
    best, idx = M.select_best_sample(pred, target)
    assert idx.tolist() == [1, 1]
    curve = M.mpjpe_per_frame(best, target)
    torch.testing.assert_close(curve, torch.full((2, 61), 0.1))
    assert M.mpjpe_table(torch.arange(61.0)).tolist() == [0.0, 30.0, 60.0]
    assert M.mpjpe_table(torch.arange(1000.0)).shape == (16,)
    acc = M.MPJPEAccumulator()
    acc.update(best[:1], target[:1])
    acc.update(best[1:] * 3, target[1:])  # second item 0.3 m
    res = acc.compute()
    torch.testing.assert_close(res["MPJPE"], torch.full((61,), 0.2))
    assert res["MPJPE_AVG"] == pytest.approx(0.2) and res["FDE"] == pytest.approx(0.2)


def test_ignite_validation_metrics_attach_and_match():
    from ignite.engine import Engine

    torch.manual_seed(0)
    data = [(torch.randn(3, 40, 4, 3), torch.randn(3, 40, 4, 3)) for _ in range(3)]
    engine = Engine(lambda e, batch: batch)
    for name, metric in M.ignite_metrics().items():
        metric.attach(engine, name)
    state = engine.run(data, max_epochs=1)
    y_hat = torch.cat([d[0] for d in data])
    y = torch.cat([d[1] for d in data])
    curve = (y - y_hat).norm(dim=-1).mean(dim=(0, 2))
    torch.testing.assert_close(state.metrics["MPJPE"], curve[[0, 30]])
    assert state.metrics["MPJPE_AVG"] == pytest.approx(float(curve[[0, 30]].mean()), rel=1e-6)
    assert state.metrics["FDE"] == pytest.approx(float((y - y_hat)[:, -1].norm(dim=-1).mean()), rel=1e-6)


def test_shape_errors_are_clear():
    with pytest.raises(InputError, match=r"\[B, S, T, N, 3\]"):
        M.ade(torch.zeros(2, 3, 4, 3), torch.zeros(2, 3, 4, 3))
    with pytest.raises(InputError, match="does not match"):
        M.ade(torch.zeros(2, 5, 3, 4, 3), torch.zeros(2, 4, 4, 3))
    with pytest.raises(ConfigError):
        M.metrics_for_mode("bogus")
    with pytest.raises(ConfigError, match="mm_gt"):
        M.per_item_metrics(["MMADE"], torch.zeros(1, 2, 3, 4, 3), torch.zeros(1, 3, 4, 3))


def test_stats_modes_match_official_lists():
    assert set(M.metrics_for_mode("deterministic")) == {
        "ADE", "FDE", "MAE", "APD", "StretchMean", "JitterMean", "StretchRMSE", "JitterRMSE"}  # fmt: skip
    assert set(M.metrics_for_mode("probabilistic")) == set(M.metrics_for_mode("deterministic")) | {"MMADE", "MMFDE"}
    assert set(M.metrics_for_mode("probabilistic_orig")) == {"APD", "ADE", "FDE", "MMADE", "MMFDE"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_device_agnostic_cuda():
    torch.manual_seed(0)
    pred, target = torch.randn(3, 5, 6, 4, 3), torch.randn(3, 6, 4, 3)
    limbs, chains = [(0, 1), (1, 2), (2, 3)], [[0, 1, 2]]
    cpu = M.per_item_metrics(M.PER_ITEM_METRICS, pred, target, mm_gt=[target[i : i + 1] for i in range(3)],
                             limbs=limbs, limb_angles_idx=chains)  # fmt: skip
    gpu = M.per_item_metrics(M.PER_ITEM_METRICS, pred.cuda(), target.cuda(),
                             mm_gt=[target[i : i + 1].cuda() for i in range(3)], limbs=limbs, limb_angles_idx=chains)
    for k in cpu:
        assert gpu[k].device.type == "cuda"
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# official values (metrics.npz)


@pytest.fixture(scope="module")
def official():
    d = np.load(official_fixture("metrics.npz"))
    sk = torch.load(official_fixture("skeletons.pt"), weights_only=True)["skeletons"]["amass"]
    data = {k: d[k] for k in d.files}
    data["pred_t"] = torch.from_numpy(d["pred"].astype(np.float32))
    data["gt_t"] = torch.from_numpy(d["gt"].astype(np.float32))
    data["mm_gt_t"] = [torch.from_numpy(d[f"mm_gt_{i}"].astype(np.float32)) for i in range(len(d["mm_gt_counts"]))]
    data["limbs"] = sk["metric_limbseq"].tolist()
    data["limb_angles_idx"] = sk["limb_angles_idx"]
    names = list(d["class_names"])
    data["class_idx"] = np.array([names.index(c) for c in d["classes"]])
    return data


def _close(ours, ref, rtol=1e-5):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * np.nanmax(np.abs(ref)))


def test_official_per_item_and_aggregate_values(official):
    o = official
    vals = M.per_item_metrics(M.PER_ITEM_METRICS, o["pred_t"], o["gt_t"], mm_gt=o["mm_gt_t"],
                              limbs=o["limbs"], limb_angles_idx=o["limb_angles_idx"])  # fmt: skip
    assert set(vals) == {k[len("per_item_"):] for k in o if k.startswith("per_item_")}
    for name, v in vals.items():
        _close(v.numpy(), o[f"per_item_{name}"])
        _close(v.double().mean().item(), o[f"metric_{name}"])
        if name not in ("MMADE", "MMFDE"):  # deterministic mode: same values, no multimodal metrics
            _close(v.double().mean().item(), o[f"metric_deterministic_{name}"])
        else:
            assert f"metric_deterministic_{name}" not in o


def _apd_matmul_error_bound(pred: torch.Tensor) -> np.ndarray:
    """Per-item bound on |APD(matmul path) - APD(exact)|: each pair's d² = |x|² + |y|² - 2 x·y loses
    ~eps32·(|x|² + |y|²) to cancellation, i.e. d moves by ≤ k·eps32·(|x|² + |y|²) / (2d); k = 16 (measured ≤ 5.8
    on the fixture). The mean over pairs bounds the APD error."""
    flat = pred.reshape(pred.shape[0], pred.shape[1], -1).double()
    sq = flat.square().sum(-1)
    d = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")
    iu = torch.triu_indices(pred.shape[1], pred.shape[1], offset=1)
    pair = 16 * 2.0**-24 * (sq[:, :, None] + sq[:, None, :]) / (2 * d.clamp_min(1e-12))
    return pair[:, iu[0], iu[1]].mean(-1).numpy()


def test_official_apd_matmul_path_is_within_its_rounding_bound(official):
    """The real guarantee of ``exact=False`` (the official ``torch.cdist`` matmul path): same algorithm as the
    official code, so within the float32 cancellation bound of the float64 APD and of the official value; the
    bits depend on BLAS, CPU and thread count (no bit-identity). ``exact=True`` is accurate to float32 rounding."""
    pred = official["pred_t"]
    truth = M.apd(pred.double(), exact=True).numpy()
    bound = _apd_matmul_error_bound(pred)
    ours = M.apd(pred, exact=False).numpy().astype(np.float64)
    ref = official["per_item_APD"].astype(np.float64)
    assert np.all(np.abs(ours - truth) <= bound), (np.abs(ours - truth), bound)
    assert np.all(np.abs(ref - truth) <= bound)
    assert np.all(np.abs(ours - ref) <= 2 * bound)
    assert bound.max() < 5e-4  # metres: the guarantee is sub-millimetre (APD here is 3.2-4.2 m)
    np.testing.assert_allclose(M.apd(pred, exact=True).numpy(), truth, rtol=1e-6, atol=0)


def test_official_per_sample_values(official):
    o = official
    _close(M.ade(o["pred_t"], o["gt_t"], reduction="none").numpy(), o["per_sample_ADE"])
    _close(M.fde(o["pred_t"], o["gt_t"], reduction="none").numpy(), o["per_sample_FDE"])
    for name, fn in [("StretchMean", M.stretch_mean), ("StretchRMSE", M.stretch_rmse),
                     ("JitterMean", M.jitter_mean), ("JitterRMSE", M.jitter_rmse)]:  # fmt: skip
        _close(fn(o["pred_t"], o["gt_t"], o["limbs"], reduction="persample").numpy(), o[f"per_sample_{name}"])
    combined = M.limb_realism(o["pred_t"], o["gt_t"], o["limbs"], reduction="persample")
    for name, value in combined.items():
        _close(value.numpy(), o[f"per_sample_{name}"])


def test_official_cmd_given_and_gt_derived_mean_motion(official):
    o = official
    motion = M.motion_for_cmd(o["pred_t"])
    _close(motion.numpy(), o["cmd_motion_per_item"])
    _close(M.resolve_cmd(motion, o["class_idx"], o["mean_motion_per_class"]), o["metric_CMD"])
    _close(M.resolve_cmd(motion, o["class_idx"], o["mean_motion_per_class"]), o["metric_deterministic_CMD"])
    refs = M.class_mean_motion(o["gt_t"], o["class_idx"], len(o["class_names"]))
    _close(refs, o["mean_motion_from_gt"])
    _close(M.resolve_cmd(motion, o["class_idx"], refs), o["metric_CMD_with_mean_motion_from_gt"])


def test_official_apde_skips_zero_rows(official):
    o = official
    per_item = M.apde_per_item(M.apd(o["pred_t"], exact=False), torch.from_numpy(o["mmapd_gt"])).numpy()
    np.testing.assert_array_equal(np.isnan(per_item), np.isnan(o["apde_per_item"]))
    _close(per_item, o["apde_per_item"])
    _close(np.nanmean(per_item), o["metric_APDE"])
    exact = M.apde_per_item(M.apd(o["pred_t"]), torch.from_numpy(o["mmapd_gt"])).numpy()
    _close(np.nanmean(exact), o["metric_APDE"])


def test_skeleton_module_matches_official_metric_limbs(official):
    import skeleton_diffusion.skeletons as skeletons

    sk = skeletons.get_skeleton("amass")
    assert [tuple(p) for p in sk.node_limbs] == [tuple(p) for p in official["limbs"]]
    assert [list(c) for c in sk.limb_angles_idx] == [list(c) for c in official["limb_angles_idx"]]
    counts = {"amass": 19, "h36m": 12, "freeman": 14}
    for name, n in counts.items():
        assert M.angle_pairs(skeletons.get_skeleton(name).limb_angles_idx).shape == (n, 2)


# ----------------------------------------------------------------------------------------------------------
# FID


def test_fid_classifier_shapes_and_identity():
    torch.manual_seed(0)
    clf = ClassifierForFID().eval()
    assert set(clf.state_dict()) >= {"recurrent.weight_ih_l0", "recurrent.weight_hh_l1", "linear1.weight", "linear2.bias"}
    motion = torch.randn(6, 2, 20, 16, 3) * 0.3
    gen = torch.Generator().manual_seed(1)
    feats = fid_features(clf, motion, generator=gen)
    assert feats.shape == (12, 30) and feats.abs().max() <= 1.0
    assert clf(motion.reshape(12, 20, 48).permute(0, 2, 1)).shape == (12, 15)
    act = feats.numpy()
    assert abs(fid(act, act)) < 1e-6
    assert fid(act, act + 0.5) == pytest.approx(0.25 * 30, rel=1e-6)  # pure mean shift
    # random initial hidden state (official) vs deterministic zeros
    zero_clf = ClassifierForFID(hidden_init="zeros").eval()
    zero_clf.load_state_dict(clf.state_dict())
    torch.testing.assert_close(fid_features(zero_clf, motion), fid_features(zero_clf, motion))
    assert not torch.equal(fid_features(clf, motion), fid_features(clf, motion))
    acc = FIDAccumulator(zero_clf)
    acc.update(motion[:, None], motion)
    assert abs(acc.compute()) < 1e-6
    with pytest.raises(InputError, match="16, 3"):
        fid_features(clf, torch.zeros(2, 10, 21, 3))


def test_frechet_distance_closed_form():
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    # ||dmu||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) = 5 + (10 - 2 * 4)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(7.0)


def test_load_fid_classifier(tmp_path):
    torch.manual_seed(0)
    clf = ClassifierForFID()
    path = tmp_path / "h36m_classifier.pth"
    torch.save({"model": clf.state_dict()}, path)
    with pytest.warns(UserWarning, match="not BeLFusion"):
        loaded = load_fid_classifier(path, hidden_init="zeros")
    assert not loaded.training
    for k, v in clf.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    with pytest.raises(CheckpointError, match="not found"):
        load_fid_classifier(tmp_path / "missing.pth")
    torch.save({"model": {"bogus": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="state dict"), pytest.warns(UserWarning):
        load_fid_classifier(tmp_path / "bad.pth")
