"""2D->3D lifting metrics as pure batched torch functions (inputs in metres; multiply by 1000 for mm).

Poses are ``[..., J, 3]``; per-pose errors are ``[...]``. Protocols (Human3.6M conventions):

* **MPJPE** (protocol #1): mean Euclidean joint error after making both poses root-relative (joint 0).
* **P-MPJPE** (protocol #2): MPJPE after the similarity Procrustes alignment (rotation, uniform scale,
  translation; reflections excluded) of the prediction onto the ground truth.
* **N-MPJPE**: MPJPE after the optimal uniform scale only (root-relative).
* **MPJVE**: mean Euclidean error of the joint velocities (first differences over time) ``[..., T, J, 3]``.
* Multi-hypothesis ``[B, K, J, 3]``: best-of-K (min over hypotheses of the per-pose error), mean-of-K (mean of
  the per-hypothesis errors), and the error of the hypotheses' mean pose (DiffPose's reported number).
* Coherence (DiffHPE): bone-length standard deviation over time, and left/right bone-length asymmetry.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Mapping, Sequence

import torch
from torch import Tensor

from skeleton_diffusion.data.builders.h36m_cameras import camera_parameters
from skeleton_diffusion.representations.camera import normalize_screen_coordinates, project_to_2d, world_to_camera
from skeleton_diffusion.utils.errors import InputError

__all__ = [
    # the lifting protocol's geometry, re-exported so one module holds what the lifting evaluation needs
    "camera_parameters",
    "normalize_screen_coordinates",
    "project_to_2d",
    "world_to_camera",
    "root_relative", "mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "procrustes_align", "multi_hypothesis",
    "bone_lengths", "bone_length_std", "symmetric_bone_pairs", "bone_asymmetry", "per_action_mean",
    "H36M_ACTIONS", "action_base_name", "official_action_errors",
]


def _check(pred: Tensor, gt: Tensor) -> None:
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise InputError(f"pred and gt must have the same shape [..., J, 3], got {tuple(pred.shape)} and "
                         f"{tuple(gt.shape)}")


def root_relative(x: Tensor, root: int = 0) -> Tensor:
    """Subtract joint ``root`` from every joint of ``x [..., J, 3]``."""
    return x - x[..., root:root + 1, :]


def mpjpe(pred: Tensor, gt: Tensor, root: int | None = 0) -> Tensor:
    """Per-pose mean joint error ``[...]`` (metres) of ``pred, gt [..., J, 3]``; root-relative unless ``root=None``."""
    _check(pred, gt)
    if root is not None:
        pred, gt = root_relative(pred, root), root_relative(gt, root)
    return (pred - gt).norm(dim=-1).mean(dim=-1)


def procrustes_align(pred: Tensor, gt: Tensor) -> Tensor:
    """``pred [..., J, 3]`` aligned onto ``gt`` by the best similarity transform (s R pred + t, det R = +1)."""
    _check(pred, gt)
    p64, g64 = pred.double(), gt.double()
    mu_p, mu_g = p64.mean(dim=-2, keepdim=True), g64.mean(dim=-2, keepdim=True)
    p0, g0 = p64 - mu_p, g64 - mu_g
    norm_p = p0.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)
    norm_g = g0.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)
    p0, g0 = p0 / norm_p, g0 / norm_g
    h = p0.transpose(-1, -2) @ g0                       # [..., 3, 3]
    u, s, vt = torch.linalg.svd(h)
    d = torch.sign(torch.det(vt.transpose(-1, -2) @ u.transpose(-1, -2)))
    fix = torch.ones_like(s)
    fix[..., -1] = d
    r = vt.transpose(-1, -2) @ torch.diag_embed(fix) @ u.transpose(-1, -2)   # rotation applied as (R p^T)^T
    trace = (s * fix).sum(dim=-1, keepdim=True).unsqueeze(-1)
    scale = trace * norm_g / norm_p
    aligned = scale * (p0 * norm_p) @ r.transpose(-1, -2) + mu_g
    return aligned.to(pred.dtype)


def p_mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-pose error ``[...]`` after :func:`procrustes_align` (protocol #2)."""
    return mpjpe(procrustes_align(pred, gt), gt, root=None)


