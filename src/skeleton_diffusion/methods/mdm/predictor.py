"""Load MDM checkpoints and sample from them: prediction (``condition=past``), generation (action / text) and
editing by inpainting.

    from skeleton_diffusion.methods.registry import load_model
    p = load_model("output/hmp/synthetic/diffusion/<mdm run>")     # -> MDMPredictor for MDM checkpoints
    futures = p.predict(obs, num_samples=50, seed=0)               # obs [T_obs, J, 3] metres -> [B, S, T, J, 3]
    motions = p.generate(120, actions=torch.tensor([0, 3]))        # action/text models -> [B, S, T, J, 3] metres
    edited = p.edit(motion, mode="inbetween", keep=[0, 30, 90, 119])

Sampling options (constructor / keywords): ``sampling_steps`` (None = full chain, else respaced), ``eta``
(1 = MDM's ancestral, 0 = DDIM), ``guidance_param`` (classifier-free guidance scale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import InputError

__all__ = ["MDMSampler", "MDMPredictor", "is_mdm_checkpoint", "build_mdm_from_checkpoint", "load_mdm",
           "edit_mask"]


def is_mdm_checkpoint(ckpt: Any) -> bool:
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    return isinstance(meta, dict) and meta.get("method") == "mdm"


class MDMSampler:
    """Sampling with a motion diffusion in model space. ``spec``: :class:`~.training.mdm_trainer.MDMSpec`."""

    def __init__(self, diffusion: nn.Module, spec: Any, *, steps: Optional[int] = None, eta: float = 1.0,
                 guidance_param: float = 1.0) -> None:
        self.diffusion, self.spec = diffusion, spec
        self.steps = None if steps in (None, "null", "None") else int(steps)
        self.eta, self.guidance_param = float(eta), float(guidance_param)

    def _sample(self, n: int, x_cond: Optional[Tensor], generator: Optional[torch.Generator], **kw: Any) -> Tensor:
        from skeleton_diffusion.diffusion.respace import sample_motion

        kw.setdefault("steps", self.steps)
        kw.setdefault("eta", self.eta)
        kw.setdefault("guidance_param", self.guidance_param)
        return sample_motion(self.diffusion, n, x_cond=x_cond, generator=generator, **kw)

    @torch.no_grad()
    def predict_past(self, obs: Tensor, num_samples: int, pred_length: Optional[int] = None,
                     generator: Optional[torch.Generator] = None, **kw: Any) -> Tensor:
        """``obs [B, T_obs, N, 3]`` input space -> ``[B, S, T_pred, N, 3]`` input space. Horizons longer than the
        model's are rolled out autoregressively (the last ``T_obs`` predicted frames become the next past)."""
        from skeleton_diffusion.diffusion.motion_space import x_to_motion

        if self.spec.mode != "past":
            raise InputError(f"this MDM is {self.spec.mode}-conditioned; prediction needs condition=past")
        b, s = obs.shape[0], int(num_samples)
        ph = int(pred_length or self.spec.num_frames)
        past = obs.to(self.diffusion.betas).repeat_interleave(s, dim=0)        # [B*S, T_obs, N, 3]
        chunks, done = [], 0
        while done < ph:
            x = self._sample(past.shape[0], past, generator, **kw)
            fut = x_to_motion(x)                                                  # [B*S, T, N, 3]
            chunks.append(fut)
            done += fut.shape[1]
            if done < ph:
                past = torch.cat([past, fut], dim=1)[:, -self.spec.obs_length:]
        pred = torch.cat(chunks, dim=1)[:, :ph]
        return pred.reshape(b, s, ph, *pred.shape[2:])

    @torch.no_grad()
    def generate(self, x_cond: Optional[Tensor], batch: int, num_samples: int = 1,
                 generator: Optional[torch.Generator] = None, **kw: Any) -> Tensor:
        """Action / text / unconditional generation -> ``[B, S, T, J, 3]`` model space."""
        from skeleton_diffusion.diffusion.motion_space import x_to_motion

        cond = None if x_cond is None else x_cond.repeat_interleave(int(num_samples), dim=0)
        x = self._sample(batch * int(num_samples), cond, generator, **kw)
        m = x_to_motion(x)
        return m.reshape(batch, int(num_samples), *m.shape[1:])


