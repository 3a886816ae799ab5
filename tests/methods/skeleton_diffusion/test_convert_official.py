"""Converting official checkpoint files (release layout, numpy RNG states, flat configs) into our format.

The official-format files are written here from the fixture weights (autoencoder.pt / denoiser_diffusion.pt),
with the top-level keys listed in checkpoint_format.txt, so the converted model must reproduce the official
end-to-end inference outputs recorded in denoiser_diffusion.pt ``inference``.
"""

from __future__ import annotations

import pathlib
from collections import OrderedDict

import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_DIR, official_fixture
from omegaconf import OmegaConf

from skeleton_diffusion.apps.convert import main
from skeleton_diffusion.checkpoints.official import load_official_file, overlay_flat, read_flat_config
from skeleton_diffusion.methods.skeleton_diffusion.convert import convert_autoencoder, convert_diffusion
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError
from skeleton_diffusion.utils.io import safe_torch_load

RTOL = 1e-5


def assert_close_ref(ours: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    """Fixture README tolerance: rtol 1e-5, atol 1e-5 * max|ref|."""
    ref = ref.to(ours.dtype)
    torch.testing.assert_close(ours, ref, rtol=RTOL, atol=RTOL * ref.abs().max().item(),
                               msg=lambda m: f"{name}: {m}")


# --------------------------------------------------------------------------------------------- official files
def fixture_ae_state() -> "OrderedDict[str, torch.Tensor]":
    case = torch.load(official_fixture("autoencoder.pt"), weights_only=True)["cases"]["amass"]
    return OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in case["state_dict"].items())


def fixture_diffusion_state() -> "OrderedDict[str, torch.Tensor]":
    w = torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)["weights"]
    sd = OrderedDict()
    for k in w["key_order"]:
        if k in w["tied_base"]:
            sd[k] = w["tied_type_scale"][k].view(-1, 1, 1) * w["tied_base"][k].float().unsqueeze(0)
        else:
            t = w["tensors"][k]
            sd[k] = t.float() if t.is_floating_point() else t
    return sd


def _random_states() -> dict:
    # as the official RandomStateDict: python/numpy/torch RNG states (numpy arrays -> not weights_only-safe)
    return {"random": (3, tuple(range(624)) + (624,), None),
            "numpy": ("MT19937", np.random.RandomState(0).get_state()[1].astype(np.uint32), 624, 0, 0.0),
            "torch": torch.get_rng_state(), "torch_random": torch.get_rng_state(),
            "torch_cuda": torch.zeros(16, dtype=torch.uint8), "generator": torch.get_rng_state()}


EMA_TWEAK_KEY = "model.final_glin.bias"


