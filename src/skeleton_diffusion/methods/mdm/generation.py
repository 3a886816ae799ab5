"""A converted official MDM as a generator of the official T2M evaluation (``tasks/generation/official_protocol``):
captions -> normalised HumanML3D (KIT) features ``[B, S, T, F]``.

Same draws as a sequential official run would make for one window, faster:

* each distinct caption is encoded once per call and reused for every step and repeat;
* classifier-free guidance runs the conditional and unconditional halves in ONE forward of batch 2N (the null
  condition is the zeroed text, exactly what the official ``force_mask`` feeds to ``embed_text``);
* every (window, repeat) row has its own noise stream (``window_generators``), so splitting the rows into chunks
  of ``max_batch`` (or sharding) changes no draw. Window ids are drawn from the caller's ``generator`` (one int64
  per window, in the order of the captions), so a seeded protocol stays reproducible.

The sampler is the official one (:func:`~skeleton_diffusion.methods.mdm.sampling.p_sample` for ``eta = 1``,
``ddim_sample`` otherwise, ``clip_denoised=False`` as ``CompMDMGeneratedDataset``) on the respaced process of
``steps`` (None: all 1000 steps, the official evaluation); frames = the network's 196 (the official eval pads
every motion to 196 and masks nothing unless ``mask_frames``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.methods.mdm.gaussian import SectionCounts
from skeleton_diffusion.methods.mdm.sampling import ddim_sample, p_sample, respaced_view
from skeleton_diffusion.methods.mdm.smpl_fk import SMPLJoints
from skeleton_diffusion.representations.humanml3d import recover_from_ric
from skeleton_diffusion.tasks.generation.batched_sampling import window_generators, window_noise
from skeleton_diffusion.utils.errors import InputError

__all__ = ["MDMT2MGenerator", "batched_guided_x0", "official_motion", "dataset_stats"]


def _select(cond: Any, index: Tensor) -> Any:
    if isinstance(cond, dict):
        return {k: _select(v, index) for k, v in cond.items()}
    return cond[index.to(cond.device)]


def _null_like(cond: Any) -> Any:
    """The unconditional input: zeroed text features (DistilBERT: zeroed tokens, same mask)."""
    if isinstance(cond, dict):
        return {k: (torch.zeros_like(v) if k == "text" else v) for k, v in cond.items()}
    return torch.zeros_like(cond)


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return torch.cat([a, b])


def batched_guided_x0(net: Any, x: Tensor, t_model: Tensor, cond: Any, scale: Optional[float], *,
                      frame_mask: Optional[Tensor] = None) -> Tensor:  # fmt: skip
    """x̂₀ ``[N, J, T*C]``; with ``scale``: ``uncond + scale·(cond − uncond)`` from one forward of ``[x; x]``
    with ``[cond; null]`` (the official ``ClassifierFreeSampleModel`` runs two)."""
    if scale is None:
        return net(x, t_model, None, cond, frame_mask=frame_mask)
    fm = None if frame_mask is None else torch.cat([frame_mask, frame_mask])
    out = net(torch.cat([x, x]), torch.cat([t_model, t_model]), None, _cat(cond, _null_like(cond)), frame_mask=fm)
    c, u = out.chunk(2)
    return u + float(scale) * (c - u)


class MDMT2MGenerator:
    """``generate(captions, lengths, num_samples, *, generator=None) -> [B, S, T, F]`` for a loaded official
    text MDM (``run``: :class:`~skeleton_diffusion.methods.mdm.convert.OfficialMDMRun`) and its text encoder
    (``encode(list[str]) -> [B, 512]`` CLIP features or ``{"text", "text_mask"}`` DistilBERT states)."""

    condition = "text"

    def __init__(self, run: Any, encode: Callable[[list[str]], Any], *, guidance_param: Optional[float] = None,
                 steps: SectionCounts = None, eta: float = 1.0, max_batch: int = 256, seed: int = 0) -> None:
        if run.model.cond_mode != "text":
            raise InputError(f"'{run.checkpoint}' is a {run.model.cond_mode}-conditioned MDM; the T2M evaluation "
                             "needs a text model (dataset humanml or kit)")  # fmt: skip
        self.run, self.encode = run, encode
        self.guidance_param = run.guidance_param if guidance_param is None else float(guidance_param)
        self.steps, self.eta, self.max_batch, self.seed = steps, float(eta), int(max_batch), int(seed)
        self.method_name = "MDM (official)"

    def _encode(self, captions: Sequence[str]) -> Any:
        unique = list(dict.fromkeys(captions))
        index = torch.tensor([unique.index(c) for c in captions])
        return _select(self.encode(unique), index)  # DistilBERT: padded to the longest caption of the call

    @torch.no_grad()
    def generate(self, captions: Sequence[str], lengths: Optional[Tensor] = None, num_samples: int = 1, *,
                 generator: Optional[torch.Generator] = None, window_ids: Optional[Sequence[int]] = None
                 ) -> Tensor:  # fmt: skip
        """Normalised features ``[B, S, T, F]`` (T = the network's frames). ``window_ids``: the rows' noise
        identities (default: drawn from ``generator``, else ``0..B-1``)."""
        captions = [str(c) for c in captions]
        if not captions:
            raise InputError("generate needs at least one caption")
        b, s = len(captions), int(num_samples)
        net = self.run.model
        frames = int(net.num_frames)
        if window_ids is None:
            window_ids = (torch.randint(0, 2**62, (b,), generator=generator).tolist() if generator is not None
                          else list(range(b)))  # fmt: skip
        if len(window_ids) != b:
            raise InputError(f"window_ids has {len(window_ids)} entries for {b} captions")
        cond_all = self._encode(captions)
        frame_mask_all = None
        if lengths is not None and getattr(net, "mask_frames", False):
            lens = torch.as_tensor(lengths).long().clamp(max=frames)
            frame_mask_all = torch.arange(frames)[None] < lens[:, None]
        rows = [(i, r) for i in range(b) for r in range(s)]
        out = torch.empty(b, s, int(net.njoints), frames * int(net.nfeats))
        for lo in range(0, len(rows), self.max_batch):
            chunk = rows[lo : lo + self.max_batch]
            idx = torch.tensor([i for i, _ in chunk])
            gens = [window_generators(self.seed, [window_ids[i]], r, device=self.run.device)[0] for i, r in chunk]
            cond = _select(cond_all, idx)
            fm = None if frame_mask_all is None else frame_mask_all[idx].to(self.run.device)
            x = self._sample(cond, gens, frames, fm)
            for k, (i, r) in enumerate(chunk):
                out[i, r] = x[k].cpu()
        j, c = int(net.njoints), int(net.nfeats)
        return out.reshape(b, s, j, frames, c).permute(0, 1, 3, 2, 4).reshape(b, s, frames, j * c)

    def _sample(self, cond: Any, gens: list[torch.Generator], frames: int, frame_mask: Optional[Tensor]) -> Tensor:
        view = respaced_view(self.run.diffusion, self.steps)
        net = view.model
        shape = (int(view.channels), frames * int(net.nfeats))
        dev = self.run.device
        x = window_noise(gens, shape, device=dev)
        step = p_sample if self.eta == 1.0 else ddim_sample
        extra = {} if self.eta == 1.0 else {"eta": self.eta}
        for i in reversed(range(view.num_timesteps)):
            t = torch.full((x.shape[0],), i, dtype=torch.long, device=dev)
            x0 = batched_guided_x0(net, x, view.model_timesteps(t), cond, self.guidance_param, frame_mask=frame_mask)
            noise = window_noise(gens, shape, device=dev)  # drawn at every step (t = 0 too), as officially
            x = step(view, x, t, None, noise=noise, model_output=x0, clip_denoised=False, **extra)["sample"]
        return x


def dataset_stats(data_root: Any) -> tuple[Tensor, Tensor]:
    """``(Mean, Std)`` ``[F]`` float32 of a HumanML3D / KIT-ML folder (``Mean.npy``, ``Std.npy``, no pickle)."""
    root = Path(str(data_root)).expanduser()
    try:
        return (torch.as_tensor(np.load(root / "Mean.npy", allow_pickle=False)).float(),
                torch.as_tensor(np.load(root / "Std.npy", allow_pickle=False)).float())  # fmt: skip
    except OSError as exc:
        raise InputError(f"'{root}' must hold the dataset's Mean.npy and Std.npy (HumanML3D / KIT-ML release) to "
                         f"turn MDM features into joint positions: {exc}") from exc


@torch.no_grad()
def official_motion(run: Any, *, texts: Optional[Sequence[str]] = None, actions: Optional[Sequence[int]] = None,
                    num_samples: int = 1, generator: Optional[torch.Generator] = None,
                    num_frames: Optional[int] = None, data_root: Any = None, smpl_model: Any = None,
                    guidance_param: Optional[float] = None, steps: SectionCounts = None) -> dict[str, Any]:
    """Sample a converted official MDM for the apps: ``{"features": [B, S, T, F] (HumanML3D/KIT: de-normalised
    with ``data_root``'s Mean/Std when given, else normalised; HumanAct12/UESTC: rot6d ``[B, S, T, 25*6]``),
    "joints": [B, S, T, J, 3] metres or None, "labels": one string per row}``.

    Joints: HumanML3D/KIT via ``recover_from_ric`` (22 / 21 joints, needs ``data_root``); action models via SMPL
    forward kinematics of ``smpl_model`` (24 joints, root-centred = official ``vertstrans=False``)."""
    mode, s = run.model.cond_mode, int(num_samples)
    if mode == "text":
        if not texts:
            raise InputError(f"'{run.checkpoint}' is a text MDM: pass captions (--captions / texts=[...])")
        feats = MDMT2MGenerator(run, run.text_encoder(), guidance_param=guidance_param, steps=steps).generate(
            list(texts), None, s, generator=generator)
        labels = [str(t) for t in texts]
        joints = None
        if data_root is not None:
            mean, std = dataset_stats(data_root)
            if mean.shape[-1] != feats.shape[-1]:
                raise InputError(f"Mean.npy in '{data_root}' has {mean.shape[-1]} features; this MDM makes "
                                 f"{feats.shape[-1]} (dataset {run.args['dataset']!r})")  # fmt: skip
            feats = feats * std + mean
            joints = recover_from_ric(feats, 21 if run.args["dataset"] == "kit" else 22)
        return {"features": feats, "joints": joints, "labels": labels}
    if mode == "action":
        if actions is None or len(actions) == 0:
            raise InputError(f"'{run.checkpoint}' is an action MDM: pass action indices (--actions / actions=[...])")
        n_act = int(run.model.embed_action.action_embedding.shape[0])
        bad = [a for a in actions if not 0 <= int(a) < n_act]
        if bad:
            raise InputError(f"action indices {bad} are outside 0..{n_act - 1} (this MDM knows {n_act} actions)")
        cond = torch.tensor([int(a) for a in actions], device=run.device).repeat_interleave(s)
        x = run.sample(len(cond), x_cond=cond, guidance_param=guidance_param, steps=steps,
                       num_frames=num_frames or int(run.args.get("num_frames", 60)), generator=generator)
        j, c = int(run.model.njoints), int(run.model.nfeats)
        t = x.shape[-1] // c
        joints = None
        if smpl_model is not None:
            fk = SMPLJoints.from_model_file(smpl_model).to(x.device)
            joints = fk(x).permute(0, 3, 1, 2).reshape(len(actions), s, t, -1, 3).cpu()
        feats = x.reshape(-1, j, t, c).permute(0, 2, 1, 3).reshape(len(actions), s, t, j * c).cpu()
        return {"features": feats, "joints": joints, "labels": [f"action {int(a)}" for a in actions]}
    raise InputError(f"'{run.checkpoint}' is an unconditional MDM; generate needs a text or action model")
