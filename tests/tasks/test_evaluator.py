"""Evaluator loop, baselines and seed aggregation (spec data_eval §6.0, §6.13)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import official_fixture
from skeleton_diffusion.methods.zero_velocity.predictor import GroundTruthOracle, ZeroVelocityBaseline, zero_velocity
from skeleton_diffusion.tasks.hmp.evaluator import aggregate_seeds, evaluate
from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, InputError

PBS = 1.2


def _batches(obs, fut, extra_items, batch_size, order=None):
    """Collate like the data layer: tensors stacked, mm_gt kept as a list, class/segment indices as LongTensors."""
    n = obs.shape[0]
    order = list(range(n)) if order is None else list(order)
    out = []
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        extra = {
            "segment_idx": torch.tensor(idx, dtype=torch.long),
            "class_idx": torch.tensor([extra_items["class_idx"][i] for i in idx], dtype=torch.long),
        }
        if "mm_gt" in extra_items:
            extra["mm_gt"] = [extra_items["mm_gt"][i] for i in idx]
        out.append((obs[idx], fut[idx], extra))
    return out


class StoredPredictor:
    """Returns stored input-space predictions in loader order (obs carries the row index in its first value)."""

    def __init__(self, pred_input):
        self.pred = pred_input

    def __call__(self, obs, num_samples):
        rows = obs[:, 0, 0, 0].round().long().cpu()
        return self.pred[rows][:, :num_samples]


@pytest.fixture(scope="module")
def official_set():
    d = np.load(official_fixture("metrics.npz"))
    sk = torch.load(official_fixture("skeletons.pt"), weights_only=True)["skeletons"]["amass"]
    pbs = float(d["pose_box_size"])
    gt = torch.from_numpy(d["gt"].astype(np.float32))
    n = gt.shape[0]
    obs = torch.zeros(n, 30, gt.shape[2], 3)
    obs[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)  # row tag for StoredPredictor
    names = list(d["class_names"])
    return SimpleNamespace(
        d=d,
        pbs=pbs,
        obs=obs,
        fut=gt / pbs,
        pred=torch.from_numpy(d["pred"].astype(np.float32)) / pbs,
        items={
            "class_idx": [names.index(c) for c in d["classes"]],
            "mm_gt": [torch.from_numpy(d[f"mm_gt_{i}"].astype(np.float32)) / pbs for i in range(n)],
        },
        skeleton=SimpleNamespace(node_limbs=sk["metric_limbseq"].tolist(), limb_angles_idx=sk["limb_angles_idx"]),
    )


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_evaluate_matches_official_probabilistic(official_set, batch_size):
    o = official_set
    loader = _batches(o.obs, o.fut, o.items, batch_size)
    res = evaluate(StoredPredictor(o.pred), loader, o.skeleton, o.pbs, stats_mode="probabilistic",
                   num_samples=50, mean_motion_per_class=o.d["mean_motion_per_class"], mmapd_gt=o.d["mmapd_gt"],
                   device="cpu", progress=False, exact_apd=False)  # fmt: skip
    expected = {k[len("metric_"):]: float(o.d[k]) for k in o.d.files
                if k.startswith("metric_") and not k.startswith(("metric_deterministic", "metric_CMD_with"))}  # fmt: skip
    assert set(res["metrics"]) == set(expected)
    for name, ref in expected.items():
        assert res["metrics"][name] == pytest.approx(ref, rel=1e-5), name
    assert res["num_windows"] == 4 and res["num_samples"] == 50


def test_evaluate_deterministic_mode_and_gt_mean_motion(official_set):
    o = official_set
    loader = _batches(o.obs, o.fut, {"class_idx": o.items["class_idx"]}, 2)  # no mm_gt loaded
    res = evaluate(StoredPredictor(o.pred), loader, o.skeleton, o.pbs, stats_mode="deterministic",
                   mean_motion_per_class=o.d["mean_motion_from_gt"], device="cpu", progress=False)  # fmt: skip
    expected = {k[len("metric_deterministic_"):]: float(o.d[k]) for k in o.d.files if k.startswith("metric_deterministic_")}
    assert set(res["metrics"]) == set(expected)  # no MMADE/MMFDE/APDE
    for name, ref in expected.items():
        if name == "CMD":
            ref = float(o.d["metric_CMD_with_mean_motion_from_gt"])
        assert res["metrics"][name] == pytest.approx(ref, rel=1e-5), name


def test_apde_rows_follow_segment_idx_when_shuffled(official_set):
    o = official_set
    loader = _batches(o.obs, o.fut, o.items, 2, order=[3, 1, 0, 2])
    res = evaluate(StoredPredictor(o.pred), loader, o.skeleton, o.pbs, metrics=["APD", "APDE", "CMD"],
                   mean_motion_per_class=o.d["mean_motion_per_class"], mmapd_gt=o.d["mmapd_gt"],
                   device="cpu", progress=False, exact_apd=False, return_per_item=True)  # fmt: skip
    assert res["metrics"]["APDE"] == pytest.approx(float(o.d["metric_APDE"]), rel=1e-6)
    assert res["metrics"]["CMD"] == pytest.approx(float(o.d["metric_CMD"]), rel=1e-6)
    np.testing.assert_allclose(res["per_item"]["APD"], o.d["per_item_APD"][[3, 1, 0, 2]], rtol=1e-6)


def _toy_set(n=5, t_obs=4, t_pred=6, nodes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, t_obs, nodes, 3, generator=g) * 0.3
    fut = obs[:, -1:] + torch.cumsum(torch.randn(n, t_pred, nodes, 3, generator=g) * 0.02, dim=1)
    mm = []
    for i in range(n):  # item i: its own future plus i % 3 others
        others = [(i + k) % n for k in range(1, 1 + i % 3)]
        mm.append(fut[[i] + others])
    items = {"class_idx": [i % 2 for i in range(n)], "mm_gt": mm}
    skeleton = SimpleNamespace(node_limbs=[(0, 1), (1, 2), (2, 3), (0, 3)], limb_angles_idx=[[0, 1, 2], [3, 0]])
    return obs, fut, items, skeleton


def test_ground_truth_oracle_is_perfect():
    obs, fut, items, skeleton = _toy_set()
    loader = _batches(obs, fut, items, 2)
    res = evaluate(GroundTruthOracle(), loader, skeleton, PBS, num_samples=3, device="cpu", progress=False,
                   return_per_item=True)  # fmt: skip
    m = res["metrics"]
    for name in ("ADE", "FDE", "APD", "MAE", "StretchMean"):
        assert m[name] == pytest.approx(0.0, abs=1e-5), name
    # the toy GT is not rigid: StretchRMSE of the oracle is the GT's own limb-length spread (std / mean)
    f = fut.double().numpy() * PBS
    ll = np.stack([np.linalg.norm(f[..., a, :] - f[..., b, :], axis=-1) for a, b in skeleton.node_limbs], -1)
    assert m["StretchRMSE"] == pytest.approx(100 * np.mean(ll.std(axis=1) / ll.mean(axis=1)), rel=1e-5)
    mm_sizes = np.array([len(g) for g in items["mm_gt"]])
    assert (res["per_item"]["MMADE"][mm_sizes == 1] == 0).all()
    assert (res["per_item"]["MMADE"][mm_sizes > 1] > 0).all()
    # a perturbed oracle keeps the best-of-S metrics at 0 but becomes diverse
    noisy = evaluate(GroundTruthOracle(perturb_std=0.1, generator=torch.Generator().manual_seed(0)),
                     _batches(obs, fut, items, 2), skeleton, PBS, num_samples=4, device="cpu", progress=False)  # fmt: skip
    assert noisy["metrics"]["ADE"] == pytest.approx(0.0, abs=1e-6) and noisy["metrics"]["APD"] > 0.1


def test_zero_velocity_baseline_hand_computed():
    obs, fut, items, skeleton = _toy_set()
    refs = [0.01, 0.03]
    mmapd = np.array([0.0, 1.5, 0.7, 0.0, 2.0])
    res = evaluate(ZeroVelocityBaseline(), _batches(obs, fut, items, 2), skeleton, PBS, num_samples=50,
                   mean_motion_per_class=refs, mmapd_gt=mmapd, device="cpu", progress=False)  # fmt: skip
    m = res["metrics"]
    assert res["num_samples"] == 1  # deterministic: one sample whatever is asked
    # by hand in metres, float64 numpy loops
    o, f = obs.double().numpy() * PBS, fut.double().numpy() * PBS
    n, t_pred = f.shape[:2]
    ade = [np.mean([np.linalg.norm((f[i, t] - o[i, -1]).ravel()) for t in range(t_pred)]) for i in range(n)]
    fde = [np.linalg.norm((f[i, -1] - o[i, -1]).ravel()) for i in range(n)]
    mmade = [np.mean([np.mean([np.linalg.norm((g[t] - o[i, -1]).ravel()) for t in range(t_pred)])
                      for g in items["mm_gt"][i].double().numpy() * PBS]) for i in range(n)]  # fmt: skip

    def lengths(x):  # [..., nodes, 3] -> [..., L]
        return np.stack([np.linalg.norm(x[..., a, :] - x[..., b, :], axis=-1) for a, b in skeleton.node_limbs], -1)

    stretch = [np.mean(np.abs(lengths(o[i, -1]) - lengths(f[i]).mean(0)) / lengths(f[i]).mean(0)) * 100 for i in range(n)]
    assert m["ADE"] == pytest.approx(np.mean(ade), rel=1e-5)
    assert m["FDE"] == pytest.approx(np.mean(fde), rel=1e-5)
    assert m["MMADE"] == pytest.approx(np.mean(mmade), rel=1e-5)
    assert m["StretchMean"] == pytest.approx(np.mean(stretch), rel=1e-5)
    assert m["APD"] == 0.0 and m["JitterMean"] == 0.0 and m["JitterRMSE"] == 0.0
    # no motion: CMD = sum_c w_c * ref_c * sum_t (T - t) = sum_c w_c * ref_c * T(T-1)/2
    w = np.bincount(items["class_idx"]) / n
    assert m["CMD"] == pytest.approx(float(np.dot(w, refs)) * t_pred * (t_pred - 1) / 2, rel=1e-6)
    # APD = 0, so APDE = mean of the non-zero gt_APD values
    assert m["APDE"] == pytest.approx(mmapd[mmapd > 0].mean(), rel=1e-6)


def test_zero_velocity_function():
    obs = torch.arange(24.0).reshape(1, 2, 4, 3)
    out = zero_velocity(obs, pred_length=5, num_samples=2)
    assert out.shape == (1, 2, 5, 4, 3) and torch.equal(out[0, 1, 4], obs[0, -1])
    with pytest.raises(InputError):
        zero_velocity(obs[0], 5)


def test_store_output_streams_npz(tmp_path):
    obs, fut, items, skeleton = _toy_set()
    path = tmp_path / "preds" / "out.npz"
    res = evaluate(GroundTruthOracle(perturb_std=0.01), _batches(obs, fut, items, 2), skeleton, PBS,
                   num_samples=3, device="cpu", progress=False, store_output=path)  # fmt: skip
    assert res["output_path"] == str(path)
    with np.load(path) as z:
        assert z["pred"].shape == (5, 3, 6, 4, 3) and z["pred"].dtype == np.float32
        np.testing.assert_allclose(z["gt"], fut.numpy() * PBS, rtol=1e-6)
        np.testing.assert_allclose(z["pred"][:, 0], fut.numpy() * PBS, rtol=1e-6)
        np.testing.assert_allclose(z["obs"], obs.numpy() * PBS, rtol=1e-6)
        assert z["segment_idx"].tolist() == list(range(5)) and float(z["pose_box_size"]) == PBS
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.npz"]  # no temporaries left


def test_seeded_runs_reproduce_and_aggregate():
    obs, fut, items, skeleton = _toy_set()

    def sampler(obs, num_samples):  # stochastic predictor drawing from the global RNG
        return obs[:, -1:, None].expand(-1, num_samples, 6, -1, -1) + 0.05 * torch.randn(obs.shape[0], num_samples, 6, 4, 3)

    runs = [evaluate(sampler, _batches(obs, fut, items, 2), skeleton, PBS, num_samples=4, seed=s,
                     device="cpu", progress=False) for s in (0, 1, 0)]  # fmt: skip
    assert runs[0]["metrics"] == runs[2]["metrics"] and runs[0]["metrics"] != runs[1]["metrics"]
    agg = aggregate_seeds(runs[:2])
    ade = [r["metrics"]["ADE"] for r in runs[:2]]
    assert agg["ADE"]["mean"] == pytest.approx(np.mean(ade)) and agg["ADE"]["std"] == pytest.approx(np.std(ade, ddof=1))
    assert agg["ADE"]["n"] == 2 and list(agg)[:2] == ["ADE", "FDE"]
    assert aggregate_seeds([{"ADE": 1.0}])["ADE"]["std"] == 0.0
    with pytest.raises(ConfigError):
        aggregate_seeds([])


def test_evaluator_errors_are_clear():
    obs, fut, items, skeleton = _toy_set()
    bad = lambda o, s: torch.zeros(o.shape[0], s, 5, 4, 3)  # wrong horizon  # noqa: E731
    with pytest.raises(InputError, match="expected"):
        evaluate(bad, _batches(obs, fut, items, 2), skeleton, PBS, device="cpu", progress=False)
    no_mm = _batches(obs, fut, {"class_idx": items["class_idx"]}, 2)
    with pytest.raises(DataFormatError, match="mm_gt"):
        evaluate(GroundTruthOracle(), no_mm, skeleton, PBS, num_samples=2, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="mean_motion_per_class"):
        evaluate(GroundTruthOracle(), no_mm, skeleton, PBS, metrics=["CMD"], device="cpu", progress=False)
    with pytest.raises(DataFormatError, match="outside mmapd_GT"):
        evaluate(GroundTruthOracle(), no_mm, skeleton, PBS, metrics=["APDE"], mmapd_gt=[0.0, 1.0],
                 num_samples=2, device="cpu", progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="pose_box_size"):
        evaluate(GroundTruthOracle(), no_mm, skeleton, -1.0, device="cpu", progress=False)
    nan_pred = lambda o, s: torch.full((o.shape[0], s, 6, 4, 3), math.nan)  # noqa: E731
    with pytest.raises(InputError, match="NaN"):
        evaluate(nan_pred, no_mm, skeleton, PBS, stats_mode="deterministic", device="cpu", progress=False)


def test_max_batches_and_progress_bar(capsys):
    obs, fut, items, skeleton = _toy_set()
    res = evaluate(GroundTruthOracle(), _batches(obs, fut, items, 2), skeleton, PBS, num_samples=2,
                   device="cpu", progress=True, max_batches=2)  # fmt: skip
    assert res["num_windows"] == 4


def test_load_mmapd_gt_real_annotations(annotations_dir):
    from skeleton_diffusion.tasks.hmp.evaluator import load_mmapd_gt

    amass = load_mmapd_gt(annotations_dir / "AMASS" / "hmp" / "mmapd_GT.csv")
    h36m = load_mmapd_gt(annotations_dir / "Human36M" / "hmp" / "mmapd_GT.csv")
    assert amass.shape == (12727,) and int((amass == 0).sum()) == 2643  # singleton MMGT sets
    assert h36m.shape == (5168,) and int((h36m == 0).sum()) == 73
    assert amass[1] == pytest.approx(10.732049942016602)


def test_load_mmapd_gt_orders_by_id_and_rejects_bad_files(tmp_path):
    from skeleton_diffusion.tasks.hmp.evaluator import load_mmapd_gt

    good = tmp_path / "mmapd_GT.csv"
    good.write_text("id,gt_APD\n1,2.5\n0,0.0\n2,1.0\n")
    assert load_mmapd_gt(good).tolist() == [0.0, 2.5, 1.0]
    gap = tmp_path / "gap.csv"
    gap.write_text("id,gt_APD\n0,1.0\n2,1.0\n")
    with pytest.raises(DataFormatError, match="without gaps"):
        load_mmapd_gt(gap)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,apd\n0,1.0\n")
    with pytest.raises(DataFormatError, match="gt_APD"):
        load_mmapd_gt(wrong)
    with pytest.raises(DataFormatError, match="not found"):
        load_mmapd_gt(tmp_path / "missing.csv")


def test_end_to_end_on_small_synthetic_dataset(tmp_path):
    """Real data layer -> evaluator: zero-velocity and oracle on the embedded synthetic test set."""
    import skeleton_diffusion.data as data
    from omegaconf import OmegaConf

    from skeleton_diffusion.apps.create_synthetic_dataset import main as create_synthetic
    from skeleton_diffusion.tasks.hmp.evaluator import load_mmapd_gt
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    folder = tmp_path / "processed" / "Synthetic" / "hmp"
    assert create_synthetic(["--out", str(folder), "--small"]) in (0, None)
    cfg = OmegaConf.load(__import__("pathlib").Path(__file__).resolve().parents[2] / "configs/dataset/synthetic.yaml")
    sk = get_skeleton("amass")
    ds = data.build_dataset(cfg, "test", pose_box_size=1.2, skeleton=sk, dataset_main_path=tmp_path,
                            if_load_mmgt=True, if_compute_cmd=True)  # fmt: skip
    loader = data.build_dataloader(ds, batch_size=4, seed=0)
    mmapd = load_mmapd_gt(folder / "mmapd_GT.csv")
    kw = dict(stats_mode="probabilistic", mean_motion_per_class=ds.mean_motion_per_class, mmapd_gt=mmapd,
              device="cpu", progress=False, return_per_item=True)  # fmt: skip
    zv = evaluate(ZeroVelocityBaseline(), loader, sk, 1.2, num_samples=50, **kw)
    oracle = evaluate(GroundTruthOracle(), loader, sk, 1.2, num_samples=3, **kw)
    assert zv["num_windows"] == oracle["num_windows"] == len(ds) == len(mmapd)
    assert zv["metrics"]["APD"] == 0 and zv["metrics"]["JitterMean"] == 0 and zv["metrics"]["ADE"] > 0.05
    assert zv["metrics"]["APDE"] == pytest.approx(mmapd[mmapd > 0].mean(), rel=1e-6)
    assert oracle["metrics"]["ADE"] == pytest.approx(0, abs=1e-6) and oracle["metrics"]["FDE"] == pytest.approx(0, abs=1e-6)
    sizes = np.array([len(ds[i][2]["mm_gt"]) for i in range(len(ds))])
    assert ((oracle["per_item"]["MMADE"] > 0) == (sizes > 1)).all()
    assert oracle["metrics"]["CMD"] < zv["metrics"]["CMD"]  # the oracle moves like the data, zero velocity does not


def test_evaluate_with_fid_classifier():
    from skeleton_diffusion.metrics.fid import ClassifierForFID

    torch.manual_seed(0)
    clf = ClassifierForFID(hidden_init="zeros").eval()
    obs, fut, items, _ = _toy_set(n=6, nodes=16)
    skeleton = SimpleNamespace(node_limbs=[(i, i + 1) for i in range(15)], limb_angles_idx=[[0, 1, 2]])
    loader = _batches(obs, fut, {"class_idx": items["class_idx"]}, 4)
    kw = dict(stats_mode="deterministic", device="cpu", progress=False, fid_classifier=clf)
    same = evaluate(GroundTruthOracle(), loader, skeleton, PBS, num_samples=1, **kw)
    assert list(same["metrics"])[-1] == "FID" and abs(same["metrics"]["FID"]) < 1e-6
    other = evaluate(ZeroVelocityBaseline(), loader, skeleton, PBS, num_samples=1, **kw)
    assert other["metrics"]["FID"] > 1e-4