def edit_mask(mode: str, num_frames: int, num_joints: int, keep: Sequence[int]) -> Tensor:
    """Known-part mask ``[T, J]`` (True = kept from the input) for the editing modes:
    ``prefix``: ``keep=[n]`` keeps the first n frames; ``inbetween``: ``keep`` lists the kept frames (``[a, b]``
    with a < b and length 2 means the frames a..b are *generated*, the rest kept — the official in-between);
    ``joints``: ``keep`` lists the kept joint indices (all frames), the other joints are generated."""
    mask = torch.zeros(num_frames, num_joints, dtype=torch.bool)
    keep = [int(k) for k in keep]
    if mode == "prefix":
        if len(keep) != 1 or not 0 < keep[0] < num_frames:
            raise InputError(f"mode=prefix needs keep=[n] with 0 < n < {num_frames}, got {keep}")
        mask[: keep[0]] = True
    elif mode == "inbetween":
        if not keep or any(not 0 <= k < num_frames for k in keep):
            raise InputError(f"mode=inbetween needs keep=[frame indices in 0..{num_frames - 1}], got {keep}")
        mask[keep] = True
    elif mode == "joints":
        if not keep or any(not 0 <= k < num_joints for k in keep):
            raise InputError(f"mode=joints needs keep=[joint indices in 0..{num_joints - 1}], got {keep}")
        mask[:, keep] = True
    else:
        raise InputError(f"edit mode must be prefix | inbetween | joints, got {mode!r}")
    return mask


def build_mdm_from_checkpoint(path: str | Path, device: str | torch.device = "auto", *, use_ema: bool = False
                              ) -> tuple[nn.Module, Any, DictConfig, Any, Optional[nn.Module]]:
    """-> ``(diffusion, spec, train config, skeleton, text encoder or None)`` of an MDM checkpoint (frozen,
    eval mode)."""
    from skeleton_diffusion.training.motion import load_motion_checkpoint
    from skeleton_diffusion.methods.mdm.build import build_mdm

    diffusion, spec, cfg, skeleton, text_encoder, _, _ = load_motion_checkpoint(
        path, device, use_ema, "mdm", build_mdm, "an MDM")
    return diffusion, spec, cfg, skeleton, text_encoder


