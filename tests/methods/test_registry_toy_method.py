"""Adding a method is one folder + one config file + one registry line (docs/adding_a_method.md), and every entry
point reaches it through the registry: training (selected by its config group), ``eval.py`` and ``predict``.

The toy method is real, if small: "damped constant velocity" — it extrapolates the last observed velocity with a
gain fitted by least squares on the training windows (gain 0 = zero velocity, so its training error can only be
lower than zero velocity's; on the synthetic hip-relative windows it comes out close to 0). It is written into a temporary folder by this test, exactly as a user would.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from _pipeline_helpers import compose_cfg, make_synthetic

TOY_METHOD = '''
"""Damped constant velocity: x[t_last + k] = x[t_last] + gain * k * (x[t_last] - x[t_last - 1])."""
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.checkpoints.format import make_meta, read_meta, resolve_checkpoint, save_checkpoint
from skeleton_diffusion.data.registry import build_dataset
from skeleton_diffusion.methods.registry import MethodSpec, register
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.tasks.base import WindowPredictor
from skeleton_diffusion.utils.io import safe_torch_load

register(MethodSpec("toy_velocity", ("hmp",), "toy_velocity", "damped constant velocity (test method)",
                    {"train": "method:train", "load": "method:load_run", "hmp_predictor": "method:hmp_predictor"}),
         replace=True)


def extrapolate(obs, gain, horizon):
    """obs [..., T, J, 3] -> [..., horizon, J, 3]."""
    v = obs[..., -1:, :, :] - obs[..., -2:-1, :, :]
    k = torch.arange(1, horizon + 1, dtype=obs.dtype).view(-1, 1, 1)
    return obs[..., -1:, :, :] + gain * k * v


def train(cfg, overrides=None):
    ds = build_dataset(cfg.dataset, "train", pose_box_size=float(cfg.task.pose_box_size),
                       dataset_main_path=cfg.dataset_main_path)
    num = den = 0.0
    for i in range(len(ds)):
        obs, fut, _ = ds[i]
        base = extrapolate(obs, 1.0, fut.shape[0]) - obs[-1:]
        num += float((base * (fut - obs[-1:])).sum())
        den += float((base * base).sum())
    gain = num / den if den > 0 else 0.0
    out = Path(cfg.output_log_path)
    meta = make_meta("diffusion", str(cfg.dataset.dataset_name), method="toy_velocity",
                     config=OmegaConf.to_container(cfg, resolve=True), obs_length=int(obs.shape[0]),
                     pred_length=int(fut.shape[0]), fps=float(cfg.dataset.fps),
                     pose_box_size=float(cfg.task.pose_box_size))
    model = torch.nn.Module()
    model.register_buffer("gain", torch.tensor(gain))
    ckpt = save_checkpoint(out / "checkpoints" / "checkpoint_1.pt", {"model": model}, meta)
    return {"run_dir": out, "checkpoint": ckpt, "gain": gain}


class ToyPredictor:
    def __init__(self, path):
        self.checkpoint = resolve_checkpoint(path)
        ckpt = safe_torch_load(self.checkpoint)
        self.meta = read_meta(self.checkpoint)
        self.gain = float(ckpt["model"]["gain"])
        self.skeleton = get_skeleton(self.meta["skeleton"])
        self.obs_length, self.pred_length, self.fps = self.meta["obs_length"], self.meta["pred_length"], self.meta["fps"]
        self.device = torch.device("cpu")

    def predict(self, obs, num_samples=1, seed=0, *, pred_length=None, **options):
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        x = x[None] if x.dim() == 3 else x
        fut = extrapolate(x, self.gain, int(pred_length or self.pred_length))
        return fut[:, None].expand(-1, num_samples, -1, -1, -1).numpy()


def load_run(path, device="auto", **options):
    return ToyPredictor(path)


def hmp_predictor(cfg, device):
    p = ToyPredictor(cfg.checkpoint_path)

    def fn(obs, num_samples, *, future):
        return extrapolate(obs, p.gain, future.shape[1])[:, None].expand(-1, num_samples, -1, -1, -1)

    return (WindowPredictor(fn, requires_future=True), p.skeleton, float(p.meta["pose_box_size"]), p.checkpoint,
            "toy_velocity")
'''


@pytest.fixture
def toy_method(tmp_path, monkeypatch):
    """The three pieces a user writes: the method folder, its config file, its registry line (in the module)."""
    pkg = tmp_path / "plugins" / "toy_velocity"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from toy_velocity import method  # noqa: F401  (registers the method)\n")
    (pkg / "method.py").write_text(textwrap.dedent(TOY_METHOD))
    conf = tmp_path / "plugin_configs" / "model"
    conf.mkdir(parents=True)
    (conf / "toy_velocity.yaml").write_text("method: toy_velocity\n")
    monkeypatch.syspath_prepend(str(pkg.parent))
    monkeypatch.setenv("SKELETON_DIFFUSION_METHODS", "toy_velocity")
    yield tmp_path / "plugin_configs"
    from skeleton_diffusion.methods import registry

    registry.unregister("toy_velocity")
    registry._plugins_loaded.discard("toy_velocity")
    for name in [m for m in sys.modules if m == "toy_velocity" or m.startswith("toy_velocity.")]:
        del sys.modules[name]


def test_toy_method_is_trained_evaluated_and_predicts_through_the_registry(toy_method, tmp_path):
    from skeleton_diffusion.apps.evaluate import main as evaluate
    from skeleton_diffusion.apps.predict import compose_config, run
    from skeleton_diffusion.apps.train import train_from_config
    from skeleton_diffusion.methods import registry

    data = make_synthetic(tmp_path / "data")
    run_dir = tmp_path / "toy_run"
    cfg = compose_cfg("train_diffusion", [f"hydra.searchpath=[file://{toy_method}]", "model=toy_velocity",
                                          "dataset=synthetic", f"dataset_main_path={data}",
                                          f"output_log_path={run_dir}"])
    assert registry.method_of_config(cfg) == "toy_velocity"  # the config group selects it
    result = train_from_config(cfg)
    assert registry.method_of_checkpoint(run_dir) == "toy_velocity"
    gain = result["gain"]
    assert gain != 0.0 and abs(gain) < 1.0, gain  # fitted on the windows (hip-relative motion: little momentum)

    def evaluate_with(extra: list[str], out: Path) -> dict:
        ev = compose_cfg("eval", [f"dataset_main_path={data}", "dataset=synthetic", "stats_mode=deterministic",
                                  "progress=false", f"results_path={out}", *extra])
        with open_dict(ev):
            ev.pop("hydra", None)
        evaluate(ev)
        return json.loads((out / "results.json").read_text())

    toy = evaluate_with([f"checkpoint_path={run_dir}"], tmp_path / "eval_toy")
    zero = evaluate_with(["method_specs=zero_velocity"], tmp_path / "eval_zero")
    ade_toy, ade_zero = toy["metrics"]["ADE"]["mean"], zero["metrics"]["ADE"]["mean"]
    assert ade_toy != pytest.approx(ade_zero, rel=1e-6)  # the toy's own predictor ran, not a baseline
    assert ade_toy < ade_zero * 1.05, (ade_toy, ade_zero)  # the fitted gain does not lose to zero velocity

    from skeleton_diffusion.data.processed import load_processed

    clips = load_processed(data / "processed" / "Synthetic" / "hmp" / "data_3d_synthetic.npz")["test"]
    obs = np.asarray(next(iter(clips.values()))[:30], dtype=np.float32)  # a real observation, metres
    np.save(tmp_path / "obs.npy", obs)
    summary = run(compose_config([f"checkpoint_path={run_dir}", f"input={tmp_path / 'obs.npy'}",
                                  f"output={tmp_path / 'pred.npz'}", "num_samples=2", "device=cpu"]))
    pred = np.load(summary["output"])["pred"]
    steps = np.arange(1, pred.shape[2] + 1, dtype=np.float32)[:, None, None]
    expected = obs[-1] + gain * steps * (obs[-1] - obs[-2])
    np.testing.assert_allclose(pred[0, 1], expected, rtol=1e-5, atol=1e-6)
    assert isinstance(registry.load_model(run_dir), type(registry.load_model(run_dir)))
    assert type(registry.load_model(run_dir)).__name__ == "ToyPredictor"


def test_unknown_method_names_the_nearest_one():
    from skeleton_diffusion.methods import registry
    from skeleton_diffusion.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'crossdiff'"):
        registry.get_method("crosdiff")
    assert registry.get_method("ZeroVelocityBaseline").name == "zero_velocity"
    assert registry.get_method("supervised").name == "supervised_lifter"
    assert set(registry.available_methods("lifting")) == {"supervised_lifter", "diffpose", "diffhpe", "diffpose_ours",
                                                           "diffhpe_ours"}


def test_checkpoint_without_method_is_skeleton_diffusion(tmp_path):
    from skeleton_diffusion.checkpoints.format import save_checkpoint
    from skeleton_diffusion.methods import registry

    w = torch.nn.Linear(1, 1)
    save_checkpoint(tmp_path / "old.pt", {"model": w}, {"stage": "diffusion"})
    assert registry.method_of_checkpoint(tmp_path / "old.pt") == "skeleton_diffusion"
    save_checkpoint(tmp_path / "mdm_old.pt", {"model": w},
                    {"stage": "diffusion", "config": {"model": {"method": "mdm"}}})
    assert registry.method_of_checkpoint(tmp_path / "mdm_old.pt") == "mdm"