def write_official_release(root: pathlib.Path, *, with_configs: bool = True) -> tuple[pathlib.Path, pathlib.Path]:
    """``root/hmp/amass/{autoencoder,diffusion}/{config.yaml,checkpoints/cvpr_release.pt}`` as released."""
    ae_dir, diff_dir = root / "hmp/amass/autoencoder", root / "hmp/amass/diffusion"
    (ae_dir / "checkpoints").mkdir(parents=True)
    (diff_dir / "checkpoints").mkdir(parents=True)
    ae_sd = fixture_ae_state()
    ae_file = ae_dir / "checkpoints/cvpr_release.pt"
    torch.save({
        "trainer": OrderedDict(epoch_length=580, max_epochs=300, iteration=174000),
        "model": ae_sd,
        "random_states": _random_states(),
        "optimizer": {"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(21, 21)}},
                      "param_groups": [{"lr": 0.005, "amsgrad": True, "params": [0]}]},
        "curriculum_scheduler": OrderedDict(curriculum_it=10, prediction_horizon_train=120),
        "lr_scheduler": OrderedDict(event_index=0, param_name="lr"),
    }, ae_file)
    sd = fixture_diffusion_state()
    ema = OrderedDict(initted=torch.tensor(True), step=torch.tensor(7))
    ema.update((f"online_model.{k}", v) for k, v in sd.items())
    ema.update((f"ema_model.{k}", v + 0.5 if k == EMA_TWEAK_KEY else v) for k, v in sd.items())
    diff_file = diff_dir / "checkpoints/cvpr_release.pt"
    torch.save({"model": sd, "opt": {"state": {}, "param_groups": [{"lr": 1e-3, "params": []}]}, "ema": ema,
                "lr_scheduler": OrderedDict(event_index=0), "trainer": OrderedDict(epoch_length=9, max_epochs=150,
                                                                                    iteration=1350),
                "random_states": _random_states()}, diff_file)
    if with_configs:
        ae_cfg = {  # flat official autoencoder config (resolved, as train_autoencoder.py saves it)
            "if_resume_training": False, "silent": False, "device": "cuda", "load": False, "load_path": "",
            "dataset_main_path": "./datasets", "output_log_path": "./output/hmp/amass/autoencoder/June30_11-35-08",
            "if_consider_hip": False, "history_sec": 0.5, "prediction_horizon_sec": 2,
            "motion_repr_type": "SkeletonRescalePose", "pose_box_size": 1.2, "seq_centering": 0, "task_name": "hmp",
            "num_joints": 22, "fps": 60, "multimodal_threshold": 0.4, "dataset_type": "AMASSDataset",
            "dataset_name": "amass", "precomputed_folder": "./datasets/processed/AMASS/hmp/",
            "batch_size": 64, "num_epochs": 300, "seed": 52345, "loss_pose_type": "l1", "lr": 0.005,
            "latent_size": 96, "output_size": 3, "z_activation": "tanh", "num_iter_perepoch": 580,
            "obs_length": 30, "prediction_horizon_train": 120, "prediction_horizon_eval": 120,
            "prediction_horizon": 120, "pred_length": 120,
            "autoenc_arch": {"enc_num_layers": 2, "encoder_hidden_size": 96, "decoder_hidden_size": 96,
                             "arch": "AutoEncoder", "recurrent_arch_enc": "StaticGraphGRU",
                             "recurrent_arch_decoder": "StaticGraphGRU"},
            "lr_scheduler_kwargs": {"lr_scheduler_type": "ExponentialLRSchedulerWarmup", "warmup_duration": 10,
                                    "update_every": 1, "min_lr": 0.0001, "gamma_decay": 0.98},
        }
        (ae_dir / "config.yaml").write_text(yaml.safe_dump(ae_cfg))
        diff_cfg = {  # flat official diffusion config (saved before resolution: interpolations stay)
            "if_resume_training": False, "device": "cuda", "dataset_folder_log_path": "amass",
            "output_log_path": "./output/hmp/${dataset_folder_log_path}/diffusion/${now:%B%d_%H-%M-%S}",
            "pretrained_autoencoder_path": "./trained_models/hmp/amass/autoencoder/checkpoints/cvpr_release.pt",
            "lr": 0.001, "diffusion_objective": "pred_x0", "weight_decay": 0.0, "if_use_ema": True,
            "step_start_ema": 100, "ema_power": "${eval:'2/3'}", "ema_update_every": 10, "num_epochs": 150,
            "lr_scheduler_kwargs": {"lr_scheduler_type": "ExponentialLRSchedulerWarmup", "warmup_duration": 75,
                                    "update_every": 2, "min_lr": 0.0001, "gamma_decay": 0.98},
            "diffusion_conditioning": True, "train_pick_best_sample_among_k": 50, "similarity_space": "input_space",
            "diffusion_activation": "identity", "num_prob_samples": 50, "diffusion_timesteps": 10,
            "diffusion_type": "NonisotropicGaussianDiffusion", "diffusion_loss_type": "snr",
            "loss_reduction_type": "l1", "if_run_as_isotropic": False, "if_sigma_n_scale": True,
            "diffusion_covariance_type": "skeleton-diffusion", "gamma_scheduler": "cosine",
            "beta_schedule": "cosine", "sigma_n_scale": "spectral", "seed": 63485,
            "diffusion_arch": {"arch": "Denoiser", "use_attention": True, "self_condition": False,
                               "norm_type": "none", "depth": 4, "attn_dim_head": 32, "attn_heads": 8,
                               "learn_influence": True},
            "covariance_matrix_type": "adjacency",
        }
        (diff_dir / "config.yaml").write_text(yaml.safe_dump(diff_cfg))
    return diff_file, ae_file


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    official_fixture("denoiser_diffusion.pt")
    root = tmp_path_factory.mktemp("release") / "trained_models"
    return write_official_release(root)


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory):
    diff_file, _ = release
    out = tmp_path_factory.mktemp("conv") / "amass_official"
    ckpt = main([str(diff_file), str(out)])  # autoencoder + both configs found by the release layout
    return out, ckpt


