"""HumanML3D 263-d features -> joint positions (``recover_from_ric``, ``recover_root_rot_pos``) against
``../shared/fixtures/mdm/recover_from_ric.pt`` through the MDM facade."""

from __future__ import annotations

from _mdm_helpers import assert_fixture_close, mdm_dir, mdm_load  # noqa: F401  (mdm_dir, mdm_load: fixtures)
from skeleton_diffusion.methods.mdm import official as O


def test_recover_from_ric(mdm_load):
    fix = mdm_load("recover_from_ric.pt")
    feats, joints = fix["features"], int(fix["joints_num"])
    rot, pos = O.recover_root_rot_pos(feats)
    assert_fixture_close(rot, fix["r_rot_quat"], "r_rot_quat")
    assert_fixture_close(pos, fix["r_pos"], "r_pos")
    out = O.recover_from_ric(feats, joints)
    assert tuple(out.shape) == tuple(fix["positions"].shape)
    assert_fixture_close(out, fix["positions"], "positions")
