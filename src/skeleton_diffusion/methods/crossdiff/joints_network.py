"""CrossDiff denoiser (Ren, Huang, Li, ECCV 2024): one transformer backbone shared by 3D and 2D motion, with
domain-specific input/output layers and *cross* decoding (3D→3D, 2D→2D, 2D→3D, 3D→2D).

Written from the paper and the structure of the official code (``wonderNo/crossdiff``, MDM-derived), not copied.
Per call, for a noisy motion ``x_t`` of one input domain (layout ``[B, J, T*C]`` as MDM: nodes = joints,
features = frames × C, C = 3 for 3D joint positions, C = 2 for 2D projected joints):

1. per-frame pose vectors ``[B, T, J*C]`` -> the input domain's ``Linear(J*C, d)``;
2. a leading token = MLP(sinusoidal(t)) + ``Linear(text_dim, d)`` of the text feature (zeroed for the
   classifier-free-guidance branch / training dropout), sinusoidal positions;
3. the input domain's own encoder (``num_layers`` layers), then the **shared** backbone (``num_shared_layers``
   encoder layers, the official "bridge"); the output of every shared layer is kept;
4. for each requested output domain: learned per-frame query tokens go through that domain's decoder, whose
   layer ``i`` cross-attends to shared layer ``i``'s output, then ``Linear(d, J*C_out)`` -> ``[B, J, T*C_out]``.

The official model also has a small separate root-trajectory pipeline for its 263-d features; here the root
joint is one of the J joint positions, so it goes through the same path (a simplification).

:class:`DomainView` exposes one (input, output) domain pair with the MDM network interface
(``channels``, ``out_dim``, ``forward(x, t, x_self_cond, x_cond, *, force_uncond, frame_mask)``) so that the
shared diffusion core and the MDM sampler (:func:`~skeleton_diffusion.diffusion.respace.sample_motion`) drive it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError, InputError
from skeleton_diffusion.nn.motion_transformer import PositionalEncoding, TimestepEmbedder, condition_keep

__all__ = ["CrossDiff", "DomainView", "DOMAIN_FEATS"]

#: features per joint of each domain
DOMAIN_FEATS = {"3d": 3, "2d": 2}


class CrossDiff(nn.Module):
    """Shared-backbone 3D/2D text-to-motion denoiser predicting clean motion x₀.

    Args:
        num_joints: J joints (the same joints in both domains).
        num_frames: T frames (max length of the learned output queries).
        latent_dim, ff_size, num_heads, dropout, activation: transformer sizes (official: 512, 1024, 4, 0.1, gelu).
        num_layers: layers of each domain-specific encoder (official ``layers``: 4).
        num_shared_layers: layers of the shared backbone = layers of each output decoder (official ``layers2``: 6).
        text_dim: width of the text feature.
        cond_mask_prob: probability of dropping the text per sample in training (classifier-free guidance).
    Call: ``forward(x, t, text, *, domain_in, domains_out=("3d",), force_uncond=False, frame_mask=None)`` with
    ``x [B, J, T*C_in]``, ``t [B]`` long, ``text [B, text_dim]`` -> ``{domain: [B, J, T*C_out]}``.
    """

    def __init__(self, num_joints: int, num_frames: int, *, latent_dim: int = 512, ff_size: int = 1024,
                 num_layers: int = 4, num_shared_layers: int = 6, num_heads: int = 4, dropout: float = 0.1,
                 activation: str = "gelu", text_dim: int = 512, cond_mask_prob: float = 0.1,
                 max_len: int = 5000) -> None:
        super().__init__()
        if num_shared_layers < 1 or num_layers < 0:
            raise ConfigError(f"CrossDiff needs num_shared_layers >= 1 and num_layers >= 0, got "
                              f"{num_shared_layers}, {num_layers}")
        if not 0.0 <= cond_mask_prob < 1.0:
            raise ConfigError(f"cond_mask_prob must be in [0, 1), got {cond_mask_prob}")
        self.num_joints, self.num_frames = int(num_joints), int(num_frames)
        self.cond_mask_prob = float(cond_mask_prob)
        d = int(latent_dim)

        def enc_layer() -> nn.Module:
            return nn.TransformerEncoderLayer(d, num_heads, ff_size, dropout, activation=activation)

        def dec_layer() -> nn.Module:
            return nn.TransformerDecoderLayer(d, num_heads, ff_size, dropout, activation=activation)

        self.pos = PositionalEncoding(d, dropout, max_len)
        self.embed_timestep = TimestepEmbedder(d, self.pos)
        self.embed_text = nn.Linear(int(text_dim), d)
        self.input_process = nn.ModuleDict({k: nn.Linear(self.num_joints * c, d) for k, c in DOMAIN_FEATS.items()})
        self.domain_encoder = nn.ModuleDict({k: nn.ModuleList([enc_layer() for _ in range(int(num_layers))])
                                             for k in DOMAIN_FEATS})
        self.shared = nn.ModuleList([enc_layer() for _ in range(int(num_shared_layers))])
        self.queries = nn.ParameterDict({k: nn.Parameter(torch.randn(self.num_frames, d) * 0.02)
                                         for k in DOMAIN_FEATS})
        self.decoder = nn.ModuleDict({k: nn.ModuleList([dec_layer() for _ in range(int(num_shared_layers))])
                                      for k in DOMAIN_FEATS})
        self.output_process = nn.ModuleDict({k: nn.Linear(d, self.num_joints * c) for k, c in DOMAIN_FEATS.items()})

    def forward(self, x: Tensor, t: Tensor, text: Optional[Tensor], *, domain_in: str,
                domains_out: Sequence[str] = ("3d",), force_uncond: bool = False,
                frame_mask: Optional[Tensor] = None) -> dict[str, Tensor]:
        if domain_in not in DOMAIN_FEATS or any(k not in DOMAIN_FEATS for k in domains_out):
            raise InputError(f"domains must be in {tuple(DOMAIN_FEATS)}, got in={domain_in!r} out={domains_out!r}")
        c_in = DOMAIN_FEATS[domain_in]
        if x.dim() != 3 or x.shape[1] != self.num_joints or x.shape[2] % c_in:
            raise InputError(f"CrossDiff {domain_in} input must be [B, {self.num_joints}, T*{c_in}], "
                             f"got {tuple(x.shape)}")
        b, frames = x.shape[0], x.shape[2] // c_in
        if frames > self.num_frames:
            raise InputError(f"CrossDiff was built for at most {self.num_frames} frames, got {frames}")
        seq = x.view(b, self.num_joints, frames, c_in).permute(0, 2, 1, 3).reshape(b, frames, -1)
        h = self.input_process[domain_in](seq)                                   # [B, T, d]
        emb = self.embed_timestep(t)
        if text is not None:
            if text.dim() != 2 or text.shape[0] != b:
                raise InputError(f"text feature must be [{b}, text_dim], got {tuple(text.shape)}")
            emb = emb + self.embed_text(condition_keep(self, b, x.device, force_uncond) * text.to(h.dtype))
        xseq = self.pos(torch.cat([emb.unsqueeze(1), h], dim=1)).transpose(0, 1)  # [1 + T, B, d]
        pad = None
        if frame_mask is not None:
            if tuple(frame_mask.shape) != (b, frames):
                raise InputError(f"frame_mask must be [{b}, {frames}], got {tuple(frame_mask.shape)}")
            pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=x.device), ~frame_mask.bool()], dim=1)
        for layer in self.domain_encoder[domain_in]:
            xseq = layer(xseq, src_key_padding_mask=pad)
        memories = []
        for layer in self.shared:
            xseq = layer(xseq, src_key_padding_mask=pad)
            memories.append(xseq)
        out: dict[str, Tensor] = {}
        for dom in domains_out:
            q = self.queries[dom][:frames].unsqueeze(1).expand(-1, b, -1)        # [T, B, d]
            for layer, mem in zip(self.decoder[dom], memories):
                q = layer(q, mem, memory_key_padding_mask=pad)
            c = DOMAIN_FEATS[dom]
            y = self.output_process[dom](q.transpose(0, 1))                      # [B, T, J*C]
            out[dom] = y.view(b, frames, self.num_joints, c).permute(0, 2, 1, 3).reshape(b, self.num_joints, -1)
        return out


class DomainView(nn.Module):
    """One (input -> output) domain pair of a :class:`CrossDiff` with the MDM network interface, for the
    diffusion core (``channels`` = J, ``out_dim`` = T × C_out) and :func:`~..diffusion.respace.sample_motion`.

    The CrossDiff is held by reference (not registered), so a container owning the CrossDiff and several
    views saves each weight once; ``copy.deepcopy`` of the container keeps the views pointing at the copy."""

    def __init__(self, net: CrossDiff, domain_in: str, domain_out: str) -> None:
        super().__init__()
        self.__dict__["net"] = net
        self.domain_in, self.domain_out = domain_in, domain_out
        self.channels = net.num_joints
        self.num_feats = DOMAIN_FEATS[domain_out]
        self.out_dim = net.num_frames * self.num_feats
        self.self_condition = False
        self.cond_dim = 1

    def forward(self, x: Tensor, t: Tensor, x_self_cond: Optional[Tensor] = None, x_cond: Optional[Tensor] = None,
                *, force_uncond: bool = False, frame_mask: Optional[Tensor] = None) -> Tensor:
        return self.net(x, t, x_cond, domain_in=self.domain_in, domains_out=(self.domain_out,),
                        force_uncond=force_uncond, frame_mask=frame_mask)[self.domain_out]
