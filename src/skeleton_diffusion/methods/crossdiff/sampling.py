"""Sampling a converted official CrossDiff, as the official ``generate.py`` / ``eval/eval_humanml.py`` do.

* ``start='3d'`` (official default): ``p_sample_loop`` over all 1000 steps in the 3D domain: x0-prediction, the
  posterior mean plus fixed-small noise (no noise at t = 0), ``clip_denoised=False``.
  Classifier-free guidance ``uncond + s·(cond − uncond)`` is applied only when the official ``classifier_free``
  switch is on (``configs/base.yaml``: off); ``s = guidance_param`` = 2.5 when ``cond_mask_prob > 0`` else 1
  (``parse_args``). Our guided step runs the conditional and unconditional passes as one batched forward.
* ``start='2d'`` (official ``test_generatefrom2d``): both noises are drawn, the 2D chain runs for ``t >
  change_idx``; at ``t = change_idx`` the 2D->3D head gives x̂₀³ᴰ, re-noised to ``t − 1`` (returned as is when
  ``change_idx = 0``), and the 3D chain finishes. Officially this path calls the bare network, so it is never
  guided.

Noise is drawn from ``generator`` (default: torch's global RNG) in the official order, so with the global RNG
seeded as officially the draws are the official ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from skeleton_diffusion.utils.errors import CheckpointError, InputError

__all__ = ["CrossDiffOfficialGenerator", "CrossDiffT2MGenerator", "guided_x0", "load_run", "official_guidance_param", "sample_official"]


def official_guidance_param(args: dict[str, Any]) -> float:
    """``parse_args``: 1 when ``cond_mask_prob == 0`` else 2.5 (the YAML cannot override it)."""
    return 1.0 if float(args.get("cond_mask_prob", 0.1)) == 0 else 2.5


def _randn(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(*shape, device=like.device, dtype=like.dtype, generator=generator)


def guided_x0(net: Any, x: Tensor, t: Tensor, text: Tensor, domain_in: str, domain_out: str,
              guidance_param: float = 1.0) -> Tensor:
    """x0-prediction of ``domain_out`` from ``x`` (``domain_in``); ``guidance_param != 1``: classifier-free
    guidance with both branches in one forward of batch 2B."""
    if float(guidance_param) == 1.0:
        return net(x, t, text, domain_in=domain_in, domains_out=(domain_out,))[domain_out]
    B = x.shape[0]
    drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(x.device)
    both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([text, text]), domain_in=domain_in,
               domains_out=(domain_out,), force_uncond=drop)[domain_out]
    cond, uncond = both[:B], both[B:]
    return uncond + float(guidance_param) * (cond - uncond)


@torch.no_grad()
def sample_official(model: Any, text: Tensor, *, start: str = "3d", guidance_param: float = 1.0,
                    change_idx: int = 300, generator: torch.Generator | None = None,
                    num_frames: int | None = None) -> Tensor:
    """Normalised HumanML3D features ``[B, 263, 1, T]`` (T = the network's 196) for CLIP features
    ``text [B, 512]`` from an :class:`~.run.OfficialCrossDiff` (module doc for ``start``)."""
    net, d3, d2 = model.net, model.diff3d, model.diff2d
    B, T = text.shape[0], int(num_frames or net.num_frames)
    f3, f2 = net.feats["3d"], net.feats["2d"]
    steps = d3.num_timesteps
    if start == "3d":
        x = _randn((B, f3, 1, T), text, generator)
        for i in reversed(range(steps)):
            t = torch.full((B,), i, device=text.device, dtype=torch.long)
            x0 = guided_x0(net, x, t, text, "3d", "3d", guidance_param)
            x = d3.p_step(x0, x, t, _randn(x.shape, x, generator))
        return x
    if start != "2d":
        raise InputError(f"start must be '3d' or '2d', got {start!r}")
    if not 0 <= int(change_idx) < steps:
        raise InputError(f"change_idx must be in 0..{steps - 1}, got {change_idx}")
    motion_t = _randn((B, f3, 1, T), text, generator)
    joint_t = _randn((B, f2, 1, T), text, generator)
    for i in reversed(range(steps)):
        t = torch.full((B,), i, device=text.device, dtype=torch.long)
        if i > change_idx:
            j0 = net(joint_t, t, text, domain_in="2d", domains_out=("2d",))["2d"]
            joint_t = d2.p_step(j0, joint_t, t, _randn(j0.shape, j0, generator))
        elif i == change_idx:
            m0 = net(joint_t, t, text, domain_in="2d", domains_out=("3d",))["3d"]
            if i == 0:
                return m0
            motion_t = d3.q_sample(m0, t - 1, _randn(m0.shape, m0, generator))
        else:
            m0 = net(motion_t, t, text, domain_in="3d", domains_out=("3d",))["3d"]
            motion_t = d3.p_step(m0, motion_t, t, _randn(m0.shape, m0, generator))
    return motion_t


class CrossDiffOfficialGenerator:
    """A loaded converted official CrossDiff. ``.model`` is the :class:`~.run.OfficialCrossDiff` (``.net``,
    ``.diff3d``, ``.diff2d``); :meth:`sample` maps CLIP features to normalised features, :meth:`generate` maps
    captions to them (needs ``text_encoder``: a CLIP ViT-B/32 text tower, official context 22 tokens)."""

    condition = "text"
    method_name = "CrossDiff (official)"

    def __init__(self, model: Any, *, device: torch.device, checkpoint: Path, text_encoder: Any = None,
                 classifier_free: bool | None = None, guidance_param: float | None = None,
                 start: str | None = None, change_idx: int | None = None) -> None:
        args = model.args
        self.model, self.device, self.checkpoint, self.text_encoder = model, device, checkpoint, text_encoder
        self.classifier_free = bool(args.get("classifier_free", False) if classifier_free is None else classifier_free)
        self.guidance_param = float(official_guidance_param(args) if guidance_param is None else guidance_param)
        self.start = start or ("2d" if args.get("test_generatefrom2d", False) else "3d")
        self.change_idx = int(args.get("change_idx", 300) if change_idx is None else change_idx)

    @property
    def effective_guidance(self) -> float:
        """The scale the official eval applies: ``guidance_param`` with ``classifier_free``, else 1."""
        return self.guidance_param if self.classifier_free else 1.0

    def sample(self, text_features: Tensor, *, generator: torch.Generator | None = None,
               start: str | None = None) -> Tensor:
        """``[B, 512]`` CLIP features -> ``[B, 263, 1, 196]`` normalised HumanML3D features."""
        return sample_official(self.model, text_features.to(self.device).float(), start=start or self.start,
                               guidance_param=self.effective_guidance, change_idx=self.change_idx,
                               generator=generator)

    def generate(self, *, texts: Sequence[str], num_samples: int = 1,
                 generator: torch.Generator | None = None, start: str | None = None) -> Tensor:
        """``[B, S, 196, 263]`` normalised features for ``texts`` (B captions), S samples each."""
        if self.text_encoder is None:
            raise InputError("this CrossDiff generator has no text encoder: load_run(..., clip_path=<folder of "
                             "a transformers CLIP ViT-B/32>) or call .sample(clip_features)")
        if not texts:
            raise InputError("CrossDiff is text-conditioned: pass texts=[...]")
        feats = self.text_encoder(list(texts)).to(self.device).repeat_interleave(int(num_samples), dim=0)
        x = self.sample(feats, generator=generator, start=start)[:, :, 0].permute(0, 2, 1)
        return x.reshape(len(texts), int(num_samples), *x.shape[1:]).cpu()

    def t2m_generator(self, text_encoder_path: str | Path | None = None, *,
                      text_encoder: str = "auto", **options: Any) -> "CrossDiffT2MGenerator":
        """CrossDiff conditions on CLIP ViT-B/32 (context 22); ``text_encoder_path`` = its local folder (kept when
        the generator already has an encoder). Options: ``guidance_param``, ``classifier_free``, ``start``."""
        if text_encoder not in ("auto", "clip"):
            raise InputError(f"CrossDiff uses CLIP ViT-B/32; text_encoder={text_encoder!r} is not available")
        if self.text_encoder is None:
            if not text_encoder_path:
                raise InputError("the official evaluation of CrossDiff needs task.text_encoder_path=<local folder of "
                                 "a transformers CLIP ViT-B/32>")  # fmt: skip
            from skeleton_diffusion.nn.text_encoders import CLIPTextEncoder

            self.text_encoder = CLIPTextEncoder(text_encoder_path, max_length=22).to(self.device)
        for key in ("guidance_param", "classifier_free", "start"):
            if options.get(key) is not None:
                setattr(self, key, type(getattr(self, key))(options[key]))
        return CrossDiffT2MGenerator(self)


class CrossDiffT2MGenerator:
    """The official T2M evaluation's generator interface over :class:`CrossDiffOfficialGenerator`:
    ``generate(captions, lengths, num_samples, *, generator=None) -> [B, S, 196, 263]`` normalised features
    (lengths unused: the official network always makes 196 frames). Noise comes from ``generator`` in the
    official order (CrossDiff's ``test.py`` draws one batch after another)."""

    condition = "text"
    method_name = "CrossDiff (official)"

    def __init__(self, base: CrossDiffOfficialGenerator) -> None:
        self.base = base

    @torch.no_grad()
    def generate(self, captions: Sequence[str], lengths: Any = None, num_samples: int = 1, *,
                 generator: torch.Generator | None = None) -> Tensor:
        return self.base.generate(texts=[str(c) for c in captions], num_samples=num_samples, generator=generator)


def load_run(path: str | Path, device: str | torch.device = "auto", **options: Any) -> CrossDiffOfficialGenerator:
    """A run folder (or checkpoint) written by :func:`~.run.convert` -> :class:`CrossDiffOfficialGenerator`
    (eval mode). Options: ``clip_path`` (CLIP text tower folder), ``classifier_free``, ``guidance_param``,
    ``start`` ('3d'|'2d'), ``change_idx``, ``strict_frames`` (default True: exactly 196 frames, official)."""
    from skeleton_diffusion.methods.crossdiff.run import load_official_model
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.utils.device import resolve_device
    from skeleton_diffusion.utils.io import safe_torch_load

    known = {"clip_path", "classifier_free", "guidance_param", "start", "change_idx", "strict_frames"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"load_run (crossdiff) got unknown options {unknown}; known: {sorted(known)}")
    ckpt_path = resolve_checkpoint(path)
    ckpt = safe_torch_load(ckpt_path)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("method") != "crossdiff" or meta.get("representation") != "official":
        raise CheckpointError(f"'{ckpt_path}' is not a converted official CrossDiff run (meta.method='crossdiff', "
                              "meta.representation='official'); convert model####.pt with --method crossdiff, or "
                              "load our joint-position CrossDiff with methods.crossdiff.joints_sampling.load_crossdiff")
    if "model" not in ckpt:
        raise CheckpointError(f"'{ckpt_path}' lacks the 'model' state dict")
    model = load_official_model(ckpt["model"], meta.get("official_args") or {}, where=f"'{ckpt_path}'",
                                strict_frames=bool(options.get("strict_frames", True)))
    dev = resolve_device(device)
    model.to(dev).eval()
    encoder = None
    if options.get("clip_path"):
        from skeleton_diffusion.nn.text_encoders import CLIPTextEncoder

        encoder = CLIPTextEncoder(options["clip_path"], max_length=22).to(dev)  # official: sos + 20 + eos
    return CrossDiffOfficialGenerator(model, device=dev, checkpoint=ckpt_path, text_encoder=encoder,
                                      classifier_free=options.get("classifier_free"),
                                      guidance_param=options.get("guidance_param"), start=options.get("start"),
                                      change_idx=options.get("change_idx"))
