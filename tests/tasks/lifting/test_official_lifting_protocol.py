"""eval.py task=lifting on converted official runs: tiny VideoPose3D-format H36M files and official-format
checkpoints written here -> convert -> the official protocol (tasks/lifting/official.py).

Expected values are computed here from the arrays this test wrote: our own camera transform, GMM kernel draws in
the official order, per-action means and the /15 average in numpy; the lifters themselves are checked against
the official fixtures in tests/methods/{diffpose,diffhpe}."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from skeleton_diffusion.data.builders.h36m_cameras import camera_parameters
from skeleton_diffusion.data.builders.videopose3d import (
    H36M_32_TO_17, load_videopose3d_3d, write_videopose3d_2d, write_videopose3d_3d)
from skeleton_diffusion.methods import registry
from skeleton_diffusion.methods.diffhpe.model import LiftingDiffusionModel
from skeleton_diffusion.methods.diffhpe.occlusion import official_occlusion_mask
from skeleton_diffusion.methods.diffpose.networks import GCNdiff, GCNpose
from skeleton_diffusion.methods.diffpose.video import MixSTE2
from skeleton_diffusion.representations.camera import normalize_screen_coordinates, world_to_camera
from skeleton_diffusion.tasks.lifting.protocol import main as evaluate_lifting
from skeleton_diffusion.tasks.results import load_results
from skeleton_diffusion.utils.errors import ConfigError, DataFormatError

T = 12
ACTIONS = {"S9": ("Walking 1", "Eating"), "S11": ("Walking", "Eating 2")}
# float32 networks evaluated on the same inputs in a different batch split: measured differences ~1e-6 mm; 1e-3 mm
TOL_MM = 1e-3


def _load(path, device="cpu"):
    """What eval.py's lifting loader does: the registry's ``load`` hook of the checkpoint's method."""
    return registry.get_method(registry.method_of_checkpoint(path)).hook("load")(path, device=device)


@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    """data_3d_h36m.npz, data_2d_h36m_cpn_ft_h36m_dbb.npz (pixels) and data_2d_h36m_gt_gmm.npz (K = 2)."""
    root = tmp_path_factory.mktemp("videopose3d")
    rng = np.random.default_rng(0)
    pos3d, pos2d, gmm = {}, {}, {}
    for s, acts in ACTIONS.items():
        pos3d[s], pos2d[s], gmm[s] = {}, {}, {}
        for a in acts:
            base = rng.normal(scale=0.25, size=(1, 32, 3))
            base[..., 2] += 1.0
            pos3d[s][a] = (base + rng.normal(scale=0.02, size=(T, 32, 3))).astype(np.float32)
            pos2d[s][a] = [rng.uniform(0, 1000, size=(T + 2, 17, 2)).astype(np.float32) for _ in range(4)]
            cams = []
            for _ in range(4):
                g = np.zeros((T + 1, 17, 2, 5), np.float32)
                w = rng.uniform(0.2, 0.8, size=(T + 1, 17))
                g[..., 0, 0], g[..., 1, 0] = w, 1 - w
                g[..., 1:3] = rng.uniform(0, 1000, size=(T + 1, 17, 2, 2))
                g[..., 3:] = rng.uniform(0.5, 2, size=(T + 1, 17, 2, 2))
                cams.append(g)
            gmm[s][a] = cams
    write_videopose3d_3d(root / "data_3d_h36m.npz", pos3d)
    write_videopose3d_2d(root / "data_2d_h36m_cpn_ft_h36m_dbb.npz", pos2d)
    obj = np.empty((), dtype=object)
    obj[()] = gmm
    np.savez(root / "data_2d_h36m_gt_gmm.npz", positions_2d=obj)
    return {"root": root, "pos3d": pos3d, "pos2d": pos2d, "gmm": gmm}


