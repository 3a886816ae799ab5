"""MDM denoiser (Tevet et al., ICLR 2023): a transformer *encoder* over frames that predicts the clean motion x₀.

Written from the paper and the official code's structure (``GuyTevet/motion-diffusion-model``, MIT), not copied.

Per call (``x_t`` in our diffusion layout ``[B, J, T*C]``: nodes = joints, features = frames × xyz):

1. ``x_t`` -> per-frame pose vectors ``[B, T, J*C]`` -> ``Linear(J*C, d)`` (input projection);
2. one extra token = MLP(sinusoidal(t)) (the diffusion step) **+** the condition embedding
   (action: a learned row per class; text: ``Linear(text_dim, d)`` of a text feature) — zeroed for the
   unconditional branch of classifier-free guidance;
3. ``condition='past'``: the observed frames enter as ``T_obs`` clean context tokens (``Linear(J*C, d)``) before
   the noisy frames (the official prefix-completion model's design); zeroed for the unconditional branch;
4. sinusoidal positions over [step token, past tokens, frames]; ``num_layers`` encoder layers (GELU, pre-LN
   off as officially); output of the frame tokens -> ``Linear(d, J*C)`` -> ``[B, J, T*C]``.

Defaults follow the paper: d = 512, feed-forward 1024, 8 layers, 4 heads, dropout 0.1, ``cond_mask_prob`` 0.1.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["MDM", "PositionalEncoding", "TimestepEmbedder", "CONDITION_MODES", "condition_keep"]

CONDITION_MODES = ("none", "past", "action", "text")


def condition_keep(model: nn.Module, b: int, device: torch.device, force_uncond: bool) -> Tensor:
    """``[B, 1]`` float: 0 where the condition is dropped (CFG's unconditional branch, or dropout with probability
    ``model.cond_mask_prob`` while ``model.training``), 1 elsewhere."""
    if force_uncond:
        return torch.zeros(b, 1, device=device)
    if model.training and model.cond_mask_prob > 0:
        return (torch.rand(b, 1, device=device) >= model.cond_mask_prob).float()
    return torch.ones(b, 1, device=device)


class PositionalEncoding(nn.Module):
    """Sinusoidal positions added to ``[B, L, d]`` (then dropout)."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise InputError(f"sequence of {x.shape[1]} tokens exceeds max_len={self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[1]].unsqueeze(0))


class TimestepEmbedder(nn.Module):
    """Diffusion step ``t [B]`` -> ``[B, d]``: sinusoidal table row, Linear, SiLU, Linear (as officially)."""

    def __init__(self, d_model: int, pos: PositionalEncoding) -> None:
        super().__init__()
        self.pos = pos
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.pos.pe[t.long()])


