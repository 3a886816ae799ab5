"""DONE-WHEN of issue 17: a hand-written 15-joint skeleton file goes through build -> train AE -> train diffusion
-> eval -> predict -> GIF on CPU, with no code change (only configs), and joint-order mistakes are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from _pipeline_helpers import TINY_AE, TINY_DIFF, compose_cfg

pytestmark = [pytest.mark.e2e]

FPS = 20
# Written by hand: 15 joints, root first, parents by name. Offsets (metres, Z up) only drive the test's motion.
HUMANOID15_YAML = """\
name: humanoid15
description: hand-written 15-joint humanoid (test)
joints:
  - {name: Pelvis}
  - {name: LHip, parent: Pelvis}
  - {name: LKnee, parent: LHip}
  - {name: LAnkle, parent: LKnee}
  - {name: RHip, parent: Pelvis}
  - {name: RKnee, parent: RHip}
  - {name: RAnkle, parent: RKnee}
  - {name: Chest, parent: Pelvis}
  - {name: Head, parent: Chest}
  - {name: LShoulder, parent: Chest}
  - {name: LElbow, parent: LShoulder}
  - {name: LWrist, parent: LElbow}
  - {name: RShoulder, parent: Chest}
  - {name: RElbow, parent: RShoulder}
  - {name: RWrist, parent: RElbow}