def _targets(h36m):
    """Per sequence in official order: (action, camera-frame root-relative [T, 17, 3], cpn 2D, gmm)."""
    out = []
    for s, acts in ACTIONS.items():
        for a in acts:
            for c in range(4):
                cam = camera_parameters(s, c)
                p = world_to_camera(h36m["pos3d"][s][a][:, list(H36M_32_TO_17)], cam["orientation"],
                                    cam["translation"])
                kps = normalize_screen_coordinates(h36m["pos2d"][s][a][c][:T], cam["res_w"], cam["res_h"])
                g = h36m["gmm"][s][a][c][:T].copy()
                g[..., 1:3] = g[..., 1:3] / cam["res_w"] * 2 - np.array([1, cam["res_h"] / cam["res_w"]])
                out.append((a.split(" ")[0], (p - p[:, :1]).astype(np.float32), kps.astype(np.float32), g))
    return out


def _cfg(run, data_dir, out, **official):
    return OmegaConf.create({"checkpoint_path": str(run), "results_path": str(out), "seed": 3, "device": "cpu",
                             "progress": False, "task": {"task_name": "lifting",
                                                         "official": {"data_dir": str(data_dir), **official}}})


def _diffpose_frame_run(tmp_path, preset_2d="data_2d_h36m_gt_gmm.npz"):
    from skeleton_diffusion.methods.diffpose import convert

    torch.manual_seed(0)
    den, pri = GCNdiff(hid_dim=16, num_layer=1, n_head=2), GCNpose(hid_dim=16, num_layer=1, n_head=2)
    src = tmp_path / "official"
    src.mkdir()
    dp = lambda m: OrderedDict(("module." + k, v) for k, v in m.state_dict().items())   # noqa: E731
    torch.save([dp(den), {"state": {}, "param_groups": []}, 5, 50, dp(den)], src / "diffpose_uvxyz_gt.pth")
    torch.save([dp(pri), {"state": {}, "param_groups": []}, 5, 50], src / "gcn_xyz_gt.pth")
    (src / "cfg.yml").write_text(yaml.safe_dump({
        "data": {"dataset_path_test_2d": f"./data/{preset_2d}"},
        "model": {"hid_dim": 16, "num_layer": 1, "n_head": 2, "dropout": 0.25},
        "diffusion": {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 1e-3, "num_diffusion_timesteps": 51},
        "testing": {"test_times": 1, "test_timesteps": 2, "test_num_diffusion_timesteps": 12}}))
    convert(src / "diffpose_uvxyz_gt.pth", tmp_path / "run", prior=src / "gcn_xyz_gt.pth", config=src / "cfg.yml")
    return tmp_path / "run"


def _gmm_inputs(seqs):
    """PoseGenerator_gmm's draws after np.random.seed(19960903): frames in order, joints in order."""
    rng = np.random.RandomState(19960903)
    g = np.concatenate([s[3] for s in seqs])
    return np.stack([[g[i, j, rng.choice(2, 1, p=g[i, j, :, 0]).item(), 1:3] for j in range(17)]
                     for i in range(len(g))]).astype(np.float32)