class MDM(nn.Module):
    """The MDM transformer-encoder denoiser on motion ``x [B, J, T*C]`` (model space).

    Args:
        num_nodes: J joints (graph nodes of the diffusion; the nonisotropic noise mixes this axis).
        num_frames: T frames generated (the diffusion's feature axis is ``T * num_feats``).
        num_feats: C features per joint (3: xyz).
        latent_dim, ff_size, num_layers, num_heads, dropout, activation: transformer sizes (paper defaults).
        cond_mode: ``none`` | ``past`` | ``action`` | ``text``.
        obs_length: observed frames (``past`` mode).
        num_actions: classes (``action`` mode).
        text_dim: width of the text feature (``text`` mode; CLIP ViT-B/32: 512).
        cond_mask_prob: probability of dropping the condition per sample in training (classifier-free guidance).
    Call: ``model(x_t, t, x_self_cond=None, x_cond=None, *, force_uncond=False, frame_mask=None)`` with
    ``x_cond``: past ``[B, T_obs, J, C]`` float, action ``[B]`` long, text ``[B, text_dim]`` float;
    ``frame_mask [B, T]`` bool (True = valid frame; padded frames are ignored by attention).
    """

    def __init__(self, num_nodes: int, num_frames: int, num_feats: int = 3, *, latent_dim: int = 512,
                 ff_size: int = 1024, num_layers: int = 8, num_heads: int = 4, dropout: float = 0.1,
                 activation: str = "gelu", cond_mode: str = "none", obs_length: int = 0, num_actions: int = 0,
                 text_dim: int = 512, cond_mask_prob: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        if cond_mode not in CONDITION_MODES:
            raise ConfigError(f"MDM cond_mode must be one of {CONDITION_MODES}, got {cond_mode!r}")
        if cond_mode == "past" and obs_length < 1:
            raise ConfigError("MDM cond_mode='past' needs obs_length >= 1 (observed frames)")
        if cond_mode == "action" and num_actions < 1:
            raise ConfigError("MDM cond_mode='action' needs num_actions >= 1")
        if not 0.0 <= cond_mask_prob < 1.0:
            raise ConfigError(f"cond_mask_prob must be in [0, 1), got {cond_mask_prob}")
        self.channels = int(num_nodes)           # diffusion interface: nodes
        self.num_frames = int(num_frames)
        self.num_feats = int(num_feats)
        self.out_dim = self.num_frames * self.num_feats   # diffusion interface: features per node
        self.cond_mode = cond_mode
        self.cond_dim = 0 if cond_mode == "none" else 1
        self.obs_length = int(obs_length)
        self.cond_mask_prob = float(cond_mask_prob)
        self.self_condition = False
        pose_dim = self.channels * self.num_feats
        self.input_process = nn.Linear(pose_dim, latent_dim)
        self.pos = PositionalEncoding(latent_dim, dropout, max_len)
        self.embed_timestep = TimestepEmbedder(latent_dim, self.pos)
        layer = nn.TransformerEncoderLayer(latent_dim, num_heads, ff_size, dropout, activation=activation)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.output_process = nn.Linear(latent_dim, pose_dim)
        if cond_mode == "past":
            self.past_process = nn.Linear(pose_dim, latent_dim)
        elif cond_mode == "action":
            self.embed_action = nn.Parameter(torch.randn(int(num_actions), latent_dim))
        elif cond_mode == "text":
            self.embed_text = nn.Linear(int(text_dim), latent_dim)

    def forward(self, x: Tensor, t: Tensor, x_self_cond: Optional[Tensor] = None, x_cond: Optional[Tensor] = None,
                *, force_uncond: bool = False, frame_mask: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.channels or x.shape[2] % self.num_feats:
            raise InputError(f"MDM input must be [B, {self.channels}, T*{self.num_feats}], got {tuple(x.shape)}")
        b = x.shape[0]
        frames = x.shape[2] // self.num_feats
        seq = x.view(b, self.channels, frames, self.num_feats).permute(0, 2, 1, 3).reshape(b, frames, -1)
        h = self.input_process(seq)                                      # [B, T, d]
        emb = self.embed_timestep(t)                                     # [B, d]
        keep = condition_keep(self, b, x.device, force_uncond) if self.cond_mode != "none" else None
        tokens = []
        if self.cond_mode != "none" and x_cond is None:
            raise InputError(f"MDM with cond_mode={self.cond_mode!r} needs x_cond")
        if self.cond_mode == "action":
            emb = emb + keep * self.embed_action[x_cond.long().view(-1)]
        elif self.cond_mode == "text":
            if x_cond.dim() != 2:
                raise InputError(f"text condition must be a [B, text_dim] feature, got {tuple(x_cond.shape)}")
            emb = emb + self.embed_text(keep * x_cond.to(h.dtype))
        elif self.cond_mode == "past":
            if x_cond.dim() != 4 or x_cond.shape[1] != self.obs_length or x_cond.shape[2] != self.channels:
                raise InputError(f"past condition must be [B, {self.obs_length}, {self.channels}, "
                                 f"{self.num_feats}], got {tuple(x_cond.shape)}")
            past = self.past_process(x_cond.reshape(b, self.obs_length, -1).to(h.dtype))
            tokens.append(past * keep.unsqueeze(-1))
        xseq = torch.cat([emb.unsqueeze(1), *tokens, h], dim=1)          # [B, 1 (+T_obs) + T, d]
        xseq = self.pos(xseq)
        pad = None
        if frame_mask is not None:
            if tuple(frame_mask.shape) != (b, frames):
                raise InputError(f"frame_mask must be [{b}, {frames}], got {tuple(frame_mask.shape)}")
            lead = torch.zeros(b, xseq.shape[1] - frames, dtype=torch.bool, device=x.device)
            pad = torch.cat([lead, ~frame_mask.bool()], dim=1)
        out = self.encoder(xseq.transpose(0, 1), src_key_padding_mask=pad).transpose(0, 1)[:, -frames:]
        out = self.output_process(out)                                   # [B, T, J*C]
        return out.view(b, frames, self.channels, self.num_feats).permute(0, 2, 1, 3).reshape(b, self.channels, -1)
