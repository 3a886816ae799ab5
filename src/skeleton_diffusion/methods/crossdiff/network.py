"""CrossDiff's denoiser as the authors built it (``wonderNo/crossdiff``, ``model/crossdiff.py``).

Two domains share one latent space: HumanML3D 263-d features (``"3d"``; KIT-ML 251-d) and the official 134-d 2D
features (``"2d"``; KIT-ML 128-d), both in the official layout ``[B, C, 1, T]``. Each domain has its own input
heads and encoder; a shared "bridge" of encoder layers produces one memory per layer, and each output domain has a
learned query sequence (``motion_token`` / ``joint_token``, ``[T_max, 1, d]``) decoded against those memories. The
root channels (4 in 3D, 2 in 2D) take a separate, smaller pipeline whose last two decoder layers attend to the
pose decoder's output. Padded frames are never masked in attention (as officially).

Parameter names equal the official ones, so an official ``state_dict`` loads as is (the positional table appears
under both ``sequence_pos_encoder.pe`` and ``embed_timestep.sequence_pos_encoder.pe``). The constructor creates
the parameters in the official order, so ``torch.manual_seed(s)`` gives the official initialisation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import InputError

__all__ = ["DOMAIN_SIZES", "OfficialCrossDiffNet", "PositionTable", "TimestepEmbedder"]

#: dataset -> (3D feature size, 2D feature size); the root takes the first 4 (3D) / 2 (2D) channels.
DOMAIN_SIZES = {"humanml": (263, 134), "kit": (251, 128)}
ROOT_SIZES = {"3d": 4, "2d": 2}
DOMAINS = ("3d", "2d")


class PositionTable(nn.Module):
    """Official ``PositionalEncoding``: sinusoidal table ``pe [max_len, 1, d]`` (a frozen parameter) + dropout."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.pe = nn.Parameter(pe.unsqueeze(1), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x [S, B, d]`` -> ``x + pe[:S]`` (dropout in training)."""
        return self.dropout(x + self.pe[: x.shape[0]])


