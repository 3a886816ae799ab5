"""Editing with a converted official MDM on HumanML3D / KIT features, as ``sample/edit.py`` does: the known part of
the motion overwrites the network's x̂₀ at every step (:func:`~.sampling.sample_motion` with ``known``).

Modes: ``inbetween`` (``keep`` = kept frame indices; official ``in_between`` keeps the first 25 % and the last
25 %), ``prefix`` (``keep=[n]``: the first n frames), ``upper_body`` (official: the lower-body features are kept,
:func:`hml_lower_body_mask`, and the upper body is generated).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.methods.mdm.generation import dataset_stats
from skeleton_diffusion.utils.errors import InputError

__all__ = ["HML_LOWER_BODY_JOINTS", "hml_lower_body_mask", "official_known_mask", "official_edit"]

#: official ``humanml_utils.HML_LOWER_BODY_JOINTS``: pelvis, hips, knees, ankles, feet (SMPL order)
HML_LOWER_BODY_JOINTS = (0, 1, 2, 4, 5, 7, 8, 10, 11)


def hml_lower_body_mask(joints_num: int = 22) -> Tensor:
    """Official ``HML_LOWER_BODY_MASK`` ``[263]`` bool: root data (4), lower-body ric (3 each, root excluded),
    rotations (6 each, root excluded), velocities (3 each, root included) and the 4 foot contacts."""
    if joints_num != 22:
        raise InputError("the official upper-body editing is defined for HumanML3D's 22 joints only")
    lower = torch.zeros(joints_num, dtype=torch.bool)
    lower[list(HML_LOWER_BODY_JOINTS)] = True
    return torch.cat([torch.ones(4, dtype=torch.bool), lower[1:].repeat_interleave(3), lower[1:].repeat_interleave(6),
                      lower.repeat_interleave(3), torch.ones(4, dtype=torch.bool)])  # fmt: skip


def official_known_mask(mode: str, frames: int, feats: int, keep: Sequence[int]) -> Tensor:
    """``[T, F]`` bool, True = kept from the input."""
    mask = torch.zeros(frames, feats, dtype=torch.bool)
    if mode == "inbetween":
        idx = [int(k) for k in keep]
        bad = [k for k in idx if not 0 <= k < frames]
        if bad:
            raise InputError(f"keep frames {bad} are outside 0..{frames - 1}")
        mask[idx] = True
    elif mode == "prefix":
        if len(keep) != 1 or not 0 < int(keep[0]) < frames:
            raise InputError(f"mode=prefix needs keep=[n] with 0 < n < {frames}; got {list(keep)}")
        mask[: int(keep[0])] = True
    elif mode == "upper_body":
        mask[:] = hml_lower_body_mask()[None, :feats]
    else:
        raise InputError(f"mode must be inbetween, prefix or upper_body for an official MDM; got {mode!r}")
    return mask


@torch.no_grad()
def official_edit(run: Any, features: Any, mode: str, keep: Sequence[int] = (), *, data_root: Any,
                  texts: Optional[Sequence[str]] = None, num_samples: int = 1,
                  generator: Optional[torch.Generator] = None, guidance_param: Optional[float] = None
                  ) -> dict[str, Tensor]:  # fmt: skip
    """``features [T, F]`` (a ``new_joint_vecs`` file, de-normalised) -> ``{"features": [S, T, F] de-normalised,
    "joints": [S, T, J, 3] (recover_from_ric), "known_mask": [T, F]}``. ``T`` = the network's frames (196): a
    shorter input is padded by repeating its last frame (only its own frames count as known)."""
    from skeleton_diffusion.methods.mdm.sampling import sample_motion
    from skeleton_diffusion.representations.humanml3d import recover_from_ric

    if run.model.cond_mode != "text":
        raise InputError(f"'{run.checkpoint}' is a {run.model.cond_mode}-conditioned MDM; official editing is "
                         "defined for HumanML3D/KIT text models")  # fmt: skip
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    frames, feats = int(run.model.num_frames), int(run.model.njoints)
    if x.dim() != 2 or x.shape[1] != feats:
        raise InputError(f"input features must be [T, {feats}] (a {run.args['dataset']} new_joint_vecs file); "
                         f"got {tuple(x.shape)}")  # fmt: skip
    n = min(int(x.shape[0]), frames)
    mean, std = dataset_stats(data_root)
    xn = (x[:n] - mean) / std
    xn = torch.cat([xn, xn[-1:].expand(frames - n, feats)]) if n < frames else xn
    mask = official_known_mask(mode, frames, feats, keep)
    mask[n:] = False
    s = int(num_samples)
    known = xn.T.unsqueeze(0).expand(s, feats, frames).to(run.device)                    # [S, F, T] = [S, J, T*1]
    known_mask = mask.T.unsqueeze(0).expand(s, feats, frames).to(run.device)
    cond = None
    if texts:
        cond = run.text_encoder()([str(texts[0])] * s)
    gp = run.guidance_param if (guidance_param is None and cond is not None) else guidance_param
    out = sample_motion(run.diffusion, s, x_cond=cond, guidance_param=gp, known=known, known_mask=known_mask,
                        generator=generator)  # fmt: skip
    feats_out = out.permute(0, 2, 1).cpu() * std + mean                                 # [S, T, F]
    joints = recover_from_ric(feats_out, 21 if run.args["dataset"] == "kit" else 22)
    return {"features": feats_out, "joints": joints, "known_mask": mask}

