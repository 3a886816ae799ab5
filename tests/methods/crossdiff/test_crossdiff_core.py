"""CrossDiff unit tests: camera projection against a hand-computed camera, the shared-backbone network's cross
decoding, the loss (2D-only samples reach only the 2D branch), 2D-only clip format, and mixed sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.data.windows.motion2d import (
    Motion2DDataset,
    PairedProjectionDataset,
    collate_motion2d,
    project_generation_dataset,
    write_motion2d_clip,
)
from skeleton_diffusion.representations.projection2d import OFFICIAL_AZIMUTHS, project_motion, random_azimuths
from skeleton_diffusion.methods.crossdiff.joints_network import CrossDiff
from skeleton_diffusion.utils.errors import DataFormatError, InputError

J, T = 5, 8


# ----------------------------------------------------------------------------------------- projection
def test_projection_matches_hand_computed_camera():
    # root of frame 0 at the origin; azimuth 0: camera at (10, 0, 1) looking along -x, image right = world +y.
    # point (0, .5, 2): camera coords (x=.5, y=-1 [down], z=10) -> f=10: (.5, -1) -> flipped y: (.5, 1)
    # point (2, .5, 2): depth 8 -> (10*.5/8, 10*1/8) = (.625, 1.25)
    m = np.zeros((1, 3, 3))
    m[0, 1] = [0.0, 0.5, 2.0]
    m[0, 2] = [2.0, 0.5, 2.0]
    uv = project_motion(m, 0.0, distance=10.0, height=1.0, relative=False)
    # root (0,0,0): camera coords (0, 1, 10) -> (0, 1) -> flipped (0, -1)
    np.testing.assert_allclose(uv[0], [[0.0, -1.0], [0.5, 1.0], [0.625, 1.25]], atol=1e-6)
    # azimuth 90 deg: camera at (0, 10, 1) looking along -y; image right = world -x
    uv90 = project_motion(m, math.pi / 2, distance=10.0, height=1.0, relative=False)
    np.testing.assert_allclose(uv90[0, 2], [-10 * 2.0 / 9.5, 1.0 * 10 / 9.5], atol=1e-5)


def test_projection_relative_and_views():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, J, 3)) * 0.3 + np.array([1.0, -2.0, 0.9])
    uv = project_motion(m, 1.0)
    assert uv.shape == (6, J, 2) and uv.dtype == np.float32
    np.testing.assert_allclose(uv[0, 0], 0.0, atol=1e-6)
    # a vertical offset of the whole body moves only the image y coordinate (horizontal camera)
    up = m + np.array([0.0, 0.0, 0.5])
    d = project_motion(up, 1.0, relative=False) - project_motion(m, 1.0, relative=False)
    assert np.abs(d[..., 0]).max() < 1e-5 and d[..., 1].min() > 0
    az = random_azimuths(np.random.default_rng(1), 50, OFFICIAL_AZIMUTHS)
    assert set(np.round(az, 6)) <= set(np.round(OFFICIAL_AZIMUTHS, 6)) and len(set(az)) > 1
    with pytest.raises(InputError):
        project_motion(np.zeros((4, J, 2)), 0.0)


# ----------------------------------------------------------------------------------------- network
def _net(**kw):
    torch.manual_seed(0)
    return CrossDiff(J, T, latent_dim=16, ff_size=32, num_layers=1, num_shared_layers=2, num_heads=2,
                     dropout=0.0, text_dim=6, cond_mask_prob=0.0, **kw)


@pytest.mark.parametrize("din", ["3d", "2d"])
def test_cross_decoding_shapes_and_text(din):
    net = _net().eval()
    c = 3 if din == "3d" else 2
    x, t, text = torch.randn(2, J, T * c), torch.tensor([3, 7]), torch.randn(2, 6)
    out = net(x, t, text, domain_in=din, domains_out=("3d", "2d"))
    assert out["3d"].shape == (2, J, T * 3) and out["2d"].shape == (2, J, T * 2)
    unc = net(x, t, text, domain_in=din, domains_out=("3d",), force_uncond=True)["3d"]
    assert not torch.allclose(unc, out["3d"])  # the text reaches the output
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[1, 5:] = False
    masked = net(x, t, text, domain_in=din, domains_out=("3d",), frame_mask=mask)["3d"]
    assert torch.allclose(masked[0], out["3d"][0], atol=1e-5)
    with pytest.raises(InputError):
        net(torch.randn(2, J, T * c + 1), t, text, domain_in=din)


def _model(noise="isotropic"):
    from skeleton_diffusion.methods.crossdiff.trainer import build_crossdiff
    from skeleton_diffusion.training.motion import MDMSpec

    class Sk:
        num_joints = J
        limbs = [(0, 1), (1, 2), (0, 3), (3, 4)]

    cfg = OmegaConf.create({"model": {"noise": noise, "diffusion_timesteps": 20, "arch": {
        "latent_dim": 16, "ff_size": 32, "num_layers": 1, "num_shared_layers": 2, "num_heads": 2, "dropout": 0.0}},
        "condition": {"mode": "text", "cond_mask_prob": 0.0}})
    spec = MDMSpec("text", "trajectory", J, T, 0, 1.0, 30.0, text_dim=6)
    torch.manual_seed(0)
    return build_crossdiff(cfg, spec, Sk())


HEAD_3D = ("output_process.3d", "decoder.3d", "queries.3d", "input_process.3d", "domain_encoder.3d")
HEAD_2D = ("output_process.2d", "decoder.2d", "queries.2d", "input_process.2d")


def test_2d_only_batches_give_3d_head_no_gradient():
    from skeleton_diffusion.methods.crossdiff.trainer import crossdiff_loss

    model = _model()
    b = 4
    x3d, x2d, text = torch.randn(b, J, T * 3), torch.randn(b, J, T * 2), torch.randn(b, 6)
    terms = crossdiff_loss(model, x3d, x2d, text, has3d=torch.zeros(b, dtype=torch.bool))
    terms["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for n, g in grads.items():
        if n.startswith(tuple("net." + h for h in HEAD_3D)):
            assert g is None or float(g.abs().max()) == 0.0, n
    assert any(g is not None and float(g.abs().max()) > 0 for n, g in grads.items()
               if n.startswith(tuple("net." + h for h in HEAD_2D)))
    tv = {k: float(v.detach()) for k, v in terms.items()}
    assert tv["motion"] == 0 and tv["joint2motion"] == 0 and tv["joint"] > 0
    # a mixed batch: the 3D head is trained, and 2D-only samples' (dummy) 3D targets do not matter
    model.zero_grad()
    has3d = torch.tensor([True, True, False, False])
    t = torch.tensor([1, 5, 9, 13])
    g1 = torch.Generator().manual_seed(0)
    a = crossdiff_loss(model, x3d, x2d, text, has3d=has3d, t=t, generator=g1)
    a["loss"].backward()
    assert float(model.net.output_process["3d"].weight.grad.abs().max()) > 0
    x3d_b = x3d.clone()
    x3d_b[2:] = 100.0
    g2 = torch.Generator().manual_seed(0)
    bb = crossdiff_loss(model, x3d_b, x2d, text, has3d=has3d, t=t, generator=g2)
    for k in ("motion", "joint", "motion2joint", "joint2motion"):
        assert torch.allclose(a[k], bb[k], atol=1e-5), k


def test_loss_weights_combine_terms():
    from skeleton_diffusion.methods.crossdiff.trainer import crossdiff_loss

    model = _model("nonisotropic")
    b = 3
    x3d, x2d, text = torch.randn(b, J, T * 3), torch.randn(b, J, T * 2), torch.randn(b, 6)
    w = dict(w_3d=1.0, w_2d=0.5, w_m2j=0.25, w_j2m=2.0)
    terms = crossdiff_loss(model, x3d, x2d, text, has3d=torch.ones(b, dtype=torch.bool),
                           generator=torch.Generator().manual_seed(1), **w)
    expect = terms["motion"] + 0.5 * terms["joint"] + 0.25 * terms["motion2joint"] + 2.0 * terms["joint2motion"]
    assert torch.allclose(terms["loss"], expect) and all(float(v.detach()) > 0 for v in terms.values())
    off = crossdiff_loss(model, x3d, x2d, text, has3d=torch.ones(b, dtype=torch.bool), w_m2j=0.0, w_j2m=0.0)
    assert float(off["motion2joint"]) == 0 and float(off["joint2motion"]) == 0


# ----------------------------------------------------------------------------------------- sampling
def test_mixed_sampling_hands_over_from_2d_to_3d():
    from skeleton_diffusion.methods.crossdiff.joints_sampling import sample_crossdiff

    model = _model().eval()
    calls: list[tuple[str, tuple]] = []
    fwd = model.net.forward

    def spy(x, t, text, **kw):
        calls.append((kw["domain_in"], tuple(kw["domains_out"])))
        return fwd(x, t, text, **kw)

    model.net.forward = spy
    text = torch.randn(2, 6)
    x = sample_crossdiff(model, text, start="2d", steps=10, change_idx=8, eta=1.0,
                         generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, J, T * 3) and torch.isfinite(x).all()
    # kept steps 19,17,15,13,11,8,6,4,2,0: 5 steps in 2D, the hand-over at 8 decodes 2D->3D, then 4 steps in 3D
    assert calls[:5] == [("2d", ("2d",))] * 5 and calls[5] == ("2d", ("3d",))
    assert calls[6:] == [("3d", ("3d",))] * 4
    calls.clear()
    sample_crossdiff(model, text, start="3d", steps=4)
    assert calls == [("3d", ("3d",))] * 4
    calls.clear()
    x0 = sample_crossdiff(model, text, start="2d", steps=4, change_idx=0)  # whole chain in 2D, decoded to 3D
    assert calls[-1] == ("2d", ("3d",)) and all(c == ("2d", ("2d",)) for c in calls[:-1]) and x0.shape[-1] == T * 3
    with pytest.raises(InputError):
        sample_crossdiff(model, text, start="4d")


# ----------------------------------------------------------------------------------------- 2D data
class _FakeGen:
    num_frames, fps, num_joints = T, 30.0, J

    def __init__(self):
        rng = np.random.default_rng(0)
        self.m = rng.normal(size=(3, T, J, 3)).astype(np.float32) * 0.2
        self.texts = [["walk"], ["jump", "a jump"], ["turn"]]

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return {"motion": torch.from_numpy(self.m[i]), "length": T - i, "action": 0, "text": self.texts[i][0]}


def test_motion2d_clips_roundtrip_and_errors(tmp_path):
    ds = _FakeGen()
    paths = project_generation_dataset(ds, tmp_path / "clips", azimuths=[0.0], seed=0)
    assert len(paths) == 3
    only = Motion2DDataset(tmp_path / "clips", num_frames=T, num_joints=J)
    assert len(only) == 3
    it = only[1]
    assert it["has3d"] is False and it["joints2d"].shape == (T, J, 2) and it["length"] == T - 1
    np.testing.assert_allclose(it["joints2d"][: T - 1].numpy(), project_motion(ds.m[1][: T - 1], 0.0), atol=1e-5)
    assert it["text"] in ds.texts[1]
    paired = PairedProjectionDataset(ds, azimuths=[0.0])
    batch = collate_motion2d([paired[0], only[0]])
    assert batch["joints2d"].shape == (2, T, J, 2) and batch["has3d"].tolist() == [True, False]
    np.testing.assert_allclose(batch["joints2d"][0].numpy(), batch["joints2d"][1].numpy(), atol=1e-5)
    bad = tmp_path / "bad"
    write_motion2d_clip(bad / "x.npz", np.zeros((4, J + 1, 2)), "walk")
    with pytest.raises(DataFormatError, match="x.npz"):
        Motion2DDataset(bad, num_frames=T, num_joints=J)
    with pytest.raises(DataFormatError, match="no .npz"):
        Motion2DDataset(tmp_path / "empty", num_frames=T, num_joints=J)


def test_views_share_one_network_and_follow_deepcopy():
    import copy

    model = _model()
    names = list(model.state_dict())
    assert not any(k.startswith(("diff3d.model", "diff2d.model")) for k in names)  # weights saved once, under net.
    ema = copy.deepcopy(model)  # what ModelEMA does: the copy's views must drive the copied network
    assert ema.diff3d.model.net is ema.net and ema.diff2d.model.net is ema.net and ema.net is not model.net


def test_finetune_needs_the_first_stage_and_dispatch():
    from skeleton_diffusion.methods.crossdiff.trainer import _init_from
    from skeleton_diffusion.methods.registry import method_of_config
    from skeleton_diffusion.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="init_from"):
        _init_from(OmegaConf.create({"model": {"stage": "finetune", "init_from": None}}))
    assert _init_from(OmegaConf.create({"model": {"stage": "pretrain", "init_from": None}})) is None
    assert method_of_config(OmegaConf.create({"model": {"method": "crossdiff"}})) == "crossdiff"
    assert method_of_config(OmegaConf.create({"model": {"method": "mdm"}, "resume": None})) == "mdm"
    assert method_of_config(OmegaConf.create({"model": {"latent_size": 96}, "resume": None})) == "skeleton_diffusion"


def test_body_parts_match_the_official_smpl_split():
    from skeleton_diffusion.tasks.generation.body_parts import part_joint_indices, select_part
    from skeleton_diffusion.skeletons.lookup import get_skeleton
    from skeleton_diffusion.utils.errors import ConfigError

    names = get_skeleton("amass").joint_names  # SMPL-22 order
    assert part_joint_indices(names, "lower") == [0, 1, 2, 4, 5, 7, 8, 10, 11]  # official lower_joint2
    upper = part_joint_indices(names, "upper")
    assert sorted(upper + part_joint_indices(names, "lower")) == list(range(22)) and 15 in upper and 3 in upper
    m = torch.arange(2 * 22 * 3, dtype=torch.float32).view(1, 2, 22, 3)
    assert torch.equal(select_part(m, names, "upper"), m[:, :, upper])
    with pytest.raises(ConfigError):
        part_joint_indices(names, "left")