class TimestepEmbedder(nn.Module):
    """Official ``TimestepEmbedder``: ``pe[t]`` through Linear-SiLU-Linear -> ``[1, B, d]``."""

    def __init__(self, latent_dim: int, table: PositionTable) -> None:
        super().__init__()
        self.sequence_pos_encoder = table  # shared module: its table is saved under both keys
        self.time_embed = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.SiLU(),
                                        nn.Linear(latent_dim, latent_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.time_embed(self.sequence_pos_encoder.pe[t]).permute(1, 0, 2)


def _enc_layer(d: int, heads: int, ff: int, dropout: float) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(d_model=d, nhead=heads, dim_feedforward=ff, dropout=dropout, activation="gelu")


def _dec_layer(d: int, heads: int, ff: int, dropout: float) -> nn.TransformerDecoderLayer:
    return nn.TransformerDecoderLayer(d_model=d, nhead=heads, dim_feedforward=ff, dropout=dropout, activation="gelu")


class OfficialCrossDiffNet(nn.Module):
    """The official CrossDiff network (module doc). Sizes default to the official ones.

    ``strict_frames`` (default True, official): inputs must have exactly ``num_frames`` (196) frames, because
    the learned query sequences have that length. False (our extension) accepts any ``T <= num_frames`` and uses
    the first ``T`` queries; official checkpoints were only ever trained and evaluated at 196 frames."""

    def __init__(self, *, dataset: str = "humanml", latent_dim: int = 512, layers: int = 4, layers2: int = 6,
                 cond_mask_prob: float = 0.1, num_frames: int = 196, ff_size: int = 1024, root_ff_size: int = 512,
                 root_layers: int = 2, num_heads: int = 4, dropout: float = 0.1, clip_dim: int = 512,
                 strict_frames: bool = True) -> None:
        super().__init__()
        if dataset not in DOMAIN_SIZES:
            raise InputError(f"CrossDiff dataset must be one of {sorted(DOMAIN_SIZES)}, got {dataset!r}")
        if layers2 < 1 or root_layers < 1:
            raise InputError(f"CrossDiff needs layers2 >= 1 and root_layers >= 1, got {layers2}, {root_layers}")
        self.dataset = dataset
        self.feats = dict(zip(DOMAINS, DOMAIN_SIZES[dataset]))
        self.latent_dim, self.num_layers, self.num_layers2 = int(latent_dim), int(layers), int(layers2)
        self.root_layers, self.num_frames = int(root_layers), int(num_frames)
        self.cond_mask_prob, self.strict_frames = float(cond_mask_prob), bool(strict_frames)
        d, f3, f2 = self.latent_dim, self.feats["3d"], self.feats["2d"]
        r3, r2 = ROOT_SIZES["3d"], ROOT_SIZES["2d"]
        # pose pipeline (creation order = official order, so seeded initialisation matches)
        self.p_linear_m = nn.Linear(f3 - r3, d)
        self.p_linear_j = nn.Linear(f2 - r2, d)
        self.sequence_pos_encoder = PositionTable(d, dropout)
        enc, dec = _enc_layer(d, num_heads, ff_size, dropout), _dec_layer(d, num_heads, ff_size, dropout)
        self.seqTransEncoder_m = nn.TransformerEncoder(enc, num_layers=self.num_layers, enable_nested_tensor=False)
        self.seqTransEncoder_j = nn.TransformerEncoder(enc, num_layers=self.num_layers, enable_nested_tensor=False)
        self.motion_token = nn.Parameter(torch.randn((self.num_frames, 1, d)))
        self.joint_token = nn.Parameter(torch.randn((self.num_frames, 1, d)))
        self.decoder_m = nn.ModuleList([copy.deepcopy(dec) for _ in range(self.num_layers2)])
        self.decoder_j = nn.ModuleList([copy.deepcopy(dec) for _ in range(self.num_layers2)])
        self.bridge = nn.ModuleList([copy.deepcopy(enc) for _ in range(self.num_layers2)])
        # root pipeline
        r_enc, r_dec = _enc_layer(d, num_heads, root_ff_size, dropout), _dec_layer(d, num_heads, root_ff_size, dropout)
        self.r_linear_m = nn.Linear(r3, d)
        self.r_encoder_m = nn.TransformerEncoder(r_enc, num_layers=self.root_layers, enable_nested_tensor=False)
        self.r_decoder_m = nn.ModuleList([copy.deepcopy(r_dec) for _ in range(self.root_layers)])
        self.r_linear2_m = nn.Linear(d, r3)
        self.r_linear_j = nn.Linear(r2, d)
        self.r_encoder_j = nn.TransformerEncoder(r_enc, num_layers=self.root_layers, enable_nested_tensor=False)
        self.r_decoder_j = nn.ModuleList([copy.deepcopy(r_dec) for _ in range(self.root_layers)])
        self.r_linear2_j = nn.Linear(d, r2)
        self.embed_timestep = TimestepEmbedder(d, self.sequence_pos_encoder)
        self.embed_text = nn.Linear(clip_dim, d)
        self.p_linear2_m = nn.Linear(d, f3 - r3)
        self.p_linear2_j = nn.Linear(d, f2 - r2)

    # ------------------------------------------------------------------ helpers
    def _parts(self, domain: str) -> dict[str, nn.Module]:
        s = "m" if domain == "3d" else "j"
        return {name: getattr(self, f"{name}_{s}") for name in
                ("p_linear", "r_linear", "seqTransEncoder", "r_encoder", "decoder", "r_decoder",
                 "p_linear2", "r_linear2")} | {"token": getattr(self, "motion_token" if s == "m" else "joint_token")}

    def domain_of(self, channels: int) -> str:
        """``"3d"`` / ``"2d"`` from a channel count (the official model picks its input head this way)."""
        for dom in DOMAINS:
            if self.feats[dom] == channels:
                return dom
        raise InputError(f"CrossDiff ({self.dataset}) input has {channels} channels; expected "
                         f"{self.feats['3d']} (3D features) or {self.feats['2d']} (2D features) in [B, C, 1, T]")

    def mask_cond(self, text: Tensor, force_uncond: bool | Tensor = False) -> Tensor:
        """Classifier-free condition drop: all rows (``True``), rows where a bool ``[B]`` tensor is True, or
        (training only) each row with probability ``cond_mask_prob``."""
        if isinstance(force_uncond, Tensor):
            return text * (~force_uncond.to(device=text.device, dtype=torch.bool)).to(text.dtype).view(-1, 1)
        if force_uncond:
            return torch.zeros_like(text)
        if self.training and self.cond_mask_prob > 0.0:
            drop = torch.bernoulli(torch.ones(text.shape[0], device=text.device) * self.cond_mask_prob).view(-1, 1)
            return text * (1.0 - drop)
        return text

    def _check(self, x: Tensor, t: Tensor, text: Tensor, domain_in: str | None) -> str:
        if x.dim() != 4 or x.shape[2] != 1:
            raise InputError(f"CrossDiff input must be [B, C, 1, T] (official layout), got {tuple(x.shape)}")
        dom = self.domain_of(int(x.shape[1])) if domain_in is None else domain_in
        if dom not in DOMAINS or x.shape[1] != self.feats[dom]:
            raise InputError(f"domain_in={domain_in!r} needs [B, {self.feats.get(dom, '?')}, 1, T] "
                             f"(domains {DOMAINS}), got {tuple(x.shape)}")
        T = int(x.shape[-1])
        if (self.strict_frames and T != self.num_frames) or T > self.num_frames or T < 1:
            raise InputError(f"the official CrossDiff network takes exactly {self.num_frames} frames (its query "
                             f"tokens are [{self.num_frames}, 1, d]); got T={T}. Pad to {self.num_frames} frames"
                             " (strict_frames=False accepts T <= num_frames, our extension)")
        if t.shape != (x.shape[0],) or text.shape != (x.shape[0], self.embed_text.in_features):
            raise InputError(f"t must be [B] and text [B, {self.embed_text.in_features}] for B={x.shape[0]}, got "
                             f"{tuple(t.shape)} and {tuple(text.shape)}")
        return dom

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, t: Tensor, text: Tensor, domain_in: str | None = None,
                domains_out: Sequence[str] = ("3d",), force_uncond: bool | Tensor = False) -> dict[str, Tensor]:
        """``x [B, C, 1, T]`` (C = 263|134, T = 196), ``t [B]`` long, ``text [B, 512]`` (CLIP feature) ->
        ``{domain: [B, C_domain, 1, T]}`` x0-predictions for each domain in ``domains_out``.

        ``domain_in`` None: chosen by the channel count, as officially. ``force_uncond``: the official
        ``force_mask`` (True = unconditional branch); a bool ``[B]`` tensor drops the condition per row."""
        dom = self._check(x, t, text, domain_in)
        bad = [o for o in domains_out if o not in DOMAINS]
        if bad:
            raise InputError(f"domains_out must be drawn from {DOMAINS}, got {list(domains_out)}")
        B, T = x.shape[0], x.shape[-1]
        seq = x[:, :, 0].permute(2, 0, 1)  # [T, B, C]
        emb = self.embed_timestep(t) + self.embed_text(self.mask_cond(text, force_uncond))  # [1, B, d]
        parts, r = self._parts(dom), ROOT_SIZES[dom]
        pose = self.sequence_pos_encoder(torch.cat((emb, parts["p_linear"](seq[..., r:])), dim=0))
        root = self.sequence_pos_encoder(torch.cat((emb, parts["r_linear"](seq[..., :r])), dim=0))
        pose = parts["seqTransEncoder"](pose)
        root = parts["r_encoder"](root)
        memories = []
        for layer in self.bridge:
            pose = layer(pose)
            memories.append(pose)
        out: dict[str, Tensor] = {}
        first_root = self.num_layers2 - self.root_layers  # the root decoder joins for the last layers
        for o in dict.fromkeys(domains_out):
            po = self._parts(o)
            y = po["token"][:T].expand(-1, B, -1)
            y_root = root[1:]
            for i, (memory, layer) in enumerate(zip(memories, po["decoder"])):
                y = layer(y, memory)
                if i >= first_root:
                    y_root = po["r_decoder"][i - first_root](y_root, y)
            y = torch.cat([po["r_linear2"](y_root), po["p_linear2"](y)], dim=-1)  # [T, B, C]
            out[o] = y.permute(1, 2, 0).unsqueeze(2)
        return out
