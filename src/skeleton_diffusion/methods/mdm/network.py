"""The official MDM network (``model/mdm.py`` of GuyTevet/motion-diffusion-model), official state-dict key names.

Our motion layout is ``x [B, J, T*C]`` (frame-major features): ``J`` = official ``njoints`` (263 HumanML3D
features, 251 KIT, 25 rot6d rows), ``C`` = official ``nfeats`` (1, 1, 6). Internally every frame becomes one
token of ``J*C`` features (joint-major, feature-minor), exactly the official ``InputProcess`` order.

Conditions (``x_cond``): text feature ``[B, clip_dim]`` (CLIP ViT-B/32: 512), action index ``[B]`` / ``[B, 1]``
long, or for a prefix-completion model (``context_len > 0``) ``{"text": [B, 512], "past": [B, C_ctx, J, C]}``
(the clean past is prepended to ``x_t`` on the frame axis and the output's first ``C_ctx`` frames are cut off).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["OfficialMDM", "PositionalEncoding", "TimestepEmbedder"]

Cond = Union[Tensor, Mapping[str, Tensor], None]


class PositionalEncoding(nn.Module):
    """Sinusoidal table ``pe [max_len, 1, d]`` (official buffer name) + dropout."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(1))

    def forward(self, x: Tensor) -> Tensor:
        """``x [L, B, d]`` -> ``x + pe[:L]`` (dropout in training)."""
        return self.dropout(x + self.pe[: x.shape[0]])