@pytest.fixture(scope="module")
def inference_fixture():
    return torch.load(official_fixture("denoiser_diffusion.pt"), weights_only=True)["inference"]


# --------------------------------------------------------------------------------------------- tests
def test_official_files_need_the_numpy_allowlist(release):
    diff_file, ae_file = release
    with pytest.raises(Exception):
        torch.load(ae_file, weights_only=True)  # plain safe load refuses numpy RNG states
    ck = load_official_file(ae_file)
    assert set(ck) == {"trainer", "model", "random_states", "optimizer", "curriculum_scheduler", "lr_scheduler"}
    assert isinstance(ck["random_states"]["numpy"][1], np.ndarray)


def test_converted_run_folder_layout_and_config(converted):
    out, ckpt = converted
    assert ckpt.parent == out / "checkpoints" and ckpt.name == "checkpoint_1350.pt"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint_1350.pt"]
    raw = safe_torch_load(ckpt)  # our loader: weights_only=True, nothing allow-listed
    assert {"model", "autoencoder", "ema", "meta"} <= set(raw)
    assert "random_states" not in raw and "opt" not in raw
    meta = raw["meta"]
    assert meta["stage"] == "diffusion" and meta["skeleton"] == "amass" and meta["pose_box_size"] == 1.2
    assert (meta["obs_length"], meta["pred_length"]) == (30, 120)
    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg == OmegaConf.create(meta["config"])
    assert cfg.autoencoder.task.pose_box_size == 1.2
    assert cfg.autoencoder.model.autoenc_arch.enc_num_layers == 2
    assert cfg.autoencoder.dataset.dataset_name == "amass"
    assert cfg.model.num_epochs == 150 and cfg.model.lr_scheduler_kwargs.warmup_duration == 75
    assert abs(cfg.model.ema_power - 2 / 3) < 1e-12  # official "${eval:'2/3'}" ignored, our default kept
    assert cfg.cov_matrix.covariance_matrix_type == "adjacency"
    assert cfg.autoencoder_checkpoint.endswith("hmp/amass/autoencoder/checkpoints/cvpr_release.pt")
    # weights are carried over bit for bit
    sd = fixture_diffusion_state()
    for k in ("model.init_lin.weight", "U", "Lambda_posterior_log_variance_clipped"):
        assert torch.equal(raw["model"][k], sd[k])
    assert torch.equal(raw["autoencoder"]["encoder.fc.weight"], fixture_ae_state()["encoder.fc.weight"])
    assert torch.equal(raw["ema"][f"ema_model.{EMA_TWEAK_KEY}"], sd[EMA_TWEAK_KEY] + 0.5)


def test_converted_model_reproduces_official_inference(converted, inference_fixture):
    from skeleton_diffusion.methods.registry import load_model

    inf = inference_fixture
    pred_obj = load_model(converted[0], device="cpu")
    model = pred_obj.model
    assert model.pose_box_size == 1.2 and model.pred_length == 120
    with torch.no_grad():
        latents, z_past = model.sample_latents(inf["obs"], inf["num_samples"], start_noise=inf["start_noise"],
                                               sampling_noise=inf["step_noise"])
        pred = model.decode_latents(inf["obs"], latents, inf["num_samples"], pred_length=inf["pred_length"])
    assert_close_ref(z_past, inf["z_past"], "z_past")
    assert_close_ref(latents, inf["latents"], "latents")
    assert_close_ref(pred, inf["pred"], "pred")
    assert_close_ref(model.to_metric(pred), inf["pred_metric"], "pred_metric")