"""
OFFSETS = {
    "LHip": (0.1, 0, -0.05), "LKnee": (0, 0, -0.42), "LAnkle": (0, 0, -0.40),
    "RHip": (-0.1, 0, -0.05), "RKnee": (0, 0, -0.42), "RAnkle": (0, 0, -0.40),
    "Chest": (0, 0, 0.45), "Head": (0, 0, 0.25),
    "LShoulder": (0.18, 0, 0.0), "LElbow": (0.28, 0, 0), "LWrist": (0.25, 0, 0),
    "RShoulder": (-0.18, 0, 0.0), "RElbow": (-0.28, 0, 0), "RWrist": (-0.25, 0, 0),
}


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _clip(sk, kind: str, seed: int, frames: int = 240) -> np.ndarray:
    """Forward kinematics of swinging limbs (about x) + forward root drift: ``[T, 15, 3]`` metres, Z up."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    freq = {"walk": 1.0, "wave": 0.6}[kind] * rng.uniform(0.8, 1.2)
    pos = np.zeros((frames, sk.num_joints, 3))
    rot = [np.broadcast_to(np.eye(3), (frames, 3, 3))]
    pos[:, 0] = np.stack([0 * t, 0.8 * t * (kind == "walk"), 0.95 + 0.02 * np.sin(4 * np.pi * freq * t)], -1)
    for j in range(1, sk.num_joints):
        name, p = sk.joint_names[j], sk.parents[j]
        amp = 0.5 if (kind == "walk" and "Hip" in name) or (kind == "wave" and "Shoulder" in name) else 0.15
        phase = np.pi * (name.startswith("R")) + rng.uniform(0, 0.3)
        local = _rot_x(amp * np.sin(2 * np.pi * freq * t + phase))
        rot.append(rot[p] @ local)
        pos[:, j] = pos[:, p] + np.einsum("fab,b->fa", rot[p], np.asarray(OFFSETS[name]))
    return pos.astype(np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from skeleton_diffusion.apps.create_native_dataset import main as create_main
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file

    root = tmp_path_factory.mktemp("any_skeleton")
    sk_file = root / "humanoid15.yaml"
    sk_file.write_text(HUMANOID15_YAML)
    sk = load_skeleton_file(sk_file)
    clips = root / "clips"
    clips.mkdir()
    for i in range(8):
        kind = "walk" if i % 2 == 0 else "wave"
        np.save(clips / f"{kind}_{i}.npy", _clip(sk, kind, i))
    data = root / "datasets"
    assert create_main(["--skeleton", str(sk_file), "--input", str(clips), "--name", "Humanoid15", "--fps", str(FPS),
                        "--pred-seconds", "1.0", "--data-root", str(data)]) == 0
    hmp = data / "processed" / "Humanoid15" / "hmp"
    return root, data, hmp


def _dataset_group(hmp: Path):
    return OmegaConf.create(yaml.safe_load((hmp / "dataset_config.yaml").read_text()))


def _with_dataset(cfg, hmp: Path):
    with open_dict(cfg):
        cfg.dataset = _dataset_group(hmp)
    return cfg


@pytest.fixture(scope="module")
def trained(built):
    from skeleton_diffusion.methods.skeleton_diffusion import (
        train_autoencoder as autoencoder_trainer,
        train_diffusion as diffusion_trainer,
    )

    root, data, hmp = built
    out = root / "out"
    common = [f"dataset_main_path={data}", "task.prediction_horizon_sec=1.0"]
    ae = _with_dataset(compose_cfg("train_autoencoder", TINY_AE + common + [f"output_log_path={out}/ae"]), hmp)
    autoencoder_trainer.main(ae)
    diff = compose_cfg("train_diffusion", TINY_DIFF + [f"dataset_main_path={data}",
                                                       f"model.pretrained_autoencoder_path={out}/ae",
                                                       f"output_log_path={out}/diff"])
    diffusion_trainer.main(diff)
    return root, data, hmp, out


def test_builder_writes_skeleton_labels_and_side_files(built):
    from skeleton_diffusion.skeletons.formats.files import load_skeleton_file

    _, _, hmp = built
    for f in ("data_3d_humanoid15.npz", "skeleton.json", "segments_test.csv", "clip_labels.txt",
              "mean_motion_test.txt", "mmgt_test.txt", "mmapd_GT.csv", "dataset_config.yaml"):
        assert (hmp / f).is_file(), f
    sk = load_skeleton_file(hmp / "skeleton.json")
    assert sk.name == "humanoid15" and sk.num_joints == 15 and sk.joint_names[0] == "Pelvis"
    assert sk.num_node_types == 8  # LHip/RHip ... twins share types: 6 pairs + Chest + Head
    from skeleton_diffusion.data.processed import read_joint_names

    assert read_joint_names(hmp / "data_3d_humanoid15.npz") == list(sk.joint_names)  # the data carry their joints
    labels = dict(line.split(",") for line in (hmp / "clip_labels.txt").read_text().split())
    assert set(labels.values()) == {"walk", "wave"}
    assert len((hmp / "mean_motion_test.txt").read_text().split()) >= 2  # one line per class


def test_hand_written_skeleton_trains_evaluates_predicts(trained):
    from skeleton_diffusion.apps import evaluate as protocol
    from skeleton_diffusion.apps.predict import main as predict_main
    from skeleton_diffusion.utils.io import safe_torch_load

    root, data, hmp, out = trained
    ckpt = sorted((out / "diff" / "checkpoints").glob("*.pt"))[-1]
    meta = safe_torch_load(ckpt)["meta"]
    assert meta["joint_names"][:2] == ["Pelvis", "LHip"] and meta["skeleton_def"]["name"] == "humanoid15"

    ev = _with_dataset(compose_cfg("eval", [f"dataset_main_path={data}", f"checkpoint_path={out}/diff",
                                             "stats_mode=probabilistic", "debug=eval", "num_samples=3",
                                             "progress=false", "task.prediction_horizon_sec=1.0",
                                             f"results_path={out}/eval"]), hmp)
    protocol.main(ev)
    res = json.loads((out / "eval" / "results.json").read_text())
    flat = json.dumps(res)
    for name in ("ADE", "FDE", "MMADE", "APD", "MAE", "CMD", "APDE"):
        assert f'"{name}"' in flat, name

    metrics = res["metrics"]
    means = {name: m["mean"] for name, m in metrics.items()}
    for name, mean in means.items():  # every metric is a real number (not None, not a string, not NaN/inf)
        assert isinstance(mean, (int, float)) and not isinstance(mean, bool) and math.isfinite(mean), (name, mean)

    test = np.load(hmp / "data_3d_humanoid15.npz", allow_pickle=True)["positions_3d"].item()["test"]
    # units: distance metrics are in metres, so they are positive and below the extent of the test data itself
    # (a centimetre or input-space result would be 100x or 1/pose_box_size off)
    pts = np.concatenate([c.reshape(-1, 3) for c in test.values()])
    extent = float(np.linalg.norm(pts.max(0) - pts.min(0)))
    for name in ("ADE", "FDE", "MMADE", "APD"):
        assert 1e-4 < means[name] < extent, (name, means[name], extent)
    obs = next(iter(test.values()))[: FPS // 2]
    np.save(root / "obs.npy", obs)
    predict_main([f"checkpoint_path={out}/diff", f"input={root / 'obs.npy'}", f"output={root / 'pred.npz'}",
                  f"gif={root / 'pred.gif'}", "num_samples=2", "device=cpu"])
    with np.load(root / "pred.npz") as pred:
        assert pred["pred"].shape == (1, 2, FPS, 15, 3) and np.isfinite(pred["pred"]).all()
        assert list(pred["joint_names"]) == list(yaml.safe_load(HUMANOID15_YAML)["joints"][i]["name"]
                                                 for i in range(15))
    assert (root / "pred.gif").stat().st_size > 0


def test_joint_order_mistakes_are_refused(trained):
    from skeleton_diffusion.apps import evaluate as protocol
    from skeleton_diffusion.tasks.hmp.protocol import check_processed_joint_names
    from skeleton_diffusion.methods.registry import load_model
    from skeleton_diffusion.utils.errors import ConfigError, InputError

    root, data, hmp, out = trained
    predictor = load_model(out / "diff", device="cpu")
    obs = np.zeros((FPS // 2, 15, 3), np.float32) + np.linspace(0, 1, 15)[None, :, None]
    names = list(predictor.skeleton.joint_names)
    swapped = names[:1] + [names[4], names[5], names[6], names[1], names[2], names[3]] + names[7:]
    with pytest.raises(InputError, match=r"humanoid15.*LHip|RHip.*humanoid15"):
        predictor.predict(obs, num_samples=1, joint_names=swapped)
    # the CLI: an observation .npz that names its joints in another order is refused before predicting
    from skeleton_diffusion.apps.predict import compose_config, run

    np.savez(root / "obs_swapped.npz", obs=obs, joint_names=np.asarray(swapped))
    with pytest.raises(InputError, match=r"obs_swapped.*humanoid15"):
        run(compose_config([f"checkpoint_path={out}/diff", f"input={root / 'obs_swapped.npz'}",
                            f"output={root / 'never.npz'}", "device=cpu"]))
    assert not (root / "never.npz").exists()
    # a model of one skeleton evaluated on data of another: refused, naming both
    ev = compose_cfg("eval", [f"dataset_main_path={data}", f"checkpoint_path={out}/diff", "dataset=synthetic"])
    with pytest.raises(ConfigError, match=r"humanoid15.*amass"):
        protocol.hmp_predictor(ev, predictor.device)
    # processed data whose stored joint order differs from the model's: refused, naming the file
    from skeleton_diffusion.data.processed import load_processed, save_processed

    other = root / "reordered" / "processed" / "Humanoid15" / "hmp"
    other.mkdir(parents=True)
    positions = load_processed(hmp / "data_3d_humanoid15.npz")
    save_processed(other / "data_3d_humanoid15.npz", positions, joint_names=swapped)
    ev2 = _with_dataset(compose_cfg("eval", [f"dataset_main_path={root / 'reordered'}", f"checkpoint_path={out}/diff"]),
                        hmp)
    with pytest.raises(ConfigError, match=r"reordered.*humanoid15"):
        check_processed_joint_names(ev2, predictor.skeleton)
    with pytest.raises(Exception, match="joint names"):
        save_processed(other / "x.npz", positions, joint_names=names[:3])
