"""HumanAct12 rot6d geometric losses (``lambda_rcxyz``, ``lambda_fc``) through SMPL forward kinematics, with a
synthetic SMPL model file written by the test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from _mdm_helpers import mdm_dir, mdm_load, to_ours  # noqa: F401  (mdm_dir, mdm_load: fixtures)
from skeleton_diffusion.methods.mdm import official as O
from skeleton_diffusion.methods.mdm.args import complete_args
from skeleton_diffusion.methods.mdm.convert import build_diffusion, build_network
from skeleton_diffusion.methods.mdm.losses import masked_l2
from skeleton_diffusion.methods.mdm.smpl_fk import SMPLJoints, rotation_6d_to_matrix
from skeleton_diffusion.utils.errors import DataFormatError

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


@pytest.fixture()
def smpl_file(tmp_path):
    g = np.random.default_rng(0)
    v = g.normal(size=(60, 3))
    reg = g.random((24, 60))
    reg /= reg.sum(1, keepdims=True)
    tree = np.stack([np.array([2 ** 32 - 1] + SMPL_PARENTS[1:], dtype=np.int64), np.arange(24)])
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, v_template=v, J_regressor=reg, kintree_table=tree)
    return path, torch.as_tensor(reg @ v, dtype=torch.float32)


def _identity6d(b, frames):
    eye = torch.tensor([1.0, 0, 0, 0, 1, 0])
    x = eye.repeat(b, 25, frames, 1)                    # [B, 25, T, 6]
    return x.reshape(b, 25, frames * 6)


def test_fk_rest_pose_and_root_rotation(smpl_file):
    path, J = smpl_file
    fk = SMPLJoints.from_model_file(path)
    out = fk(_identity6d(2, 3))
    assert out.shape == (2, 24, 3, 3)
    torch.testing.assert_close(out[0, :, :, 1], J - J[:1])
    # a root rotation of 90° about z rotates every joint (relative to the root) by it
    c, s = math.cos(math.pi / 2), math.sin(math.pi / 2)
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    x = _identity6d(1, 1).view(1, 25, 1, 6).clone()
    x[0, 0, 0] = torch.cat([R[0], R[1]])                 # rows b1, b2 of the matrix
    torch.testing.assert_close(rotation_6d_to_matrix(x[0, 0, 0]), R)
    torch.testing.assert_close(fk(x.view(1, 25, 6))[0, :, :, 0], (J - J[:1]) @ R.T, atol=1e-5, rtol=1e-5)


def test_geometric_loss_terms(mdm_load, smpl_file):
    fix = mdm_load("action_humanact12.pt")
    args = complete_args(json.loads(fix["config"]["args_json"]))
    net = build_network(args, fix["state_dict_without_pe"]).eval()
    d = build_diffusion(net, args)
    assert (d.lambda_rcxyz, d.lambda_fc, d.lambda_vel) == (1.0, 1.0, 1.0)
    fk = SMPLJoints.from_model_file(smpl_file[0])
    inp = fix["inputs"]
    x0, noise, t = to_ours(inp["x_start"]), to_ours(inp["noise"]), inp["t"]
    b = x0.shape[0]
    x0 = x0.view(b, 25, -1, 6).clone()
    x0[:, :, 1] = x0[:, :, 0]                            # a still frame pair: the feet are in contact there
    x0 = x0.view(b, 25, -1)
    with torch.no_grad():
        terms = O.official_training_losses(d, x0, t, x_cond=inp["action"], noise=noise, to_xyz=fk)
        pred = net(d.q_sample(x0, t, noise), t, None, inp["action"])
    mask = torch.ones(x0.shape[0], 1, 1, x0.shape[-1] // 6, dtype=torch.bool)
    gt_xyz, pr_xyz = fk(x0), fk(pred)
    torch.testing.assert_close(terms["rcxyz_mse"], masked_l2(gt_xyz, pr_xyz, mask))
    # foot contact: where the GT foot moves <= 0.01 per frame the predicted foot velocity is penalised
    feet = [7, 10, 8, 11]
    gt_v = (gt_xyz[:, feet, :, 1:] - gt_xyz[:, feet, :, :-1]).norm(dim=2, keepdim=True)
    pv = (pr_xyz[:, feet, :, 1:] - pr_xyz[:, feet, :, :-1]) * (gt_v <= 0.01)
    ref_fc = (pv ** 2).flatten(1).sum(1) / (mask[..., 1:].flatten(1).sum(1) * 12 + 1e-8)
    assert bool((ref_fc > 0).all())
    torch.testing.assert_close(terms["fc"], ref_fc)
    total = terms["rot_mse"] + terms["vel_mse"] + terms["rcxyz_mse"] + terms["fc"]
    torch.testing.assert_close(terms["loss"], total)


def test_bad_smpl_file(tmp_path):
    bad = tmp_path / "smpl.npz"
    np.savez(bad, v_template=np.zeros((5, 3)))
    with pytest.raises(DataFormatError, match="J_regressor"):
        SMPLJoints.from_model_file(bad)