@pytest.mark.slow
def test_predictor_on_example_observation_matches_direct_fixture_model(converted, inference_fixture):
    """Predictor.predict (metres in, metres out) on an input shaped like example_obs_amass.npy [1,30,22,3]."""
    import skeleton_diffusion.tasks.hmp.input_checks  # noqa: F401  (an import error must fail, not skip)
    from skeleton_diffusion.representations.hmp import to_input_space
    from skeleton_diffusion.methods.registry import load_model

    example = SHARED_DIR / "reference/figures/example_obs_amass.npy"
    if example.is_file():
        obs = np.load(example)[..., :22, :].astype(np.float32)  # the released file holds the 52 AMASS-MANO joints
    else:  # the fixture observation in metres, with a root trajectory
        x = (inference_fixture["obs"][:1] * 1.2).numpy()
        obs = np.concatenate([np.zeros_like(x[..., :1, :]), x], axis=2) + np.array([0.3, -0.2, 0.9], np.float32)
    assert obs.shape == (1, 30, 22, 3)
    predictor = load_model(converted[0], device="cpu")
    out = predictor.predict(obs, num_samples=2, seed=5)
    assert out.shape == (1, 2, 120, 22, 3) and np.isfinite(out).all()

    # the same computation done by hand with the fixture weights and the official inference path
    from test_inference_fixture import build_fixture_model

    ref_model = build_fixture_model()
    gen = torch.Generator().manual_seed(5)
    x_in = to_input_space(torch.as_tensor(obs), 1.2)
    with torch.no_grad():
        ref = ref_model.predict(x_in, 2, generator=gen) * 1.2  # [1, 2, 120, 21, 3] metres, hip-relative
    root = obs[:, -1, 0][:, None, None, None]
    np.testing.assert_allclose(out[..., 1:, :] - root, ref.numpy(), rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    np.testing.assert_allclose(out[..., 0, :], np.broadcast_to(obs[:, -1, 0][:, None, None], (1, 2, 120, 3)))


def test_ema_weights_are_converted(converted):
    from skeleton_diffusion.methods.skeleton_diffusion.predictor import build_from_checkpoint

    online, _, _ = build_from_checkpoint(converted[1], "cpu")
    ema, _, _ = build_from_checkpoint(converted[1], "cpu", use_ema=True)
    key = EMA_TWEAK_KEY
    assert torch.equal(ema.diffusion.state_dict()[key], online.diffusion.state_dict()[key] + 0.5)


def test_recipe_conversion_without_configs(tmp_path, release):
    (tmp_path / "bare").mkdir()
    diff_file, ae_file2 = tmp_path / "bare/diffusion.pt", tmp_path / "bare/autoencoder.pt"
    diff_file.symlink_to(release[0])  # no config.yaml anywhere near these names
    ae_file2.symlink_to(release[1])
    with pytest.raises(ConfigError, match="--dataset"):
        convert_diffusion(diff_file, tmp_path / "x", autoencoder=ae_file2)
    out = convert_diffusion(diff_file, tmp_path / "recipe", autoencoder=ae_file2, dataset="amass")
    cfg = OmegaConf.load(tmp_path / "recipe/config.yaml")
    assert cfg.autoencoder.task.pose_box_size == 1.2 and cfg.autoencoder.model.autoenc_arch.enc_num_layers == 2
    assert cfg.model.num_epochs == 150  # README AMASS diffusion recipe
    assert out.is_file()
    # an H36M recipe cannot take AMASS weights: the node count is checked
    with pytest.raises(CheckpointError, match="nodes"):
        convert_diffusion(diff_file, tmp_path / "h36m", autoencoder=ae_file2, dataset="h36m")


def test_autoencoder_stage_gives_a_pretrained_autoencoder_run(tmp_path, release):
    from skeleton_diffusion.methods.skeleton_diffusion.train_diffusion import load_frozen_autoencoder
    from skeleton_diffusion.training.launch import autoencoder_run_config

    _, ae_file = release
    out_dir = tmp_path / "ae_run"
    main([str(ae_file), str(out_dir), "--stage", "autoencoder"])
    ae_cfg, ckpt = autoencoder_run_config(out_dir)  # what model.pretrained_autoencoder_path=<dir> does
    assert ckpt == out_dir / "checkpoints/checkpoint_174000.pt"
    assert ae_cfg.task.pose_box_size == 1.2 and ae_cfg.model.autoenc_arch.enc_num_layers == 2
    assert safe_torch_load(ckpt)["meta"]["stage"] == "autoencoder"
    ae = load_frozen_autoencoder(ae_cfg, ckpt, torch.device("cpu"))
    case = torch.load(official_fixture("autoencoder.pt"), weights_only=True)["cases"]["amass"]
    with torch.no_grad():
        assert_close_ref(ae.get_past_embedding(case["obs"]), case["outputs"]["z_past"], "z_past")
    # the official config names the dataset: a contradicting --dataset is an error
    with pytest.raises(ConfigError, match="contradicts"):
        convert_autoencoder(ae_file, tmp_path / "ae_h36m", dataset="h36m")
    # a diffusion file given as --stage autoencoder is refused
    with pytest.raises(SystemExit):
        main([str(release[0]), str(tmp_path / "bad"), "--stage", "autoencoder"])


def test_existing_output_folder_is_not_overwritten(converted, release):
    out, _ = converted
    with pytest.raises(CheckpointError, match="already holds"):
        convert_diffusion(release[0], out)


class _Payload:
    """Unpickling this would create a file: the converter must refuse before that happens."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickled_arbitrary_object_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"model": {"encoder.fc.weight": torch.zeros(1)}, "random_states": {"x": _Payload(marker)}}, bad)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_official_file(bad)
    assert not marker.exists()
    with pytest.raises(SystemExit) as exc:  # the CLI: a clear message and exit status 2
        main([str(bad), str(tmp_path / "out")])
    assert exc.value.code == 2 and not marker.exists() and not (tmp_path / "out").exists()


def test_files_written_with_numpy1_load_too(tmp_path):
    """numpy < 2 pickles arrays as ``numpy.core.multiarray._reconstruct`` (numpy 2: ``numpy._core``)."""
    import io

    obj = {"model": {"w": torch.arange(3.0)},
           "random_states": {"numpy": ("MT19937", np.arange(624, dtype=np.uint32), 624, 0, 0.0)}}
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False, pickle_protocol=2)  # text GLOBAL opcodes
    data = buf.getvalue()
    if b"numpy._core.multiarray\n" in data:
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray\n_reconstruct" in data
    (tmp_path / "np1.pt").write_bytes(data)
    got = load_official_file(tmp_path / "np1.pt")
    np.testing.assert_array_equal(got["random_states"]["numpy"][1], np.arange(624))
    assert torch.equal(got["model"]["w"], torch.arange(3.0))


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_official_file(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_official_file(junk)


# --------------------------------------------------------------------------------------------- pure helpers
def test_overlay_flat_maps_official_keys():
    ours = OmegaConf.create({"a": 1, "b": "${a}", "arch": {"x": 1, "y": 2}, "network": {"a": "${a}"}, "keep": 3})
    flat = {"a": 5, "b": 7, "arch": {"x": 9}, "network": {"a": 0}, "unknown": 1, "keep": "${eval:'1'}"}
    changed = overlay_flat(ours, flat)
    assert sorted(changed) == ["a", "arch.x", "b"]
    assert ours.a == 5 and ours.b == 7 and ours.arch == {"x": 9, "y": 2} and ours.keep == 3
    assert ours.network.a == 5  # object nodes are never replaced, their interpolations follow
    assert "unknown" not in ours


def test_read_flat_config_flattens_nested_groups(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump({"seed": 1, "model": {"latent_size": 96}, "task": {"pose_box_size": 1.2}}))
    assert read_flat_config(p) == {"seed": 1, "latent_size": 96, "pose_box_size": 1.2}
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        read_flat_config(p)