class TimestepEmbedder(nn.Module):
    """``t [B]`` -> ``[1, B, d]``: MLP(Linear, SiLU, Linear) of the positional table row ``pe[t]``."""

    def __init__(self, latent_dim: int, sequence_pos_encoder: PositionalEncoding) -> None:
        super().__init__()
        self.sequence_pos_encoder = sequence_pos_encoder  # shared module: both ``pe`` keys are in the state dict
        self.time_embed = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.SiLU(),
                                        nn.Linear(latent_dim, latent_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.time_embed(self.sequence_pos_encoder.pe[t]).permute(1, 0, 2)


class _InputProcess(nn.Module):
    def __init__(self, input_feats: int, latent_dim: int) -> None:
        super().__init__()
        self.poseEmbedding = nn.Linear(input_feats, latent_dim)  # noqa: N815 (official name)


class _OutputProcess(nn.Module):
    def __init__(self, input_feats: int, latent_dim: int) -> None:
        super().__init__()
        self.poseFinal = nn.Linear(latent_dim, input_feats)  # noqa: N815 (official name)


class _EmbedAction(nn.Module):
    def __init__(self, num_actions: int, latent_dim: int) -> None:
        super().__init__()
        self.action_embedding = nn.Parameter(torch.randn(num_actions, latent_dim))


class OfficialMDM(nn.Module):
    """MDM as officially built by ``get_model_args`` (ff 1024, 4 heads, dropout 0.1, GELU by default).

    Args: ``njoints``, ``nfeats``; ``cond_mode`` ``text`` | ``action`` | ``no_cond``; ``arch`` ``trans_enc`` |
    ``trans_dec``; ``latent_dim``, ``num_layers``; ``num_actions``; ``clip_dim`` (512 CLIP, 768 DistilBERT);
    ``cond_mask_prob`` (training-time condition dropping); ``mask_frames`` (attention ignores padding);
    ``context_len`` / ``pred_len`` (prefix completion); ``emb_trans_dec``; ``pos_embed_max_len``.
    """

    def __init__(self, njoints: int, nfeats: int, *, cond_mode: str = "text", arch: str = "trans_enc",
                 latent_dim: int = 512, ff_size: int = 1024, num_layers: int = 8, num_heads: int = 4,
                 dropout: float = 0.1, activation: str = "gelu", num_actions: int = 1, clip_dim: int = 512,
                 cond_mask_prob: float = 0.0, mask_frames: bool = False, context_len: int = 0, pred_len: int = 0,
                 emb_trans_dec: bool = False, pos_embed_max_len: int = 5000, text_encoder_type: str = "clip",
                 num_frames: int = 196) -> None:
        super().__init__()
        if cond_mode not in ("text", "action", "no_cond"):
            raise ConfigError(f"cond_mode must be 'text', 'action' or 'no_cond', got {cond_mode!r}")
        if arch not in ("trans_enc", "trans_dec"):
            raise ConfigError(f"arch must be 'trans_enc' or 'trans_dec' (the official 'gru' is not ported), "
                              f"got {arch!r}")
        self.njoints, self.nfeats = int(njoints), int(nfeats)
        self.channels = self.njoints            # GaussianDiffusionBase interface: nodes
        self.num_frames = int(num_frames)
        self.out_dim = self.num_frames * self.nfeats
        self.cond_dim = 0                       # the condition is optional (unconditional / guided sampling)
        self.cond_mode, self.arch = cond_mode, arch
        self.latent_dim = int(latent_dim)
        self.cond_mask_prob = float(cond_mask_prob)
        self.mask_frames = bool(mask_frames)
        self.context_len, self.pred_len = int(context_len), int(pred_len)
        self.is_prefix_comp = self.context_len + self.pred_len > 0
        self.emb_trans_dec = bool(emb_trans_dec)
        self.text_encoder_type = text_encoder_type
        self.clip_dim = int(clip_dim)
        input_feats = self.njoints * self.nfeats
        # registration order = official state-dict key order
        self.input_process = _InputProcess(input_feats, self.latent_dim)
        self.sequence_pos_encoder = PositionalEncoding(self.latent_dim, dropout, max_len=int(pos_embed_max_len))
        if arch == "trans_enc":
            layer = nn.TransformerEncoderLayer(d_model=self.latent_dim, nhead=num_heads, dim_feedforward=ff_size,
                                               dropout=dropout, activation=activation)
            self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers=num_layers,  # noqa: N815
                                                         enable_nested_tensor=False)
        else:
            layer = nn.TransformerDecoderLayer(d_model=self.latent_dim, nhead=num_heads, dim_feedforward=ff_size,
                                               dropout=dropout, activation=activation)
            self.seqTransDecoder = nn.TransformerDecoder(layer, num_layers=num_layers)  # noqa: N815
        self.embed_timestep = TimestepEmbedder(self.latent_dim, self.sequence_pos_encoder)
        if cond_mode == "text":
            self.embed_text = nn.Linear(self.clip_dim, self.latent_dim)
        elif cond_mode == "action":
            self.embed_action = _EmbedAction(int(num_actions), self.latent_dim)
        self.output_process = _OutputProcess(input_feats, self.latent_dim)

    # ------------------------------------------------------------------ helpers
    def _drop(self, cond: Tensor, force_uncond: bool, generator: Optional[torch.Generator] = None) -> Tensor:
        """Official ``mask_cond`` on ``cond [1, B, d]``: zeros when forced; Bernoulli(cond_mask_prob) per sample
        in training."""
        if force_uncond:
            return torch.zeros_like(cond)
        if self.training and self.cond_mask_prob > 0.0:
            bs = cond.shape[-2]
            drop = torch.bernoulli(torch.full((bs,), self.cond_mask_prob, device=cond.device),
                                   generator=generator).view(1, bs, 1)
            return cond * (1.0 - drop)
        return cond

    def _split_cond(self, x_cond: Cond, batch: int, force_uncond: bool = False) -> tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """-> ``(text [B, D] | action [B] | None, past or None, text padding mask or None)``."""
        past = text_mask = None
        cond = x_cond
        if isinstance(x_cond, Mapping):
            past = x_cond.get("past")
            text_mask = x_cond.get("text_mask")
            cond = x_cond.get("text", x_cond.get("action"))
        if self.is_prefix_comp and past is None:
            raise InputError(f"this prefix-completion MDM (context_len={self.context_len}) needs "
                             "x_cond={'text': [B, 512], 'past': [B, C_ctx, J, C]}")
        if self.cond_mode != "no_cond" and cond is None and force_uncond:
            # the unconditional branch ignores the condition's values (it is zeroed before its embedding)
            cond = (torch.zeros(batch, self.clip_dim) if self.cond_mode == "text"
                    else torch.zeros(batch, dtype=torch.long))
        if self.cond_mode != "no_cond" and cond is None:
            raise InputError(f"this MDM is {self.cond_mode}-conditioned: pass x_cond (text feature [B, "
                             f"{self.clip_dim}] or action index [B])")
        if cond is not None and cond.shape[0] != batch:
            raise InputError(f"x_cond batch {cond.shape[0]} does not match x batch {batch}")
        return cond, past, text_mask

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, t: Tensor, x_self_cond: Optional[Tensor] = None, x_cond: Cond = None, *,
                force_uncond: bool = False, frame_mask: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """x̂₀ ``[B, J, T*C]`` for ``x_t [B, J, T*C]``, ``t [B]`` (model time, 0 = least noisy).

        ``force_uncond`` zeroes the text/action before its embedding (official ``y['uncond']``; the past stays).
        ``frame_mask [B, T]`` (True = valid) is used only when ``mask_frames`` (official ``--mask_frames``)."""
        if x.dim() != 3 or x.shape[1] != self.njoints or x.shape[2] % self.nfeats:
            raise InputError(f"x must be [B, {self.njoints}, T*{self.nfeats}], got {tuple(x.shape)}")
        bs, frames = x.shape[0], x.shape[2] // self.nfeats
        cond, past, text_mask = self._split_cond(x_cond, bs, force_uncond)
        h = x.reshape(bs, self.njoints, frames, self.nfeats).permute(2, 0, 1, 3).reshape(frames, bs, -1)
        if self.is_prefix_comp:
            if past.dim() != 4 or past.shape[0] != bs or tuple(past.shape[2:]) != (self.njoints, self.nfeats):
                raise InputError(f"x_cond['past'] must be [B={bs}, C_ctx, {self.njoints}, {self.nfeats}], got "
                                 f"{tuple(past.shape)}")
            h = torch.cat([past.to(h).permute(1, 0, 2, 3).reshape(past.shape[1], bs, -1), h], dim=0)
        time_emb = self.embed_timestep(t)                                        # [1, B, d]
        if self.cond_mode == "text":
            enc = cond.to(device=time_emb.device, dtype=time_emb.dtype)
            if enc.dim() == 2:
                enc = enc.unsqueeze(0)                                           # [1, B, D]
            else:                                                                # DistilBERT tokens [B, L, D]
                enc = enc.permute(1, 0, 2)
            emb = self.embed_text(self._drop(enc, force_uncond, generator)) + time_emb
        elif self.cond_mode == "action":
            idx = cond.reshape(bs, -1)[:, 0].long().to(time_emb.device)
            emb = time_emb + self._drop(self.embed_action.action_embedding[idx].unsqueeze(0), force_uncond,
                                        generator)
        else:
            emb = time_emb
        h = self.input_process.poseEmbedding(h)                                  # [L, B, d]
        pad = None
        if self.mask_frames and frame_mask is not None and h.shape[0] > 1:
            if tuple(frame_mask.shape) != (bs, frames):
                raise InputError(f"frame_mask must be [B={bs}, T={frames}], got {tuple(frame_mask.shape)}")
            pad = ~frame_mask.to(device=h.device, dtype=torch.bool)
            if self.is_prefix_comp:
                pad = torch.cat([torch.zeros(bs, past.shape[1], dtype=torch.bool, device=h.device), pad], dim=1)
            if self.emb_trans_dec or self.arch == "trans_enc":
                pad = torch.cat([torch.zeros(bs, 1, dtype=torch.bool, device=h.device), pad], dim=1)
        if self.arch == "trans_enc":
            seq = self.sequence_pos_encoder(torch.cat((emb, h), dim=0))
            out = self.seqTransEncoder(seq, src_key_padding_mask=pad)[1:]
        else:
            seq = torch.cat((time_emb, h), dim=0) if self.emb_trans_dec else h
            seq = self.sequence_pos_encoder(seq)
            mem_mask = None if text_mask is None else ~text_mask.bool()
            out = self.seqTransDecoder(tgt=seq, memory=emb, tgt_key_padding_mask=pad,
                                       memory_key_padding_mask=mem_mask)
            if self.emb_trans_dec:
                out = out[1:]
        if self.is_prefix_comp:
            out = out[past.shape[1]:]
        out = self.output_process.poseFinal(out)                                 # [T, B, J*C]
        return out.reshape(frames, bs, self.njoints, self.nfeats).permute(1, 2, 0, 3).reshape(bs, self.njoints, -1)

    def parameters_wo_clip(self) -> list[nn.Parameter]:
        """All trainable parameters (no text encoder lives in this module)."""
        return list(self.parameters())

    @classmethod
    def from_official_args(cls, args: Mapping[str, Any], *, num_actions: Optional[int] = None) -> "OfficialMDM":
        """Build from an official ``args.json`` dict (see :func:`skeleton_diffusion.methods.mdm.args.complete_args`)."""
        from skeleton_diffusion.methods.mdm.args import network_kwargs

        return cls(**network_kwargs(args, num_actions=num_actions))
