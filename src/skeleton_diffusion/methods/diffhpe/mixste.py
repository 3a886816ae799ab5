"""MixSTE (spatio-temporal transformer) as DiffHPE's pretrained conditioner (the "DiffHPE-Wrapper").

The official wrapper (``conditioning: pt_mixste``) loads a supervised MixSTE lifter from ``prt_mixste_*.pt``
(key ``model_pos``: the MixSTE state dict, optionally with a ``module.`` prefix), drops the head's final linear
(keeping its LayerNorm, so the conditioner outputs ``embed_dim`` features per joint and frame), freezes it, and
concatenates ``data_enc(noisy 3D)`` (a trainable ``Linear(3, embed_dim)``) with those features:
``[B, 2·embed_dim, J, L]`` into the denoiser. Key names follow DiffHPE's MixSTE so both ``model_pos`` and the
wrapper's ``conditioning.*`` entries of ``model.pth`` load strictly. Inference only needs eval mode
(drop-path is 0 in the wrapper).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import CheckpointError

__all__ = ["MixSTE", "PretrainedMixSTECond", "load_mixste_state", "mixste_sizes"]


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.norm1 = norm(dim)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = norm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MixSTE(nn.Module):
    """``[B, in_chans, J, L] -> [B, out_dim, J, L]``: alternating spatial (over joints) and temporal (over
    frames) transformer blocks (DiffHPE's MixSTE, key names included). ``keep_head=False`` keeps only the head's
    LayerNorm (output ``embed_dim`` channels), as the pretrained conditioner does."""

    def __init__(self, num_frame: int, num_joints: int = 17, in_chans: int = 2, out_dim: int = 3,
                 embed_dim: int = 512, depth: int = 8, num_heads: int = 8, mlp_ratio: float = 2.0,
                 keep_head: bool = True) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.embed_dim = embed_dim
        self.Spatial_patch_to_embedding = nn.Linear(in_chans, embed_dim)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, embed_dim))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frame, embed_dim))
        self.STEblocks = nn.ModuleList([_Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.TTEblocks = nn.ModuleList([_Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.Spatial_norm = norm(embed_dim)
        self.Temporal_norm = norm(embed_dim)
        self.head: nn.Module = (nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, out_dim)) if keep_head
                                else nn.LayerNorm(embed_dim))

    def forward(self, x: Tensor) -> Tensor:
        b, _, j, length = x.shape
        h = self.Spatial_patch_to_embedding(x.permute(0, 3, 2, 1).reshape(b * length, j, -1))
        h = self.Spatial_norm(self.STEblocks[0](h + self.Spatial_pos_embed))
        h = h.reshape(b, length, j, -1).permute(0, 2, 1, 3).reshape(b * j, length, -1)
        h = self.Temporal_norm(self.TTEblocks[0](h + self.Temporal_pos_embed))
        c = h.shape[-1]
        h = h.reshape(b, j, length, c).permute(0, 2, 1, 3)                     # [B, L, J, C]
        for ste, tte in zip(self.STEblocks[1:], self.TTEblocks[1:]):
            h = self.Spatial_norm(ste(h.reshape(b * length, j, c)))
            h = h.reshape(b, length, j, c).permute(0, 2, 1, 3).reshape(b * j, length, c)
            h = self.Temporal_norm(tte(h))
            h = h.reshape(b, j, length, c).permute(0, 2, 1, 3)
        return self.head(h).permute(0, 3, 2, 1)                                # [B, C, J, L]


def mixste_sizes(state: Mapping[str, Tensor]) -> dict[str, int]:
    """``num_frame``, ``num_joints``, ``in_chans``, ``embed_dim``, ``depth`` read from a MixSTE state dict."""
    try:
        return {"num_frame": int(state["Temporal_pos_embed"].shape[1]),
                "num_joints": int(state["Spatial_pos_embed"].shape[1]),
                "in_chans": int(state["Spatial_patch_to_embedding.weight"].shape[1]),
                "embed_dim": int(state["Spatial_patch_to_embedding.weight"].shape[0]),
                "depth": len({k.split(".")[1] for k in state if k.startswith("STEblocks.")})}
    except KeyError as exc:
        raise CheckpointError(f"MixSTE state dict lacks {exc}; expected DiffHPE/MixSTE key names "
                              "(Spatial_patch_to_embedding.*, STEblocks.N.*, TTEblocks.N.*, ...)") from exc


def load_mixste_state(path: str | Path) -> dict[str, Tensor]:
    """The MixSTE state dict of an official ``prt_mixste_*.pt`` (key ``model_pos``; ``module.`` stripped),
    read with ``weights_only=True`` (numpy RNG-state classes allow-listed)."""
    from skeleton_diffusion.methods.diffhpe.files import safe_load_official

    ckpt: Any = safe_load_official(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model_pos"), Mapping):
        keys = sorted(map(str, ckpt)) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"'{path}' has no 'model_pos' state dict (found {keys}); expected an official "
                              "prt_mixste_*.pt MixSTE checkpoint")
    state = {str(k): v for k, v in ckpt["model_pos"].items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


class PretrainedMixSTECond(MixSTE):
    """Wrapper conditioning (official ``PTMixSTECond``, same keys): ``(noisy [B,3,J,L], data_2d [B,2,J,L]) ->
    [B, 2·embed_dim, J, L]`` with ``encode_3d`` (else ``[B, embed_dim + 3, J, L]``); order ``[3D part, 2D
    features]`` as the official concatenation. The MixSTE part is frozen; ``data_enc`` trains."""

    def __init__(self, num_frame: int, num_joints: int = 17, embed_dim: int = 64, depth: int = 8,
                 num_heads: int = 8, encode_3d: bool = True, mix_mode: str = "concat") -> None:
        super().__init__(num_frame, num_joints, 2, 3, embed_dim, depth, num_heads, keep_head=False)
        if mix_mode != "concat":
            raise CheckpointError(f"only cond_mix_mode 'concat' is supported for pt_mixste, got {mix_mode!r}")
        self.mix_mode = mix_mode
        self.num_heads = num_heads
        self.requires_grad_(False)
        self.data_enc: nn.Module = nn.Linear(3, embed_dim) if encode_3d else nn.Identity()
        self.out_dim = embed_dim + (embed_dim if encode_3d else 3)

    def load_pretrained(self, state: Mapping[str, Tensor]) -> None:
        """Load a full ``model_pos`` state (with ``head.0``/``head.1``); keep only the head's LayerNorm."""
        sizes = mixste_sizes(state)
        full = MixSTE(**sizes, out_dim=int(state["head.1.weight"].shape[0]) if "head.1.weight" in state else 3,
                      num_heads=self.num_heads)
        try:
            full.load_state_dict(dict(state), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"the MixSTE 'model_pos' state does not match DiffHPE's MixSTE: {exc}") from exc
        kept = {k: v for k, v in full.state_dict().items() if not k.startswith("head.")}
        kept.update({"head.weight": full.head[0].weight.data, "head.bias": full.head[0].bias.data})
        missing, unexpected = self.load_state_dict(kept, strict=False)
        bad = [k for k in missing if not k.startswith("data_enc.")] + list(unexpected)
        if bad:
            raise CheckpointError(f"pretrained MixSTE does not fit the conditioner (sizes {sizes}): {bad[:5]}")

    def forward(self, noisy: Tensor, data_2d: Tensor) -> Tensor:  # type: ignore[override]
        enc2d = super().forward(data_2d)
        enc3d = self.data_enc(noisy.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        return torch.cat([enc3d, enc2d], dim=1)
