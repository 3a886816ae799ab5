"""Video-based DiffPose (GONGJIA0208/Diffpose_video): a MixSTE prior over 243-frame clips + the frame denoiser.

The denoiser is the frame-based :class:`~.networks.GCNdiff` (same keys); the prior is ``MixSTE2`` (embed 512,
depth 8, 8 heads, mlp ratio 2; official ``mixste_cpn_243f.bin``, key ``model_pos``). The official test
(``runners/diffpose_video.py: test_per_action``) per action:

1. cuts each sequence into clips of ``F`` frames (the last clip = the last ``F`` frames, so it overlaps the one
   before; a sequence shorter than ``F`` is edge-padded) -- the errors are averaged over the clips' frames,
   overlap included;
2. runs MixSTE on the clip and on its horizontal flip (u negated, left/right swapped), averages the two;
3. per frame, ``uvxyz = [uv, MixSTE xyz]`` (no root subtraction; MixSTE is root-relative) is denoised from
   there without forward noise by DDIM over ``range(0, T, T // n)`` (CPN config: T = 6, n = 1 -> t = 0 only; GT
   config: 12, 2 -> 6, 0), then root-centred;
4. reports the frame-weighted MPJPE / P-MPJPE / N-MPJPE / MPJVE per action and their plain mean over actions.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.methods.diffpose.diffusion import generalized_steps, test_sequence
from skeleton_diffusion.methods.diffpose.networks import strip_data_parallel
from skeleton_diffusion.utils.errors import CheckpointError, InputError

__all__ = ["MixSTE2", "H36M_KPS_LEFT", "H36M_KPS_RIGHT", "clip_sequence", "flip_2d", "unflip_3d", "mixste_prior",
           "lift_video_clips", "load_mixste"]

H36M_KPS_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
H36M_KPS_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MixSTE2(nn.Module):
    """MixSTE (inference; dropout / drop-path off): ``x2d [B, F, J, 2] -> xyz [B, F, J, 3]`` (root-relative, m).
    Alternates spatial (over joints) and temporal (over frames) transformer blocks, ``depth`` of each."""

    def __init__(self, num_frame: int = 243, num_joints: int = 17, in_chans: int = 2, embed_dim_ratio: int = 512,
                 depth: int = 8, num_heads: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True) -> None:
        super().__init__()
        d = embed_dim_ratio
        self.Spatial_patch_to_embedding = nn.Linear(in_chans, d)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, d))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frame, d))
        self.STEblocks = nn.ModuleList([_Block(d, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.TTEblocks = nn.ModuleList([_Block(d, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.Spatial_norm = nn.LayerNorm(d, eps=1e-6)
        self.Temporal_norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 3))
        self.num_frame, self.num_joints = num_frame, num_joints

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_frame or x.shape[2] != self.num_joints:
            raise InputError(f"MixSTE2 expects [B, {self.num_frame}, {self.num_joints}, C], got {tuple(x.shape)}")
        b, f, n, _ = x.shape
        h = self.Spatial_patch_to_embedding(x.reshape(b * f, n, -1)) + self.Spatial_pos_embed
        for i, (ste, tte) in enumerate(zip(self.STEblocks, self.TTEblocks)):
            if i > 0:
                h = h.reshape(b, n, f, -1).transpose(1, 2).reshape(b * f, n, -1)     # (b n) f -> (b f) n
            h = self.Spatial_norm(ste(h))
            h = h.reshape(b, f, n, -1).transpose(1, 2).reshape(b * n, f, -1)         # (b f) n -> (b n) f
            if i == 0:
                h = h + self.Temporal_pos_embed
            h = self.Temporal_norm(tte(h))
        h = h.reshape(b, n, f, -1).transpose(1, 2)                                   # b f n c
        return self.head(h).reshape(b, f, n, -1)


def load_mixste(state: Mapping[str, Tensor], num_frame: int | None = None, *, source: str = "state dict",
                **sizes: int) -> MixSTE2:
    """Official MixSTE weights (``checkpoint['model_pos']``, ``module.*`` keys) -> :class:`MixSTE2` in eval mode;
    frames, joints and width are read from the weights, depth from the block count, heads from ``sizes``."""
    sd = strip_data_parallel(state)
    if "Temporal_pos_embed" not in sd or "Spatial_pos_embed" not in sd:
        raise CheckpointError(f"{source}: not a MixSTE state dict (no Temporal_pos_embed / Spatial_pos_embed); "
                              "expected the official checkpoint's 'model_pos' entry")
    f = int(sd["Temporal_pos_embed"].shape[1]) if num_frame is None else int(num_frame)
    depth = len({k.split(".")[1] for k in sd if k.startswith("STEblocks.")})
    model = MixSTE2(num_frame=f, num_joints=int(sd["Spatial_pos_embed"].shape[1]),
                    in_chans=int(sd["Spatial_patch_to_embedding.weight"].shape[1]),
                    embed_dim_ratio=int(sd["Spatial_pos_embed"].shape[2]), depth=depth,
                    num_heads=int(sizes.get("num_heads", 8)), mlp_ratio=float(sizes.get("mlp_ratio", 2.0)))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: the weights do not fit MixSTE2: {str(exc).splitlines()[0]}") from None
    return model.eval()


def clip_sequence(seq: Tensor, frames: int) -> Tensor:
    """Official ``eval_data_prepare``: ``[T, ...] -> [ceil(T / F), F, ...]``; the last clip is the last ``F``
    frames (overlapping the previous clip); ``T < F`` is edge-padded on the right."""
    t = seq.shape[0]
    if t < frames:
        seq = torch.cat([seq, seq[-1:].expand(frames - t, *seq.shape[1:])])
    n = -(-t // frames)
    clips = [seq[i * frames:(i + 1) * frames] for i in range(n - 1)] + [seq[-frames:]]
    return torch.stack(clips)


def flip_2d(x: Tensor, left: Sequence[int] = H36M_KPS_LEFT, right: Sequence[int] = H36M_KPS_RIGHT) -> Tensor:
    """Horizontal flip of normalised 2D ``[..., J, 2]``: u negated, left/right joints swapped."""
    out = x.clone()
    out[..., 0] *= -1
    out[..., list(left) + list(right), :] = out[..., list(right) + list(left), :]
    return out


def unflip_3d(x: Tensor, left: Sequence[int] = H36M_KPS_LEFT, right: Sequence[int] = H36M_KPS_RIGHT) -> Tensor:
    """Inverse flip of a 3D prediction ``[..., J, 3]`` (x negated, left/right swapped)."""
    out = x.clone()
    out[..., 0] *= -1
    out[..., list(left) + list(right), :] = out[..., list(right) + list(left), :]
    return out


def mixste_prior(mixste: Callable[[Tensor], Tensor], clips_2d: Tensor, *, flip_augment: bool = True) -> Tensor:
    """MixSTE on ``clips_2d [N, F, J, 2]`` averaged with its un-flipped prediction on the flipped input."""
    with torch.no_grad():
        pred = mixste(clips_2d)
        if flip_augment:
            pred = (pred + unflip_3d(mixste(flip_2d(clips_2d)))) / 2
    return pred


def lift_video_clips(mixste: Callable[[Tensor], Tensor], model: Callable[[Tensor, Tensor], Tensor], clips_2d: Tensor,
                     betas: Tensor, test_num_diffusion_timesteps: int, test_timesteps: int, eta: float = 0.0,
                     test_times: int = 1, step_noise: Sequence[Tensor] | None = None, *, flip_augment: bool = True,
                     skip_type: str = "uniform", generator: torch.Generator | None = None) -> Tensor:
    """Official video test on ``clips_2d [N, F, J, 2]`` -> root-relative ``xyz [N, F, J, 3]`` (metres).

    Draws (and discards) the start noise like the official code, then one DDIM noise per step."""
    if clips_2d.dim() != 4 or clips_2d.shape[-1] != 2:
        raise InputError(f"clips_2d must be [N, F, J, 2], got {tuple(clips_2d.shape)}")
    n, f, j, _ = clips_2d.shape
    xyz = mixste_prior(mixste, clips_2d, flip_augment=flip_augment).reshape(n * f, j, 3)
    start = torch.cat([clips_2d.reshape(n * f, j, 2), xyz], dim=2).repeat(test_times, 1, 1)
    torch.randn(start.shape, generator=generator, device=start.device, dtype=start.dtype)   # official unused draw
    seq = test_sequence(test_num_diffusion_timesteps, test_timesteps, skip_type)
    xs, _ = generalized_steps(start, seq, model, betas, eta=eta, noise=step_noise, generator=generator)
    out = xs[-1].reshape(test_times, n * f, j, -1).mean(dim=0)[..., 2:]
    out = out - out[:, :1, :]
    return out.reshape(n, f, j, 3)