class MDMPredictor:
    """A loaded MDM checkpoint with metre-space I/O (the counterpart of :class:`~.inference.Predictor`)."""

    def __init__(self, diffusion: nn.Module, spec: Any, config: DictConfig, skeleton: Any, device: torch.device,
                 checkpoint: Path, text_encoder: Optional[nn.Module] = None) -> None:
        self.diffusion, self.spec, self.config, self.skeleton = diffusion, spec, config, skeleton
        self.text_encoder = text_encoder
        self.device, self.checkpoint = device, checkpoint
        m = config.model
        cond = config.get("condition") or {}
        self.sampler = MDMSampler(diffusion, spec, steps=m.get("sampling_steps"),
                                  eta=float(m.get("sampling_eta", 1.0)),
                                  guidance_param=float(cond.get("guidance_param", 1.0)))

    condition = property(lambda self: self.spec.mode)
    model = property(lambda self: self)  # ``predictor.model.pose_box_size`` as for SkeletonDiffusion's Predictor
    obs_length = property(lambda self: self.spec.obs_length)
    pred_length = property(lambda self: self.spec.num_frames)
    fps = property(lambda self: self.spec.fps)
    pose_box_size = property(lambda self: self.spec.pose_box_size)

    def _gen(self, seed: Optional[int]) -> Optional[torch.Generator]:
        if seed is None:
            return None
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        return g

    @torch.no_grad()
    def predict(self, obs: Any, num_samples: int = 50, seed: Optional[int] = 0, *, pred_length: Optional[int] = None,
                allow_longer: bool = False, return_numpy: bool = True, **sample_kw: Any) -> Any:
        """Like :meth:`.inference.Predictor.predict`: ``obs [T_obs, J, 3]`` or ``[B, T_obs, J, 3]`` metres ->
        ``[B, S, T_pred, J, 3]`` metres (hip-relative poses placed at the last observed root)."""
        from skeleton_diffusion.representations.hmp import to_input_space
        from skeleton_diffusion.tasks.hmp.input_checks import validate_observation

        x = torch.as_tensor(validate_observation(obs, self.skeleton, self.obs_length, allow_longer=allow_longer),
                            dtype=torch.float32)
        x_in = to_input_space(x, self.pose_box_size).to(self.device)
        pred = self.sampler.predict_past(x_in, num_samples, pred_length, self._gen(seed), **sample_kw)
        pred = (pred * self.pose_box_size).cpu()
        root = x[:, -1, 0].view(x.shape[0], 1, 1, 1, 3)
        full = torch.cat([torch.zeros_like(pred[..., :1, :]), pred], dim=-2) + root
        return full.numpy() if return_numpy else full

    @torch.no_grad()
    def generate(self, num_frames: Optional[int] = None, *, texts: Optional[Sequence[str]] = None,
                 actions: Optional[Any] = None, num_samples: int = 1, guidance_param: Optional[float] = None,
                 generator: Optional[torch.Generator] = None, sampling_steps: Optional[int] = None,
                 batch: Optional[int] = None) -> Tensor:
        """Generate ``[B, S, T, J, 3]`` metres (canonical frame of :mod:`.data.generation`). ``B`` =
        ``len(texts)`` / ``len(actions)`` (or ``batch`` for an unconditional model)."""
        if num_frames not in (None, self.spec.num_frames):
            raise InputError(f"this MDM generates {self.spec.num_frames} frames, got num_frames={num_frames}")
        mode = self.spec.mode
        if mode == "text":
            if not texts:
                raise InputError("a text-conditioned MDM needs texts=[...]")
            cond = self.text_encoder(list(texts)).to(self.device)
        elif mode == "action":
            if actions is None:
                raise InputError("an action-conditioned MDM needs actions=[...]")
            cond = torch.as_tensor(actions, dtype=torch.long, device=self.device).view(-1)
            if int(cond.max()) >= self.spec.num_actions or int(cond.min()) < 0:
                raise InputError(f"actions must be in [0, {self.spec.num_actions - 1}], got {cond.tolist()}")
        elif mode == "none":
            cond = None
        else:
            raise InputError("generate() is for action/text models; use predict(obs) for condition=past")
        b = int(cond.shape[0]) if cond is not None else int(batch or 1)
        kw: dict[str, Any] = {}
        if guidance_param is not None:
            kw["guidance_param"] = float(guidance_param)
        if sampling_steps is not None:
            kw["steps"] = int(sampling_steps)
        out = self.sampler.generate(cond, b, num_samples, generator, **kw)
        return (out * self.pose_box_size).cpu()

    @torch.no_grad()
    def edit(self, motion: Any, mode: str, keep: Sequence[int], *, num_samples: int = 1, seed: Optional[int] = 0,
             texts: Optional[Sequence[str]] = None, actions: Optional[Any] = None,
             guidance_param: Optional[float] = None) -> np.ndarray:
        """Inpainting edit of ``motion [T, J, 3]`` metres (``T`` = the model's frames; for ``condition=past``
        the full observed+future window ``T_obs + T`` in world coordinates is expected and the observation
        conditions the model, and the result follows the input's future root trajectory) -> ``[S, T, J, 3]``
        metres with the kept part equal to the input."""
        from skeleton_diffusion.diffusion.motion_space import motion_to_x, x_to_motion
        from skeleton_diffusion.representations.hmp import to_input_space

        m = torch.as_tensor(np.asarray(motion), dtype=torch.float32)
        if m.dim() != 3 or m.shape[-1] != 3:
            raise InputError(f"motion must be [T, J, 3] metres, got {tuple(m.shape)}")
        s = int(num_samples)
        cond = None
        if self.spec.mode == "past":
            need = self.spec.obs_length + self.spec.num_frames
            if m.shape[0] != need or m.shape[1] != self.skeleton.num_joints:
                raise InputError(f"condition=past editing needs motion [{need}, {self.skeleton.num_joints}, 3] "
                                 f"(observed + future frames), got {tuple(m.shape)}")
            model_m = to_input_space(m, self.pose_box_size)
            cond = model_m[None, : self.spec.obs_length].to(self.device).repeat_interleave(s, 0)
            target = model_m[self.spec.obs_length:]
        else:
            if tuple(m.shape[:2]) != (self.spec.num_frames, self.spec.num_nodes):
                raise InputError(f"motion must be [{self.spec.num_frames}, {self.spec.num_nodes}, 3], "
                                 f"got {tuple(m.shape)}")
            target = m / self.pose_box_size
            if self.spec.mode == "action":
                cond = torch.as_tensor(actions if actions is not None else [0], dtype=torch.long,
                                       device=self.device).view(-1)[:1].repeat(s)
            elif self.spec.mode == "text":
                cond = self.text_encoder(list(texts or [""])[:1]).to(self.device).repeat_interleave(s, 0)
        if self.spec.mode == "past" and mode == "joints":  # joint indices (root = 0) -> model nodes
            keep = [int(k) - 1 for k in keep if int(k) > 0]
        mask_tj = edit_mask(mode, target.shape[0], target.shape[1], keep)
        known = motion_to_x(target[None].expand(s, -1, -1, -1).contiguous()).to(self.device)
        known_mask = motion_to_x(mask_tj[None, :, :, None].expand(s, -1, -1, 3).contiguous()).to(self.device)
        kw: dict[str, Any] = {"known": known, "known_mask": known_mask}
        if guidance_param is not None:
            kw["guidance_param"] = float(guidance_param)
        x = self.sampler._sample(s, cond, self._gen(seed), **kw)
        out = x_to_motion(x).cpu() * self.pose_box_size                        # [S, T, N, 3]
        if self.spec.mode == "past":  # back to world along the input's own future root trajectory
            root = m[self.spec.obs_length:, 0].view(1, -1, 1, 3)
            out = torch.cat([torch.zeros_like(out[..., :1, :]), out], dim=-2) + root
        return out.numpy()


def load_mdm(path: str | Path, device: str | torch.device = "auto", *, use_ema: bool = False) -> MDMPredictor:
    """Load an MDM checkpoint (file or run folder) -> :class:`MDMPredictor`."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.utils.device import resolve_device

    path = resolve_checkpoint(path)
    dev = resolve_device(device)
    from skeleton_diffusion.utils.io import safe_torch_load

    meta = safe_torch_load(path).get("meta", {})
    if meta.get("variant") == "official":  # a converted official checkpoint (methods/mdm)
        from skeleton_diffusion.methods.mdm.convert import load_run

        return load_run(path, dev, use_ema=use_ema)  # type: ignore[return-value]
    diffusion, spec, cfg, skeleton, text_encoder = build_mdm_from_checkpoint(path, dev, use_ema=use_ema)
    return MDMPredictor(diffusion, spec, cfg, skeleton, dev, path, text_encoder)


def load_run(path: str | Path, device: str | torch.device = "auto", **options: Any) -> MDMPredictor:
    """Registry hook: an MDM run folder or checkpoint -> :class:`MDMPredictor` (prediction, generation, editing)."""
    return load_mdm(path, device, **options)