def n_mpjpe(pred: Tensor, gt: Tensor, root: int | None = 0) -> Tensor:
    """Per-pose error ``[...]`` after the least-squares uniform scale ``s = <p, g> / <p, p>``; root-relative
    (joint ``root``) unless ``root=None``: DiffPose's N-MPJPE, no centring, NaN for an all-zero prediction."""
    _check(pred, gt)
    if root is None:
        s = (pred * gt).sum(dim=(-2, -1), keepdim=True) / pred.pow(2).sum(dim=(-2, -1), keepdim=True)
        return mpjpe(s * pred, gt, root=None)
    p, g = root_relative(pred, root), root_relative(gt, root)
    s = (p * g).sum(dim=(-2, -1), keepdim=True) / p.pow(2).sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return mpjpe(s * p, g, root=None)


def mpjve(pred: Tensor, gt: Tensor, root: int | None = 0) -> Tensor:
    """Per-sequence velocity error ``[...]`` of ``pred, gt [..., T, J, 3]`` (T >= 2), metres per frame."""
    _check(pred, gt)
    if pred.dim() < 3 or pred.shape[-3] < 2:
        raise InputError(f"mpjve needs sequences [..., T>=2, J, 3], got {tuple(pred.shape)}")
    if root is not None:
        pred, gt = root_relative(pred, root), root_relative(gt, root)
    vp, vg = pred.diff(dim=-3), gt.diff(dim=-3)
    return (vp - vg).norm(dim=-1).mean(dim=(-1, -2))


def multi_hypothesis(preds: Tensor, gt: Tensor, metric=partial(mpjpe, root=None)) -> dict[str, Tensor]:
    """``preds [B, K, ..., J, 3]``, ``gt [B, ..., J, 3]`` -> per-sample ``{'best': [B], 'mean': [B],
    'of_mean': [B]}``: min / mean over K of the per-hypothesis error (averaged over any frame axes), and the
    error of the mean hypothesis (DiffHPE's ``best`` / ``average`` strategies with the default, uncentred MPJPE)."""
    if preds.dim() != gt.dim() + 1 or preds.shape[0] != gt.shape[0] or preds.shape[2:] != gt.shape[1:]:
        raise InputError(f"preds must be [B, K, ...] matching gt {tuple(gt.shape)}, got {tuple(preds.shape)}")
    err = metric(preds, gt.unsqueeze(1).expand_as(preds))          # [B, K, ...]
    err = err.reshape(err.shape[0], err.shape[1], -1).mean(dim=-1)
    mean_err = metric(preds.mean(dim=1), gt).reshape(gt.shape[0], -1).mean(dim=-1)
    return {"best": err.min(dim=1).values, "mean": err.mean(dim=1), "of_mean": mean_err}


def bone_lengths(x: Tensor, limbs: Sequence[tuple[int, int]]) -> Tensor:
    """Lengths ``[..., L]`` of the ``(parent, child)`` limbs of ``x [..., J, 3]``."""
    idx = torch.as_tensor(list(limbs), dtype=torch.long, device=x.device)
    return (x[..., idx[:, 1], :] - x[..., idx[:, 0], :]).norm(dim=-1)


def bone_length_std(seq: Tensor, limbs: Sequence[tuple[int, int]], unbiased: bool = True) -> Tensor:
    """Per-sequence mean over bones of the std over time of the bone length: ``[..., T, J, 3]`` -> ``[...]``
    (input units; 0 for a rigid skeleton). ``unbiased=True`` (default) is DiffHPE's seg std (``torch.std``,
    divisor T - 1); ``unbiased=False`` the population std (divisor T)."""
    if seq.dim() < 3 or seq.shape[-3] < 2:
        raise InputError(f"bone_length_std needs sequences [..., T>=2, J, 3], got {tuple(seq.shape)}")
    return bone_lengths(seq, limbs).std(dim=-2, unbiased=unbiased).mean(dim=-1)


