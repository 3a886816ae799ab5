"""Sharded evaluation and per-window noise (issue 15, performance part).

* per-window noise streams: a window's samples do not depend on the batch it is in (``RowGenerators``);
* ``eval.py`` with ``noise_seeding=per_window`` gives the same metrics for any batch size;
* CMD / APDE / per-item metrics reduced from shards equal the single-process values: the reduction math on its
  own, and ``eval.py nproc_per_node=2`` (2 gloo processes) against one process on a tiny random model and on the
  zero-velocity baseline;
* the opt-in low-precision sampling really runs the network under bfloat16 autocast and stays close to fp32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from _pipeline_helpers import compose_cfg, make_synthetic


# ---------------------------------------------------------------------------------------------- unit level
def test_shard_indices_cover_every_window_once() -> None:
    from skeleton_diffusion.tasks.hmp.evaluator import shard_indices

    for n, world in [(0, 2), (1, 2), (7, 2), (10, 3), (5, 8)]:
        parts = [shard_indices(n, r, world) for r in range(world)]
        assert sorted(i for p in parts for i in p) == list(range(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_cmd_from_class_sums_equals_pooled_cmd() -> None:
    from skeleton_diffusion.metrics.cmd import resolve_cmd
    from skeleton_diffusion.tasks.sharding import cmd_from_class_sums

    rng = np.random.default_rng(0)
    motion = rng.random((23, 9)) * 0.05
    cls = rng.integers(0, 4, 23)
    cls[cls == 2] = 1  # class 2 stays empty
    refs = rng.random(4) * 0.03
    sums, counts = np.zeros((4, 9)), np.zeros(4)
    for part in np.array_split(np.arange(23), 3):  # three "shards"
        np.add.at(sums, cls[part], motion[part])
        np.add.at(counts, cls[part], 1.0)
    assert cmd_from_class_sums(sums, counts, refs) == pytest.approx(resolve_cmd(motion, cls, refs), rel=1e-12)
    # a plain mean of the shards' CMD values is not the set's CMD (why the reduction uses class sums)
    per_shard = [resolve_cmd(motion[p], cls[p], refs) for p in np.array_split(np.arange(23), 3)]
    assert abs(np.mean(per_shard) - resolve_cmd(motion, cls, refs)) > 1e-6


def test_row_generators_tie_noise_to_the_window() -> None:
    from skeleton_diffusion.diffusion.samplers import RowGenerators, white_noise

    ref = torch.zeros(1)
    a = white_noise((3 * 4, 5, 2), ref, RowGenerators.for_windows(7, [10, 11, 12], 4))
    b = white_noise((2 * 4, 5, 2), ref, RowGenerators.for_windows(7, [12, 30], 4))
    assert torch.equal(a[8:12], b[0:4])  # window 12: same draws in another batch
    assert not torch.allclose(a[0:4], a[4:8])  # windows get different streams
    c = white_noise((4, 5, 2), ref, RowGenerators.for_windows(8, [12], 4))
    assert not torch.allclose(c, b[0:4])  # the seed matters
    with pytest.raises(Exception, match="rows"):
        white_noise((5, 5, 2), ref, RowGenerators.for_windows(7, [1], 4))


@pytest.mark.parametrize("fast_cpu", [False, True])
def test_low_precision_sampling_uses_autocast_and_stays_close(fast_cpu, monkeypatch) -> None:
    """bf16 sampling runs the network in bfloat16 (generic path: autocast; CPU fast path: its bfloat16 forward)."""
    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
    from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
    from skeleton_diffusion.nn.graph import kernels as cpu_kernels
    from skeleton_diffusion.methods.skeleton_diffusion import denoiser_fast
    from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser

    if fast_cpu and not cpu_kernels.onednn_linear_available():
        pytest.skip("no oneDNN linear in this PyTorch build")
    monkeypatch.setenv("SKELETON_DIFFUSION_FAST_CPU", "1" if fast_cpu else "0")
    torch.manual_seed(0)
    den = Denoiser(dim=8, cond_dim=8, num_nodes=4, node_types=[0, 0, 1, 2], depth=1, attn_heads=2,
                   attn_dim_head=8)
    seen: list[torch.dtype] = []
    if fast_cpu:
        orig = denoiser_fast.forward
        monkeypatch.setattr(denoiser_fast, "forward",
                            lambda *a, **k: seen.append(k.get("dtype", torch.float32)) or orig(*a, **k))
    else:
        den.init_lin.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    adj = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.float64)
    diff = NonisotropicGaussianDiffusion(*get_cov_from_corr(adj), den, diffusion_conditioning=True,
                                         latent_size=8).eval()
    cond = torch.randn(6, 4, 8)
    full = diff.sample(6, cond, generator=torch.Generator().manual_seed(1))
    assert set(seen) == {torch.float32}
    seen.clear()
    low = diff.sample(6, cond, generator=torch.Generator().manual_seed(1), network_dtype=torch.bfloat16)
    assert set(seen) == {torch.bfloat16} and low.dtype == torch.float32
    # bound: measured max |bf16 - fp32| over seeds 0-3 (Xeon, torch 2.x) is 3.9e-4..4.6e-4 on the generic path and
    # 1.2e-3..1.4e-3 on the CPU fast path; 5e-3 is ~3.6x the worst, and a tenth of the samples' spread (std
    # 0.042..0.057), so a wrong-scale bf16 path cannot hide under it (the old 0.05 was as large as the signal)
    assert not torch.equal(low, full) and (low - full).abs().max() < 5e-3
    assert (low - full).abs().max() < 0.1 * full.std()
    seen.clear()
    diff.sample(6, cond, generator=torch.Generator().manual_seed(1))  # the setting does not stick
    assert set(seen) == {torch.float32}


# ------------------------------------------------------------------------------------------ eval.py level
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Synthetic test set + a tiny randomly initialised SkeletonDiffusion checkpoint (AMASS skeleton)."""
    from skeleton_diffusion.config import save_config
    from skeleton_diffusion.methods.skeleton_diffusion.factories import build_autoencoder, build_diffusion
    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.checkpoints.format import make_meta
    from skeleton_diffusion.utils.io import atomic_torch_save

    root = tmp_path_factory.mktemp("sharded")
    data = make_synthetic(root / "datasets")
    run = root / "run"
    ae_cfg = compose_cfg("train_autoencoder", ["dataset=amass", "debug=autoencoder", "model.latent_size=8",
                                               "model.autoenc_arch.encoder_hidden_size=8",
                                               "model.autoenc_arch.decoder_hidden_size=8",
                                               "task.pose_box_size=1.5", "output_log_path=unused"])
    ae_cfg = OmegaConf.create(OmegaConf.to_container(ae_cfg, resolve=True))
    cfg = compose_cfg("train_diffusion", ["debug=diffusion", "model.diffusion_timesteps=3",
                                          "model.diffusion_arch.depth=1", "model.diffusion_arch.attn_heads=2",
                                          "model.diffusion_arch.attn_dim_head=8", f"output_log_path={run}"])
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.autoencoder = ae_cfg
    cfg.autoencoder_checkpoint = "none"
    sk = get_skeleton("amass")
    torch.manual_seed(0)
    ae = build_autoencoder(ae_cfg.model, sk)
    diff = build_diffusion(cfg.model, cfg.cov_matrix, sk, latent_size=8)
    with torch.no_grad():  # "trained-like": break the identical-types initialisation
        for p in list(ae.parameters()) + list(diff.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    meta = make_meta("diffusion", "amass", dataset="amass", pose_box_size=1.5, obs_length=30, pred_length=120,
                     config=OmegaConf.to_container(cfg, resolve=True))
    atomic_torch_save({"model": diff.state_dict(), "autoencoder": ae.state_dict(), "meta": meta},
                      run / "checkpoints" / "checkpoint_1.pt")
    save_config(cfg, run / "config.yaml")
    return data, run


def _eval(data: Path, out: Path, extra: list[str]) -> dict:
    from skeleton_diffusion.apps import evaluate as protocol

    cfg = compose_cfg("eval", [f"dataset_main_path={data}", "dataset=synthetic", "stats_mode=probabilistic",
                               "progress=false", f"results_path={out}", *extra])
    with open_dict(cfg):
        cfg.pop("hydra", None)
    protocol.main(cfg)
    res = json.loads((out / "results.json").read_text())
    return res


def _metrics(res: dict) -> dict[str, float]:
    return {k: float(v["mean"]) for k, v in res["metrics"].items()}


def _assert_same(a: dict[str, float], b: dict[str, float]) -> None:
    assert set(a) == set(b) and {"ADE", "FDE", "MMADE", "APD", "CMD", "APDE"} <= set(a), sorted(a)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k


@pytest.mark.slow
def test_per_window_noise_makes_results_independent_of_batch_size(tiny, tmp_path) -> None:
    data, run = tiny
    common = [f"checkpoint_path={run}", "num_samples=3"]
    a = _metrics(_eval(data, tmp_path / "a", common + ["batch_size=3"]))
    b = _metrics(_eval(data, tmp_path / "b", common + ["batch_size=8"]))
    _assert_same(a, b)
    c = _metrics(_eval(data, tmp_path / "c", common + ["batch_size=8", "seed=1"]))
    assert c["APD"] != pytest.approx(a["APD"], rel=1e-6)  # the seed still matters


@pytest.mark.distributed
@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(tiny, tmp_path) -> None:
    data, run = tiny
    model = [f"checkpoint_path={run}", "num_samples=3", "batch_size=4"]
    one_res = _eval(data, tmp_path / "one", model)
    one, one_windows = _metrics(one_res), one_res["num_windows"]
    two = _eval(data, tmp_path / "two", model + ["nproc_per_node=2"])
    assert two["extra"]["world_size"] == 2 and two["extra"]["noise_seeding"] == "per_window"
    assert two["num_windows"] == one_windows
    _assert_same(one, _metrics(two))
    base = ["method_specs=zero_velocity", "batch_size=5"]
    _assert_same(_metrics(_eval(data, tmp_path / "zv1", base)),
                 _metrics(_eval(data, tmp_path / "zv2", base + ["nproc_per_node=2"])))


def test_distributed_evaluate_needs_a_process_group() -> None:
    from skeleton_diffusion.tasks.hmp.evaluator import evaluate
    from skeleton_diffusion.utils.errors import ConfigError

    class _Sk:
        node_limbs, limb_angles_idx = [(0, 1)], []

    loader = [(torch.zeros(1, 2, 2, 3), torch.zeros(1, 3, 2, 3), {})]
    with pytest.raises(ConfigError, match="process group"):
        evaluate(lambda obs, n: torch.zeros(1, 1, 3, 2, 3), loader, _Sk(), 1.0, stats_mode="deterministic",
                 progress=False, device="cpu", distributed=True)