@pytest.mark.slow
def test_diffpose_frame_official_protocol_end_to_end(h36m, tmp_path):
    run = _diffpose_frame_run(tmp_path)
    out = evaluate_lifting(_cfg(run, h36m["root"], tmp_path / "res"), _load)
    res = load_results(tmp_path / "res")
    seqs = _targets(h36m)
    gt = np.concatenate([s[1] for s in seqs])
    acts = np.array([s[0] for s in seqs for _ in range(T)])
    pred = _load(run).lift(torch.from_numpy(_gmm_inputs(seqs)), 1)[:, 0].numpy()
    err = np.linalg.norm((pred - pred[:, :1]) - gt, axis=-1).mean(-1) * 1000
    per = {a: err[acts == a].mean() for a in ("Eating", "Walking")}
    assert res["extra"]["per_action"]["MPJPE"] == pytest.approx(per, abs=TOL_MM)
    # official: the sum over the 15 actions / 15 with absent actions counting 0 (only 2 present here)
    assert res["metrics"]["MPJPE"]["mean"] == pytest.approx(sum(per.values()) / 15, abs=TOL_MM)
    # one batch of 1024 mixing both actions: every pose credited the batch-mean P-MPJPE (official defect)
    p2 = out["runs"][0]["per_action"]["PMPJPE"]
    assert p2["Eating"] == pytest.approx(p2["Walking"], abs=1e-9)
    # N-MPJPE uncentred (s = <p, g>/<p, p> on the raw prediction)
    s = (pred * gt).sum((1, 2), keepdims=True) / (pred ** 2).sum((1, 2), keepdims=True)
    nerr = np.linalg.norm(s * pred - gt, axis=-1).mean(-1) * 1000
    assert res["metrics"]["NMPJPE"]["mean"] == pytest.approx(sum(nerr[acts == a].mean() for a in per) / 15,
                                                             abs=TOL_MM)

    # the switches: mean over the actions present; per-pose P-MPJPE
    evaluate_lifting(_cfg(run, h36m["root"], tmp_path / "res2", action_average="present", mixed_batch_p2=False),
                     _load)
    res2 = load_results(tmp_path / "res2")
    assert res2["metrics"]["MPJPE"]["mean"] == pytest.approx(np.mean(list(per.values())), abs=TOL_MM)
    assert res2["extra"]["per_action"]["PMPJPE"]["Eating"] != pytest.approx(
        res2["extra"]["per_action"]["PMPJPE"]["Walking"], abs=1e-6)

    # action filter: only Walking (the GMM draws then run over its frames alone); official average = error / 15
    evaluate_lifting(_cfg(run, h36m["root"], tmp_path / "res3", actions=["Walking"]), _load)
    walk = [s for s in seqs if s[0] == "Walking"]
    pred = _load(run).lift(torch.from_numpy(_gmm_inputs(walk)), 1)[:, 0].numpy()
    err = np.linalg.norm((pred - pred[:, :1]) - np.concatenate([s[1] for s in walk]), axis=-1).mean() * 1000
    assert load_results(tmp_path / "res3")["metrics"]["MPJPE"]["mean"] == pytest.approx(err / 15, abs=TOL_MM)


@pytest.mark.slow
def test_diffpose_video_official_protocol(h36m, tmp_path):
    from skeleton_diffusion.methods.diffpose import convert

    torch.manual_seed(1)
    den = GCNdiff(hid_dim=16, num_layer=1, n_head=2)
    mix = MixSTE2(num_frame=5, num_joints=17, embed_dim_ratio=16, depth=1, num_heads=2)
    src = tmp_path / "official"
    src.mkdir()
    torch.save([OrderedDict(("module." + k, v) for k, v in den.state_dict().items()), {}, 1, 1],
               src / "diffpose_video_uvxyz_cpn.pth")
    torch.save({"model_pos": mix.state_dict(), "epoch": 1}, src / "mixste_cpn_5f.bin")
    (src / "cfg.yml").write_text(yaml.safe_dump({     # the Diffpose_video CPN test settings, small network
        "data": {"dataset_path_test_2d": "./data/data_2d_h36m_cpn_ft_h36m_dbb.npz"},
        "model": {"hid_dim": 16, "num_layer": 1, "n_head": 2},
        "diffusion": {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 1e-3, "num_diffusion_timesteps": 51},
        "testing": {"test_times": 1, "test_timesteps": 1, "test_num_diffusion_timesteps": 6}}))
    convert(src / "diffpose_video_uvxyz_cpn.pth", tmp_path / "run", prior=src / "mixste_cpn_5f.bin",
            config=src / "cfg.yml", variant="video", mixste_heads=2)
    evaluate_lifting(_cfg(tmp_path / "run", h36m["root"], tmp_path / "res"), _load)
    res = load_results(tmp_path / "res")
    lifter = _load(tmp_path / "run")
    seqs = _targets(h36m)
    sums = {}
    for a, gt, kps, _ in seqs:
        pred = lifter.lift(torch.from_numpy(kps), 1)[0, 0].numpy()
        e = np.linalg.norm(pred - gt, axis=-1).mean(-1) * 1000
        v = np.linalg.norm(np.diff(pred, axis=0) - np.diff(gt, axis=0), axis=-1).mean() * 1000
        acc = sums.setdefault(a, [0.0, 0.0, 0])
        acc[0] += e.sum()
        acc[1] += v * T
        acc[2] += T
    per = {a: acc[0] / acc[2] for a, acc in sums.items()}
    assert res["extra"]["per_action"]["MPJPE"] == pytest.approx(per, abs=TOL_MM)
    # video: the plain mean over the actions evaluated
    assert res["metrics"]["MPJPE"]["mean"] == pytest.approx(np.mean(list(per.values())), abs=TOL_MM)
    assert res["metrics"]["MPJVE"]["mean"] == pytest.approx(np.mean([acc[1] / acc[2] for acc in sums.values()]),
                                                    abs=TOL_MM)
    assert res["extra"]["protocol"]["test_2d"] == "data_2d_h36m_cpn_ft_h36m_dbb.npz"