def symmetric_bone_pairs(joint_names: Sequence[str], limbs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pairs of limb indices ``(left, right)`` whose child joints are mirror names (``LKnee``/``RKnee``)."""
    child = {i: joint_names[c] for i, (_, c) in enumerate(limbs)}
    pairs = []
    for i, n in child.items():
        m = re.match(r"^L([A-Z].*)$", n)
        if m:
            for k, n2 in child.items():
                if n2 == "R" + m.group(1):
                    pairs.append((i, k))
    return pairs


def bone_asymmetry(x: Tensor, limbs: Sequence[tuple[int, int]], pairs: Sequence[tuple[int, int]]) -> Tensor:
    """Per-pose mean over symmetric pairs of ``|len(left) - len(right)|``: ``[..., J, 3]`` -> ``[...]`` metres."""
    if not pairs:
        raise InputError("bone_asymmetry needs at least one left/right limb pair")
    lengths = bone_lengths(x, limbs)
    p = torch.as_tensor(list(pairs), dtype=torch.long, device=x.device)
    return (lengths[..., p[:, 0]] - lengths[..., p[:, 1]]).abs().mean(dim=-1)


def per_action_mean(values: Tensor, action_ids: Tensor, action_names: Sequence[str], *,
                    missing_as_zero: bool = False) -> Mapping[str, float]:
    """Mean of ``values [N]`` per action; also ``'average'``: the mean over actions (H36M convention).

    ``missing_as_zero=True`` is DiffPose's official average: the sum of the per-action means divided by
    ``len(action_names)`` (15 on H36M), actions without data counting 0 (so an action-filtered run reports its
    error divided by 15). Default: the mean over the actions present."""
    out: dict[str, float] = {}
    for a, name in enumerate(action_names):
        sel = action_ids == a
        if bool(sel.any()):
            out[str(name)] = float(values[sel].double().mean())
    denom = len(action_names) if missing_as_zero else len(out)
    out["average"] = float(sum(out.values()) / max(1, denom))
    return out


#: The official 15-action list (``test_action_list`` of ``test_hyber``), in its order.
H36M_ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)


def action_base_name(action: str) -> str:
    """``'Walking 1'`` -> ``'Walking'`` (the text before the first space)."""
    return action.split(" ")[0]


def official_action_errors(pred: Tensor, gt: Tensor, actions: Sequence[str], batch_size: int | None = None, *,
                           action_list: Sequence[str] = H36M_ACTIONS, mixed_batch_p2: bool = True,
                           average_over_all_actions: bool = True, root: int | None = 0) -> dict[str, object]:
    """DiffPose's official aggregation (``common/utils.py``: ``test_calculation`` + ``print_error``): per-action
    protocol #1/#2 of ``pred, gt [N, J, 3]`` (metres) with ``actions[N]`` (H36M names, a take
    suffix allowed), accumulated over consecutive batches of ``batch_size`` (all at once if None).

    Defects reproduced by default (switches): ``mixed_batch_p2`` (a batch mixing actions credits every pose the
    batch-mean P-MPJPE) and ``average_over_all_actions`` (sum of the 15 per-action means / 15, absent actions
    counting 0). Returns ``{'per_action_p1': [A], 'per_action_p2': [A]}`` (metres, float64, 0 for absent actions) and
    ``'p1_mm'``, ``'p2_mm'``: the reported averages (mm).
    """
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise InputError(f"pred and gt must both be [N, J, 3], got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if len(actions) != pred.shape[0]:
        raise InputError(f"actions must name each of the {pred.shape[0]} poses, got {len(actions)} names")
    index = {a: i for i, a in enumerate(action_list)}
    names = [action_base_name(a) for a in actions]
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise InputError(f"unknown actions {unknown}; expected one of {list(action_list)}")
    ids = torch.tensor([index[a] for a in names], dtype=torch.long)
    n_act = len(action_list)
    sums = {k: torch.zeros(n_act, dtype=torch.float64) for k in ("p1", "p2")}
    counts = {k: torch.zeros(n_act, dtype=torch.float64) for k in ("p1", "p2")}
    step = pred.shape[0] if batch_size is None else int(batch_size)
    for start in range(0, pred.shape[0], step):
        p, g, a = pred[start:start + step], gt[start:start + step], ids[start:start + step]
        d1 = mpjpe(p, g, root=root).double()
        d2 = p_mpjpe(p, g).double()
        if mixed_batch_p2 and len(set(a.tolist())) > 1:
            d2 = d2.mean().expand_as(d2)
        for k, d in (("p1", d1), ("p2", d2)):
            sums[k].index_add_(0, a, d)
            counts[k].index_add_(0, a, torch.ones_like(d))
    out: dict[str, object] = {}
    for k in ("p1", "p2"):
        per = torch.where(counts[k] > 0, sums[k] / counts[k].clamp_min(1), torch.zeros_like(sums[k]))
        out[f"per_action_{k}"] = per
        denom = n_act if average_over_all_actions else max(1, int((counts[k] > 0).sum()))
        out[f"{k}_mm"] = float(per.sum() * 1000.0 / denom)
    return out
