"""Checks on a user-provided observation before prediction ("predict on your own data").

:func:`validate_observation` turns ``(T_obs, J, 3)`` or ``(B, T_obs, J, 3)`` joint positions (metres, the
dataset's joint order, root included, as in the processed data) into a float32 tensor ``[B, T_obs, J, 3]``,
or raises :class:`~skeleton_diffusion.utils.errors.InputError` saying exactly what is wrong and how to fix
it: number of dimensions, joint count, length, NaN/inf, units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from skeleton_diffusion.utils.errors import InputError

__all__ = ["validate_observation", "DATASET_FPS", "JOINT_ORDER_DOC", "PLAUSIBLE_BODY_EXTENT_M"]

#: Frame rate of each dataset's processed data (0.5 s of observation = ``fps // 2`` frames).
DATASET_FPS: dict[str, int] = {"amass": 60, "amass-mano": 60, "3dpw": 60, "h36m": 50, "freeman": 30}
JOINT_ORDER_DOC = "docs/joint_orders.md"
#: Range (metres) accepted for the median per-frame body extent (largest side of the joints' bounding box).
PLAUSIBLE_BODY_EXTENT_M: tuple[float, float] = (0.25, 3.5)


def _fmt_list(values: list[Any], limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in total)" if len(values) > limit else "")


def _length_hint(skeleton, obs_length: int) -> str:
    fps = DATASET_FPS.get(skeleton.name)
    if fps is None:
        return f"T_obs = {obs_length} frames (0.5 s at the dataset's frame rate)"
    return f"T_obs = 0.5 s x {fps} fps = {obs_length} frames"


def validate_observation(obs: Any, skeleton, obs_length: int, *, includes_root: bool = True,
                         allow_longer: bool = False, check_units: bool = True) -> torch.Tensor:
    """Validate an observed motion and return it as ``float32 [B, T_obs, J, 3]`` (metres, root included).

    Args:
        obs: ``(T_obs, J, 3)`` or ``(B, T_obs, J, 3)`` numpy array / tensor / nested list, metres, joint
            order of ``skeleton`` (``skeleton.joint_names``; see docs/joint_orders.md), root at index 0.
        skeleton: the dataset's :class:`~skeleton_diffusion.skeletons.Skeleton`.
        obs_length: expected number of observed frames (0.5 s: 30 for AMASS at 60 fps, 25 for H36M, 15 for
            FreeMan).
        includes_root: set False for ``N = J - 1`` joints that are already root-centred with the root
            dropped (metric space); a zero root is then put back at index 0.
        allow_longer: accept more than ``obs_length`` frames and keep only the last ``obs_length``.
        check_units: reject poses whose size looks like centimetres, millimetres or normalised units.

    Raises:
        InputError: wrong number of dimensions, wrong last dimension, wrong joint count, wrong length,
            NaN/inf values (frames and joints are named) or implausible units.
    """
    if isinstance(obs, torch.Tensor):
        arr = obs.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            arr = np.asarray(obs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"observation must be a numeric array, got {type(obs).__name__}: {exc}") from exc
    n_expected = skeleton.num_joints if includes_root else skeleton.num_nodes
    what = "J joints with the root" if includes_root else "N joints without the root"
    if arr.ndim not in (3, 4):
        raise InputError(
            f"observation must have 3 dims (T_obs, {n_expected}, 3) or 4 dims (B, T_obs, {n_expected}, 3), "
            f"got {arr.ndim} dims with shape {tuple(arr.shape)}"
        )
    if arr.ndim == 3:
        arr = arr[None]
    b, t, j, c = arr.shape
    if c != 3:
        raise InputError(f"observation's last dimension must be 3 (x, y, z in metres), got shape {tuple(arr.shape)}")
    if j != n_expected:
        hint = ""
        if includes_root and j == skeleton.num_nodes:
            hint = " It looks like the root was dropped: pass includes_root=False for root-centred input."
        elif not includes_root and j == skeleton.num_joints:
            hint = " It looks like the root is included: pass includes_root=True."
        raise InputError(
            f"observation has {j} joints but skeleton '{skeleton.name}' expects {n_expected} ({what}) in the "
            f"order listed in {JOINT_ORDER_DOC} (first: {', '.join(skeleton.joint_names[:4])}, ...).{hint}"
        )
    if t != obs_length:
        if t > obs_length and allow_longer:
            arr = arr[:, t - obs_length:]
            t = obs_length
        else:
            extra = (" Pass allow_longer=True to use the last frames only." if t > obs_length else
                     " Provide more frames (resample your motion to the dataset's frame rate first).")
            raise InputError(
                f"observation has {t} frames but the model expects {_length_hint(skeleton, obs_length)}.{extra}"
            )
    finite = np.isfinite(arr).all(axis=-1)  # [B, T, J]
    if not finite.all():
        bad = np.argwhere(~finite)
        frames = sorted({int(x) for x in bad[:, 1]})
        names = skeleton.joint_names if includes_root else skeleton.node_names
        joints = sorted({int(x) for x in bad[:, 2]})
        batches = sorted({int(x) for x in bad[:, 0]})
        raise InputError(
            f"observation contains NaN/inf values in {len(bad)} joint positions: "
            + (f"batch items [{_fmt_list(batches)}], " if b > 1 else "")
            + f"frames [{_fmt_list(frames)}], joints [{_fmt_list([f'{k}:{names[k]}' for k in joints])}]. "
            "Fill or interpolate missing joints before predicting."
        )
    if not includes_root:
        arr = np.concatenate([np.zeros((b, t, 1, 3)), arr], axis=2)
    if check_units:
        _check_units(arr, skeleton)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _check_units(arr: np.ndarray, skeleton) -> None:
    """Median body extent (largest side of each frame's bounding box) must look like metres."""
    extent = float(np.median(np.ptp(arr, axis=2).max(axis=-1)))
    limbs = np.asarray(skeleton.limbs, dtype=np.int64)
    bones = np.linalg.norm(arr[:, :, limbs[:, 0]] - arr[:, :, limbs[:, 1]], axis=-1)
    bone = float(np.median(bones))
    lo, hi = PLAUSIBLE_BODY_EXTENT_M
    if lo <= extent <= hi:
        return
    facts = f"median body extent {extent:.4g} and median bone length {bone:.4g} in your units"
    if extent > hi:
        ratio = extent / 1.6
        unit = "centimetres" if ratio < 10 ** 2.5 else "millimetres"
        div = 100 if unit == "centimetres" else 1000
        raise InputError(
            f"observation looks like {unit}, not metres ({facts}; a person is about 0.5-2 m): "
            f"convert to metres (divide by {div})."
        )
    raise InputError(
        f"observation is too small for metres ({facts}; a person is about 0.5-2 m): it may be normalised "
        "(e.g. divided by pose_box_size), in another unit, or collapsed to a point; pass positions in metres."
    )


def check_joint_names(joint_names: Any, skeleton, what: str = "the observation") -> None:
    """Refuse observations whose joint order (names) differs from ``skeleton``'s, naming both skeletons (H17)."""
    from skeleton_diffusion.skeletons.formats.files import describe_mismatch

    names = [str(n) for n in np.asarray(joint_names).reshape(-1).tolist()]
    if tuple(names) != tuple(skeleton.joint_names):
        raise InputError(describe_mismatch(what, names, "the model", skeleton)
                         + " Reorder the observation's joints (or use a model trained on its skeleton).")