DIFFHPE_CFG = {"layers": 1, "channels": 8, "diffusion_embedding_dim": 8, "num_steps": 4, "schedule": "cosine",
               "beta_start": 1e-4, "beta_end": 0.5, "use_nonlocal": False, "conditioning": "raw", "p_dropout": 0.1}


@pytest.mark.slow
def test_diffhpe_official_protocol_with_occlusion(h36m, tmp_path):
    from skeleton_diffusion.methods.diffhpe import convert

    torch.manual_seed(2)
    src = tmp_path / "official"
    src.mkdir()
    torch.save(LiftingDiffusionModel(DIFFHPE_CFG, 5).state_dict(), src / "model.pth")
    (src / "config.yaml").write_text(yaml.safe_dump({"diffusion": DIFFHPE_CFG, "data": {"seq_len": 5}}))
    convert(src, tmp_path / "run")
    evaluate_lifting(_cfg(tmp_path / "run", h36m["root"], tmp_path / "res", miss_type="structured_frame",
                          num_samples=2), _load)
    res = load_results(tmp_path / "res")
    # independent replay: windows of 5 (drop_last: 2 per 12-frame sequence), one RandomState(seed) for the masks
    # (official conf/data rate 0.2 for structured_frame), one CPU generator for the samples, 2 samples averaged
    lifter = _load(tmp_path / "run")
    rng, gen = np.random.RandomState(3), torch.Generator().manual_seed(3)
    errs = {}
    for a, gt, kps, _ in _targets(h36m):
        x = torch.from_numpy(kps[:10]).reshape(2, 5, 17, 2)
        mask = torch.from_numpy(np.stack([official_occlusion_mask("structured_frame", 5, 17, 0.2, rng)
                                          for _ in range(2)])).float()
        pred = lifter.lift(x, 2, mask=mask, generator=gen).mean(1).reshape(10, 17, 3).numpy()
        errs.setdefault(a, []).append(np.linalg.norm(pred - gt[:10], axis=-1).mean(-1) * 1000)
    per = {a: np.concatenate(v).mean() for a, v in errs.items()}
    assert res["extra"]["per_action"]["MPJPE"] == pytest.approx(per, abs=TOL_MM)
    assert res["metrics"]["MPJPE"]["mean"] == pytest.approx(np.mean(list(per.values())), abs=TOL_MM)
    assert {"BoneStd", "Asymmetry", "MPJVE", "PMPJPE"} <= set(res["metrics"])
    assert res["extra"]["protocol"]["miss_type"] == "structured_frame"


def test_converted_run_needs_loader_and_data_dir(h36m, tmp_path):
    run = _diffpose_frame_run(tmp_path)
    with pytest.raises(ConfigError, match="loader"):
        evaluate_lifting(_cfg(run, h36m["root"], tmp_path / "r"))
    cfg = _cfg(run, h36m["root"], tmp_path / "r")
    cfg.task.official.data_dir = None
    with pytest.raises(ConfigError, match="data_dir"):
        evaluate_lifting(cfg, _load)
    with pytest.raises(ConfigError, match="occlusion generator"):
        evaluate_lifting(_cfg(run, h36m["root"], tmp_path / "r", miss_type="random"), _load)


def test_videopose3d_files_are_read_without_arbitrary_unpickling(h36m, tmp_path):
    obj = np.empty((), dtype=object)
    obj[()] = {"S9": {"Walking": print}}
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=obj)
    with pytest.raises(DataFormatError, match="builtins.print"):
        load_videopose3d_3d(tmp_path / "data_3d_h36m.npz")
    assert load_videopose3d_3d(h36m["root"] / "data_3d_h36m.npz")["S9"]["Eating"].shape == (T, 32, 3)
