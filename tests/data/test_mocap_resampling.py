"""Issue 27 item 1: resampling keeps bone lengths (BVH: slerp of rotations + FK; positions: restored bones)."""

from __future__ import annotations

import numpy as np

from _mocap_helpers import TREE, bone_lengths, write_bvh  # noqa: E402
from skeleton_diffusion.data.builders.bvh import bvh_to_amass22
from skeleton_diffusion.data.builders.common import resample, resample_keep_bones
from skeleton_diffusion.data.builders.native_skeleton import bvh_to_native
from skeleton_diffusion.skeletons.formats.bvh import bvh_forward_kinematics, parse_bvh
from skeleton_diffusion.skeletons.lookup import get_skeleton

# float32 positions of a few metres carry ~5e-7 m rounding (ulp at 4 m = 4.8e-7); x4 margin
ATOL_M = 2e-6


def test_native_bvh_upsampling_keeps_every_bone_length(tmp_path):
    path = write_bvh(tmp_path / "walk.bvh", 61, amplitude=60.0)
    out, info, names, parents = bvh_to_native(path, fps=60)
    assert info["source_fps"] == 30.0 and out.shape[0] == 121
    lengths = bone_lengths(out.astype(np.float64), parents)
    spread = lengths.max(0) - lengths.min(0)
    assert spread.max() < ATOL_M, (names, spread.max())
    # the bones are the file's offsets (cm -> m)
    offsets = {n: np.linalg.norm(o) / 100 for n, _, o in TREE}
    np.testing.assert_allclose(lengths[0], [offsets[n] for n, p in zip(names, parents) if p >= 0], atol=ATOL_M)


def test_mapped_bvh_upsampling_keeps_amass_bone_lengths(tmp_path):
    path = write_bvh(tmp_path / "walk.bvh", 61, amplitude=60.0)
    out, _ = bvh_to_amass22(path, "lafan1", fps=60)
    lengths = bone_lengths(out.astype(np.float64), get_skeleton("amass").parents)
    assert (lengths.max(0) - lengths.min(0)).max() < ATOL_M


def test_position_resampling_restores_bone_lengths(tmp_path):
    motion = parse_bvh(write_bvh(tmp_path / "a.bvh", 31, amplitude=60.0))
    keep = [j for j, jt in enumerate(motion.joints) if not jt.is_end_site]
    pos = bvh_forward_kinematics(motion)[:, keep] / 100  # 30 fps, metres, rigid
    parents = [keep.index(motion.joints[j].parent) if motion.joints[j].parent >= 0 else -1 for j in keep]
    naive = bone_lengths(resample(pos, 30, 60), parents)
    assert (naive.max(0) - naive.min(0)).max() > 0.01  # linear interpolation of positions shortens limbs
    out = resample_keep_bones(pos.astype(np.float32), parents, 30, 60)
    assert out.shape == (61, len(keep), 3) and out.dtype == np.float32
    lengths = bone_lengths(out.astype(np.float64), parents)
    assert (lengths.max(0) - lengths.min(0)).max() < ATOL_M
    np.testing.assert_allclose(out[::2], pos, atol=ATOL_M)  # source frames are kept as they are
    np.testing.assert_allclose(out[1::2, 0], (pos[:-1, 0] + pos[1:, 0]) / 2, atol=ATOL_M)  # root: linear
