"""CrossDiff's training losses as officially computed (``train/training_loop.TrainLoop.forward_backward``).

* pretrain: the 3D clip and its 2D projection are noised at the same ``t``; each goes through the network with
  both output heads. Four per-sample masked L2 terms (official ``masked_l2``): ``motion`` (3D->3D, mask
  ``has3d·frame_mask``), ``motion2joint`` (3D->2D, ``has3d·mask2d``), ``joint`` (2D->2D, ``mask2d``) and
  ``joint2motion`` (2D->3D, ``has3d·frame_mask``). The scalar is the mean over the WHOLE batch, so 2D-only clips
  (``has3d`` False) count with 3D terms of 0.
* finetune: only ``masked_l2(x3d, net(x3d_t)['3d'], frame_mask)`` (no ``has3d`` gating), batch mean.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from skeleton_diffusion.utils.errors import InputError

__all__ = ["crossdiff_finetune_loss", "crossdiff_loss", "crossdiff_terms", "loss_for_mode", "masked_l2"]


def masked_l2(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Official ``masked_l2`` -> ``[B]``: squared error summed over the mask, divided by the mask's count (a
    frame mask ``[B, 1, 1, T]`` counts every channel of a frame; a full mask ``[B, C, 1, T]`` counts entries)."""
    err = ((a - b) ** 2 * mask.float()).flatten(1).sum(1)
    n_entries = a.shape[1] * a.shape[2] if mask.shape[1] == 1 else 1
    return err / (mask.flatten(1).sum(1) * n_entries + 1e-8)


def _frame_mask(frame_mask: Tensor, x: Tensor) -> Tensor:
    if frame_mask.dim() == 2:
        frame_mask = frame_mask[:, None, None, :]
    if frame_mask.shape != (x.shape[0], 1, 1, x.shape[-1]):
        raise InputError(f"frame_mask must be [B, T] or [B, 1, 1, T] for x {tuple(x.shape)}, got "
                         f"{tuple(frame_mask.shape)}")
    return frame_mask


def crossdiff_terms(model: Any, x3d: Tensor, x2d: Tensor, text: Tensor, *, has3d: Tensor, frame_mask: Tensor,
                    mask2d: Tensor, t: Tensor, noise3d: Tensor | None = None,
                    noise2d: Tensor | None = None) -> dict[str, Tensor]:
    """The four per-sample pretrain terms ``{name: [B]}`` (module doc). ``model`` has ``.net``, ``.diff3d``,
    ``.diff2d``; ``x3d [B, 263, 1, T]``, ``x2d [B, 134, 1, T]``, ``has3d [B]`` bool, ``frame_mask [B, T]`` bool,
    ``mask2d`` like ``x2d`` (the official ``joint_mask``), ``t [B]``; noises default to fresh normal draws."""
    if mask2d.shape != x2d.shape:
        raise InputError(f"mask2d must have the shape of x2d {tuple(x2d.shape)}, got {tuple(mask2d.shape)}")
    if has3d.shape != (x3d.shape[0],):
        raise InputError(f"has3d must be [B] = [{x3d.shape[0]}], got {tuple(has3d.shape)}")
    fm = _frame_mask(frame_mask, x3d)
    valid = has3d.view(-1, 1, 1, 1)
    mask3d = valid * fm
    mask3d2d = valid * mask2d.float()
    m2d = mask2d.float()
    x3d_t = model.diff3d.q_sample(x3d, t, noise3d)
    x2d_t = model.diff2d.q_sample(x2d, t, noise2d)
    both = ("3d", "2d")
    from3d = model.net(x3d_t, t, text, domain_in="3d", domains_out=both)
    from2d = model.net(x2d_t, t, text, domain_in="2d", domains_out=both)
    return {
        "motion": masked_l2(x3d, from3d["3d"], mask3d),
        "motion2joint": masked_l2(x2d, from3d["2d"], mask3d2d),
        "joint": masked_l2(x2d, from2d["2d"], m2d),
        "joint2motion": masked_l2(x3d, from2d["3d"], mask3d),
    }


def crossdiff_loss(model: Any, x3d: Tensor, x2d: Tensor, text: Tensor, *, has3d: Tensor, frame_mask: Tensor,
                   mask2d: Tensor, t: Tensor, noise3d: Tensor | None, noise2d: Tensor | None,
                   w_2d: float = 1.0, w_m2j: float = 1.0, w_j2m: float = 1.0) -> dict[str, Tensor]:
    """Official pretrain loss, batch means: ``{"motion", "joint", "motion2joint", "joint2motion", "loss"}``
    with ``loss = motion + w_2d·joint + w_m2j·motion2joint + w_j2m·joint2motion`` (per sample, then the mean
    over the whole batch). The official finetune loss is this call with ``w_2d = w_m2j = w_j2m = 0`` and
    ``has3d`` all True (:func:`crossdiff_finetune_loss` computes it without the 2D passes)."""
    terms = crossdiff_terms(model, x3d, x2d, text, has3d=has3d, frame_mask=frame_mask, mask2d=mask2d, t=t,
                            noise3d=noise3d, noise2d=noise2d)
    per_sample = terms["motion"]
    for name, w in (("joint", w_2d), ("motion2joint", w_m2j), ("joint2motion", w_j2m)):
        if float(w) != 0.0:
            per_sample = per_sample + float(w) * terms[name]
    out = {k: v.mean() for k, v in terms.items()}
    out["loss"] = per_sample.mean()
    return out


def crossdiff_finetune_loss(model: Any, x3d: Tensor, text: Tensor, *, frame_mask: Tensor, t: Tensor,
                            noise3d: Tensor | None = None) -> dict[str, Tensor]:
    """Official finetune loss ``{"loss"}``: ``masked_l2(x3d, net(q_sample(x3d))['3d'], frame_mask)``, batch mean
    (the 3D head only, as the official ``return_j=False`` call)."""
    fm = _frame_mask(frame_mask, x3d)
    x_t = model.diff3d.q_sample(x3d, t, noise3d)
    pred = model.net(x_t, t, text, domain_in="3d", domains_out=("3d",))["3d"]
    return {"loss": masked_l2(x3d, pred, fm).mean()}


def loss_for_mode(mode: str, model: Any, batch: dict[str, Tensor], *, t: Tensor, w_m2j: float = 1.0,
                  w_j2m: float = 1.0, noise3d: Tensor | None = None,
                  noise2d: Tensor | None = None) -> dict[str, Tensor]:
    """Official ``forward_backward`` by ``mode`` ('pretrain' | 'finetune') on an official-layout batch
    (``motion``, ``joint``, ``mask [B,1,1,T]``, ``joint_mask``, ``valid``, ``enc_text``)."""
    if mode == "finetune":
        return crossdiff_finetune_loss(model, batch["motion"], batch["enc_text"], frame_mask=batch["mask"], t=t,
                                       noise3d=noise3d)
    if mode != "pretrain":
        raise InputError(f"CrossDiff loss mode must be 'pretrain' or 'finetune', got {mode!r} "
                         "(the official 'finetune_ucf' needs the UCF101 teacher loop and is not provided)")
    return crossdiff_loss(model, batch["motion"], batch["joint"], batch["enc_text"], has3d=batch["valid"].bool(),
                          frame_mask=batch["mask"], mask2d=batch["joint_mask"], t=t, noise3d=noise3d,
                          noise2d=noise2d, w_m2j=w_m2j, w_j2m=w_j2m)

