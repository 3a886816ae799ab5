"""CrossDiff as the authors built it, against the official code's outputs (``shared/fixtures/crossdiff``).

Every tensor of the public fixture is compared through the INTERFACE names of
``skeleton_diffusion.methods.crossdiff.official`` at the README tolerance."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _crossdiff_fixture import assert_close, load_fixture, official_state_dict

from skeleton_diffusion.methods.crossdiff import official

DIRECTIONS = {"3d->3d": ("x_t", "3d", False), "3d->2d": ("x_t", "2d", False), "2d->3d": ("joint_t", "3d", False),
              "2d->2d": ("joint_t", "2d", False), "3d->3d_uncond": ("x_t", "3d", True),
              "2d->2d_uncond": ("joint_t", "2d", True)}


@pytest.fixture(scope="module")
def fx(shared_dir: Path) -> dict[str, Any]:
    return load_fixture(shared_dir)


@pytest.fixture(scope="module")
def model(fx: dict[str, Any]) -> Any:
    m = official.load_official_model(official_state_dict(fx), fx["args"])
    return m.eval()


def test_state_dict_keys_are_official(fx: dict[str, Any], model: Any) -> None:
    sd = model.net.state_dict()
    assert list(sd) == fx["checkpoint"]["key_order"]
    assert {k: list(v.shape) for k, v in sd.items()} == {k: list(v) for k, v in fx["checkpoint"]["shapes"].items()}


@pytest.mark.parametrize("domain,x0_key,noise_key,xt_key", [("3d", "motion", "noise", "x_t"),
                                                           ("2d", "joint", "noise_joint", "joint_t")])
def test_q_sample(fx: dict[str, Any], model: Any, domain: str, x0_key: str, noise_key: str, xt_key: str) -> None:
    diff = model.diff3d if domain == "3d" else model.diff2d
    out = diff.q_sample(fx["batch"][x0_key], fx["forward"]["t"], fx["forward"][noise_key])
    assert_close(out, fx["forward"][xt_key], f"q_sample {domain}")


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_forward_direction(fx: dict[str, Any], model: Any, name: str) -> None:
    x_key, out_dom, uncond = DIRECTIONS[name]
    f = fx["forward"]
    x = f[x_key]
    domain_in = "3d" if x.shape[1] == 263 else "2d"
    with torch.no_grad():
        out = model.net(x, f["t"], fx["batch"]["enc_text"], domain_in=domain_in, domains_out=(out_dom,),
                        force_uncond=uncond)
    assert set(out) == {out_dom}
    assert_close(out[out_dom], f[name], name)


def _loss(fx: dict[str, Any], model: Any, finetune: bool) -> dict[str, torch.Tensor]:
    b, f = fx["batch"], fx["forward"]
    has3d = torch.ones_like(b["valid"]) if finetune else b["valid"]
    w = dict(w_2d=0.0, w_m2j=0.0, w_j2m=0.0) if finetune else dict(w_m2j=float(fx["args"]["w_m2j"]),
                                                                   w_j2m=float(fx["args"]["w_j2m"]))
    with torch.no_grad():
        return official.crossdiff_loss(model, b["motion"], b["joint"], b["enc_text"], has3d=has3d,
                                       frame_mask=b["mask"][:, 0, 0], mask2d=b["joint_mask"], t=f["t"],
                                       noise3d=f["noise"], noise2d=f["noise_joint"], **w)


@pytest.fixture(scope="module")
def pretrain(fx: dict[str, Any], model: Any) -> dict[str, torch.Tensor]:
    return _loss(fx, model, finetune=False)


@pytest.mark.parametrize("term", ["motion", "joint", "motion2joint", "joint2motion", "loss"])
def test_pretrain_loss(fx: dict[str, Any], pretrain: dict[str, torch.Tensor], term: str) -> None:
    assert_close(pretrain[term], fx["loss"]["pretrain"][term].mean(), f"pretrain {term}")


def test_pretrain_terms_per_sample(fx: dict[str, Any], model: Any) -> None:
    b, f = fx["batch"], fx["forward"]
    with torch.no_grad():
        terms = official.crossdiff_terms(model, b["motion"], b["joint"], b["enc_text"], has3d=b["valid"],
                                         frame_mask=b["mask"], mask2d=b["joint_mask"], t=f["t"],
                                         noise3d=f["noise"], noise2d=f["noise_joint"])
    for k, v in terms.items():
        assert_close(v, fx["loss"]["pretrain"][k], f"pretrain per-sample {k}")
    # the 2D-only clip (valid False) has 3D terms of exactly 0 and still counts in the batch mean
    off = ~b["valid"]
    assert off.any() and torch.all(terms["motion"][off] == 0) and torch.all(terms["joint2motion"][off] == 0)


def test_finetune_loss(fx: dict[str, Any], model: Any) -> None:
    ref = fx["loss"]["finetune"]["loss"].mean()
    assert_close(_loss(fx, model, finetune=True)["loss"], ref, "finetune (weights 0)")
    b, f = fx["batch"], fx["forward"]
    with torch.no_grad():
        out = official.crossdiff_finetune_loss(model, b["motion"], b["enc_text"], frame_mask=b["mask"], t=f["t"],
                                               noise3d=f["noise"])
    assert_close(out["loss"], ref, "finetune (3D only)")


@pytest.mark.slow
def test_pretrain_gradient_norm(fx: dict[str, Any]) -> None:
    """The back-propagated scalar is the whole-batch mean: its gradient norm matches the official step."""
    model = official.load_official_model(official_state_dict(fx), fx["args"]).eval()
    b, f = fx["batch"], fx["forward"]
    out = official.crossdiff_loss(model, b["motion"], b["joint"], b["enc_text"], has3d=b["valid"],
                                  frame_mask=b["mask"][:, 0, 0], mask2d=b["joint_mask"], t=f["t"],
                                  noise3d=f["noise"], noise2d=f["noise_joint"])
    out["loss"].backward()
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    assert_close(norm, fx["loss"]["pretrain"]["grad_norm"], "pretrain grad_norm")


@pytest.mark.parametrize("clip", [0, 1])
def test_projection_and_features(fx: dict[str, Any], clip: int) -> None:
    p = fx["projection"]
    assert np.allclose(official.TAN_FOV, p["tan_fov"], rtol=0, atol=1e-12)
    assert np.allclose(official.CAM_T, p["cam_t"].double().numpy(), rtol=1e-6)
    assert np.array_equal(official.OFFICIAL_VIEWS, p["Rs"].double().numpy())
    assert [list(c) for c in official.T2M_KINEMATIC_CHAIN] == p["kinematic_chain"]
    joints3d = p["joints3d"][clip].numpy()
    for view in range(p["joints2d"][clip].shape[0]):
        j2 = official.official_project(joints3d, view)
        assert isinstance(j2, np.ndarray) and j2.shape == (*joints3d.shape[:2], 2)
        assert_close(torch.from_numpy(j2), p["joints2d"][clip][view], f"projection clip {clip} view {view}")
        feats = official.motion2d_features(p["joints2d"][clip][view].numpy())
        assert_close(torch.from_numpy(feats), p["features2d"][clip][view], f"2D features clip {clip} view {view}")
