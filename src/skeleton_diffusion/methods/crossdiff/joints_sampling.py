"""Sampling CrossDiff and loading its checkpoints as a text-to-motion generator.

* ``start='3d'``: the ordinary reverse chain in the 3D domain (MDM's sampler,
  :func:`~..diffusion.respace.sample_motion`, with classifier-free guidance / respacing / DDIM).
* ``start='2d'`` (the paper's "mixed" sampling, official ``test_generatefrom2d``): start from 2D noise and run
  the 2D chain down to step ``change_idx``; there the 2D→3D decoder gives x̂₀³ᴰ, which is re-noised to the next
  kept step (``q_sample``) and the 3D chain finishes (``change_idx = 0``: x̂₀³ᴰ is the result).

    from skeleton_diffusion.methods.crossdiff.joints_sampling import load_crossdiff
    g = load_crossdiff("output/.../<crossdiff run>")
    motion = g.generate(texts=["a person walks forward"], num_samples=2, start="2d")  # [B, S, T, J, 3] metres

The generator follows the interface of ``inference_mdm.MDMPredictor.generate`` (``.condition == 'text'``), so
``eval.py task=generation checkpoint_path=<crossdiff run> [task.crossdiff_start=2d]`` scores it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import InputError

__all__ = ["sample_crossdiff", "CrossDiffPredictor", "load_crossdiff", "maybe_load_crossdiff"]

START_DOMAINS = ("3d", "2d")


def _ddim_step(diffusion: Any, x: Tensor, x0: Tensor, t: int, t_next: int, eta: float,
               generator: Optional[torch.Generator]) -> Tensor:
    """One generalised DDIM step ``t -> t_next`` (the update of :func:`~..diffusion.respace.sample_motion`)."""
    from skeleton_diffusion.diffusion.samplers import white_noise

    U, lam_bar = diffusion.eigen_frame()
    ac = diffusion.alphas_cumprod
    rot_in = (lambda v: v) if U is None else (lambda v: U.mT @ v)
    rot_out = (lambda v: v) if U is None else (lambda v: U @ v)
    lb_t, lb_n = lam_bar[t].unsqueeze(-1), lam_bar[t_next].unsqueeze(-1)
    eps_hat = rot_in(x - ac[t].sqrt() * x0) / lb_t.sqrt()
    var = (eta ** 2) * lb_n * (lb_t - (ac[t] / ac[t_next]) * lb_n).clamp(min=0) / lb_t
    out = ac[t_next].sqrt() * x0 + rot_out((lb_n - var).clamp(min=0).sqrt() * eps_hat)
    if eta > 0:
        out = out + rot_out(var.sqrt() * white_noise(tuple(x.shape), x, generator))
    return out


@torch.no_grad()
def sample_crossdiff(model: Any, text: Tensor, *, start: str = "3d", steps: Optional[int] = None, eta: float = 1.0,
                     guidance_param: float = 1.0, change_idx: int = 300,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """Sample 3D motion ``[B, J, T*3]`` (model space) for text features ``text [B, D]`` from a
    :class:`~skeleton_diffusion.methods.crossdiff.trainer.CrossDiffusion` (module doc for ``start``)."""
    from skeleton_diffusion.diffusion.respace import guided_x0, sample_motion, space_timesteps
    from skeleton_diffusion.diffusion.samplers import white_noise
    from skeleton_diffusion.methods.crossdiff.joints_network import DomainView

    if start not in START_DOMAINS:
        raise InputError(f"start must be one of {START_DOMAINS}, got {start!r}")
    d3, d2 = model.diff3d, model.diff2d
    b = text.shape[0]
    if start == "3d":
        return sample_motion(d3, b, x_cond=text, steps=steps, eta=eta, guidance_param=guidance_param,
                             generator=generator)
    kept = space_timesteps(d2.num_timesteps, steps)[::-1]
    pairs = list(zip(kept, kept[1:] + [-1]))
    cross = SimpleNamespace(model=DomainView(model.net, "2d", "3d"), activation=d3.activation)
    x = white_noise((b, d2.channels, d2.seq_length), d2.betas, generator)
    domain = "2d"
    for t, t_next in pairs:
        tt = torch.full((b,), t, device=x.device, dtype=torch.long)
        if domain == "2d" and t <= int(change_idx):
            x0 = guided_x0(cross, x, tt, text, guidance_param)                  # 2D -> 3D hand-over
            if t_next < 0:
                return x0
            nt = torch.full((b,), t_next, device=x.device, dtype=torch.long)
            x = d3.q_sample(x0, nt, white_noise(tuple(x0.shape), x0, generator))
            domain = "3d"
            continue
        diff = d2 if domain == "2d" else d3
        x0 = guided_x0(diff, x, tt, text, guidance_param)
        if t_next < 0:
            return x0
        x = _ddim_step(diff, x, x0, t, t_next, eta, generator)
    return x


class CrossDiffPredictor:
    """A loaded CrossDiff checkpoint: text -> 3D motion in metres (MDM generator interface).

    ``start`` (``'3d'`` or ``'2d'``) is the default sampling start; ``generate(..., start=...)`` overrides it."""

    condition = "text"

    def __init__(self, model: Any, spec: Any, config: Any, skeleton: Any, text_encoder: Any, device: torch.device,
                 checkpoint: Path, start: str = "3d") -> None:
        if start not in START_DOMAINS:
            raise InputError(f"start must be one of {START_DOMAINS}, got {start!r}")
        self.diffusion, self.spec, self.config, self.skeleton = model, spec, config, skeleton
        self.text_encoder, self.device, self.checkpoint, self.start = text_encoder, device, checkpoint, start
        m = config.model
        cond = config.get("condition") or {}
        self.steps = m.get("sampling_steps")
        self.eta = float(m.get("sampling_eta", 1.0))
        self.change_idx = int(m.get("change_idx", 300))
        self.guidance_param = float(cond.get("guidance_param", 1.0))

    model = property(lambda self: self)
    method_name = property(lambda self: f"CrossDiff ({self.start} start)")
    fps = property(lambda self: self.spec.fps)
    pose_box_size = property(lambda self: self.spec.pose_box_size)
    pred_length = property(lambda self: self.spec.num_frames)

    @torch.no_grad()
    def generate(self, num_frames: Optional[int] = None, *, texts: Optional[Sequence[str]] = None,
                 actions: Any = None, num_samples: int = 1, guidance_param: Optional[float] = None,
                 generator: Optional[torch.Generator] = None, sampling_steps: Optional[int] = None,
                 start: Optional[str] = None) -> Tensor:
        """``[B, S, T, J, 3]`` metres (canonical frame of :mod:`..data.generation`, first-frame root at the origin)
        for ``texts`` (B captions)."""
        from skeleton_diffusion.diffusion.motion_space import x_to_motion

        if num_frames not in (None, self.spec.num_frames):
            raise InputError(f"this CrossDiff generates {self.spec.num_frames} frames, got num_frames={num_frames}")
        if not texts:
            raise InputError("CrossDiff is text-conditioned: pass texts=[...]")
        s = int(num_samples)
        text = self.text_encoder(list(texts)).to(self.device).repeat_interleave(s, dim=0)
        steps = sampling_steps if sampling_steps is not None else self.steps
        x = sample_crossdiff(self.diffusion, text, start=start or self.start,
                             steps=None if steps in (None, "null") else int(steps), eta=self.eta,
                             guidance_param=self.guidance_param if guidance_param is None else float(guidance_param),
                             change_idx=self.change_idx, generator=generator)
        m = x_to_motion(x, 3) * self.spec.pose_box_size
        return m.reshape(len(texts), s, *m.shape[1:]).cpu()


def load_crossdiff(path: str | Path, device: str | torch.device = "auto", *, use_ema: bool = False,
                   start: str = "3d") -> CrossDiffPredictor:
    """Load a CrossDiff checkpoint (file or run folder) -> :class:`CrossDiffPredictor` (frozen, eval mode); a
    converted official run (``meta.representation == 'official'``) -> the official generator
    (:func:`skeleton_diffusion.methods.crossdiff.sampling.load_run`)."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.methods.crossdiff.trainer import build_crossdiff
    from skeleton_diffusion.training.motion import load_motion_checkpoint
    from skeleton_diffusion.utils.io import safe_torch_load

    ckpt = safe_torch_load(resolve_checkpoint(path))
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if isinstance(meta, dict) and meta.get("representation") == "official":
        from skeleton_diffusion.methods.crossdiff.sampling import load_run

        return load_run(path, device)  # type: ignore[return-value]

    model, spec, cfg, skeleton, text_encoder, dev, path = load_motion_checkpoint(
        path, device, use_ema, "crossdiff", build_crossdiff, "a CrossDiff", with_text=True)
    return CrossDiffPredictor(model, spec, cfg, skeleton, text_encoder, dev, path, start)


def maybe_load_crossdiff(path: str | Path, device: str | torch.device = "auto", *, start: Optional[str] = None,
                         use_ema: bool = False) -> Optional[CrossDiffPredictor]:
    """:func:`load_crossdiff` when ``path`` (file or run folder) is a CrossDiff checkpoint, else None (the hook
    the generation protocol calls through the registry; ``start`` None = '3d')."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.utils.io import safe_torch_load

    from skeleton_diffusion.methods.crossdiff.trainer import is_crossdiff_checkpoint

    if not is_crossdiff_checkpoint(safe_torch_load(resolve_checkpoint(path))):
        return None
    return load_crossdiff(path, device, start=start or "3d", use_ema=use_ema)
