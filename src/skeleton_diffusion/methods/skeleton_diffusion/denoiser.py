"""Denoiser of the latent diffusion: per-joint graph MLP (ResNet blocks) plus attention across joints.

Module and parameter names follow the official ``src.core.network.nn.generator.Denoiser`` so an official
checkpoint (``checkpoint['model']`` keys ``model.*`` without the prefix) loads with ``load_state_dict``:
``init_lin``, ``time_mlp.{1,3}``, ``layers.<i>.0`` (ResnetBlock: ``mlp.1``, ``block1.proj``, ``block2.proj``,
``res_linear``), ``layers.<i>.1.fn.fn.to_qkv / to_out`` and ``layers.<i>.1.fn.norm.g`` (attention),
``final_res_block``, ``final_glin``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skeleton_diffusion.nn.graph import kernels as cpu_kernels
from skeleton_diffusion.methods.skeleton_diffusion import denoiser_fast
from skeleton_diffusion.nn.graph.layers import StaticGraphLinear
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = [
    "Denoiser",
    "SinusoidalPosEmb",
    "RandomOrLearnedSinusoidalPosEmb",
    "ResnetBlock",
    "Attention",
    "RMSNorm",
    "NodeLayerNorm",
]

NodeTypes = Union[Tensor, Sequence[int], None]


class SinusoidalPosEmb(nn.Module):
    """``t [B]`` (integer steps) -> ``[B, dim]``: ``[sin(t f_k), cos(t f_k)]``, ``f_k = theta^(-k/(dim/2-1))``."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ConfigError(f"SinusoidalPosEmb needs an even dim >= 4, got {dim}")
        self.dim = dim
        self.theta = theta

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        step = math.log(self.theta) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device) * -step)
        arg = t[:, None] * freqs[None, :]
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


class RandomOrLearnedSinusoidalPosEmb(nn.Module):
    """Random (fixed) or learned Fourier features: ``t [B]`` -> ``[B, dim + 1]`` = ``[t, sin, cos]``."""

    def __init__(self, dim: int, is_random: bool = False) -> None:
        super().__init__()
        if dim % 2:
            raise ConfigError(f"learned_sinusoidal_dim must be even, got {dim}")
        self.weights = nn.Parameter(torch.randn(dim // 2), requires_grad=not is_random)

    def forward(self, t: Tensor) -> Tensor:
        t = t[:, None].to(self.weights.dtype)
        freqs = t * self.weights[None, :] * (2 * math.pi)
        return torch.cat((t, freqs.sin(), freqs.cos()), dim=-1)


class RMSNorm(nn.Module):
    """``x / max(||x||_2, 1e-12) * g * sqrt(dim)`` over the last axis; parameter ``g [1, 1, dim]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.g * (x.shape[-1] ** 0.5)


class NodeLayerNorm(nn.Module):
    """``norm_type='layer'``: LayerNorm across the *node* axis of ``[B, N, F]`` (parameter ``norm.weight [N]``)."""

    def __init__(self, num_nodes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(num_nodes, elementwise_affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(-2, -1)).transpose(-2, -1)


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class Block(nn.Module):
    """``tanh(norm(StaticGraphLinear(x)) * (1 + scale) + shift)``."""

    def __init__(self, dim: int, dim_out: int, *, norm_type: str = "none", num_nodes: int,
                 node_types: NodeTypes = None, learn_influence: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.proj = StaticGraphLinear(dim, dim_out, num_nodes=num_nodes, node_types=node_types,
                                      learn_influence=learn_influence, bias=bias)
        if norm_type == "none":
            self.norm: nn.Module = nn.Identity()
        elif norm_type == "layer":
            self.norm = NodeLayerNorm(num_nodes)
        else:
            raise ConfigError(f"norm_type must be 'none' or 'layer', got {norm_type!r}")
        self.act = nn.Tanh()

    def forward(self, x: Tensor, scale_shift: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = torch.addcmul(shift, x, scale + 1)
        return self.act(x)


class ResnetBlock(nn.Module):
    """Two graph blocks with FiLM-style time conditioning on the first, plus a residual.

    ``x [B, N, dim]``, ``time_emb [B, time_emb_dim]`` -> ``[B, N, dim_out]``. The residual is the identity when
    ``dim == dim_out`` else a bias-free :class:`StaticGraphLinear` (``res_linear``).
    """

    def __init__(self, dim: int, dim_out: int, *, time_emb_dim: Optional[int], num_nodes: int,
                 node_types: NodeTypes = None, learn_influence: bool = True, norm_type: str = "none") -> None:
        super().__init__()
        gl = dict(num_nodes=num_nodes, node_types=node_types, learn_influence=learn_influence)
        self.mlp = nn.Sequential(nn.Tanh(), nn.Linear(time_emb_dim, dim_out * 2)) if time_emb_dim else None
        self.block1 = Block(dim, dim_out, norm_type=norm_type, **gl)
        self.block2 = Block(dim_out, dim_out, norm_type=norm_type, **gl)
        self.res_linear: nn.Module = (StaticGraphLinear(dim, dim_out, bias=False, **gl) if dim != dim_out
                                      else nn.Identity())

    def forward(self, x: Tensor, time_emb: Optional[Tensor] = None, time_index: Optional[Tensor] = None) -> Tensor:
        """``time_index [B]`` (optional): ``time_emb`` holds only distinct rows; sample b uses row ``time_index[b]``."""
        scale_shift = None
        if self.mlp is not None and time_emb is not None:
            film = self.mlp(time_emb)
            if time_index is not None:
                film = film.index_select(0, time_index)
            scale, shift = film.unsqueeze(1).chunk(2, dim=-1)
            scale_shift = (scale, shift)
        h = self.block2(self.block1(x, scale_shift=scale_shift))
        return h + self.res_linear(x)


class Attention(nn.Module):
    """Multi-head self-attention with the N joints as tokens. ``x [B, N, dim]`` -> ``[B, N, dim_out]``.

    ``to_qkv`` / ``to_out`` are bias-free :class:`StaticGraphLinear` layers; q is scaled by ``dim_head**-0.5``.
    """

    def __init__(self, dim: int, *, heads: int = 4, dim_head: int = 32, dim_out: Optional[int] = None,
                 num_nodes: int, node_types: NodeTypes = None, learn_influence: bool = True) -> None:
        super().__init__()
        gl = dict(num_nodes=num_nodes, node_types=node_types, learn_influence=learn_influence)
        self.scale = dim_head ** -0.5
        self.heads = heads
        self.dim_head = dim_head
        hidden = heads * dim_head
        self.to_qkv = StaticGraphLinear(dim, hidden * 3, bias=False, **gl)
        self.to_out = StaticGraphLinear(hidden, dim if dim_out is None else dim_out, bias=False, **gl)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)  # [B, h, N, d]
        # softmax(q k^T * scale) v in one fused kernel (official: explicit q * scale, matmul, softmax, matmul)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # [B, h, N, d]
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head))


class Denoiser(nn.Module):
    """x̂₀ network of SkeletonDiffusion (official ``Denoiser``).

    Args (config keys of ``model.diffusion_arch`` plus what ``DiffusionManager`` adds):
        dim: latent width per node (96). ``latent_size`` is accepted as an alias.
        out_dim: output width (default ``dim``; doubled when ``learned_variance``).
        num_nodes: N joints (21 for AMASS). ``channels`` (official name, = N) is an alias.
        node_types: length-N type ids shared by every graph layer (None -> one shared weight per layer).
        cond_dim: width of the condition ``x_cond`` (96 with conditioning, 0 without).
        depth: number of (ResnetBlock, attention) pairs is ``2 * depth``; the last pair has no attention.
        self_condition: concatenate ``x_self_cond`` (zeros when None) before ``x``.
        use_attention: attention across joints; False -> ``Residual(PreNorm(StaticGraphLinear))``.
        attn_heads, attn_dim_head: attention size (official config: 8 heads x 32).
        norm_type: ``'none'`` (paper) or ``'layer'`` (LayerNorm across nodes) inside every ResnetBlock.
        learn_influence: learnable, row-L1-normalised ``G`` in every graph layer.
        learned_sinusoidal_cond, random_fourier_features, learned_sinusoidal_dim, sinusoidal_pos_emb_theta:
            time-embedding options (the paper uses the fixed sinusoidal embedding, theta 10000).
        learned_variance: double the output width (unused by the paper).
        resnet_block_groups, arch: accepted for config compatibility and ignored (the official code ignores them).

    Widths: ``S = dim + cond_dim`` (192), time embedding ``4 S`` (768).
    """

    def __init__(
        self,
        dim: Optional[int] = None,
        out_dim: Optional[int] = None,
        channels: Optional[int] = None,
        *,
        num_nodes: Optional[int] = None,
        node_types: NodeTypes = None,
        cond_dim: int = 0,
        depth: int = 1,
        self_condition: bool = False,
        use_attention: bool = True,
        attn_heads: int = 4,
        attn_dim_head: int = 32,
        norm_type: str = "none",
        learn_influence: bool = True,
        learned_variance: bool = False,
        learned_sinusoidal_cond: bool = False,
        random_fourier_features: bool = False,
        learned_sinusoidal_dim: int = 16,
        sinusoidal_pos_emb_theta: float = 10000.0,
        resnet_block_groups: int = 8,
        latent_size: Optional[int] = None,
        arch: Optional[str] = None,
    ) -> None:
        super().__init__()
        if dim is None:
            dim = latent_size
        elif latent_size is not None and latent_size != dim:
            raise ConfigError(f"Denoiser got dim={dim} and latent_size={latent_size}; give one")
        if dim is None:
            raise ConfigError("Denoiser needs dim (the per-node latent width, e.g. 96)")
        if num_nodes is None:
            num_nodes = channels
        if num_nodes is None:
            raise ConfigError("Denoiser needs num_nodes (or channels)")
        if channels is not None and channels != num_nodes:
            raise ConfigError(f"Denoiser got channels={channels} but num_nodes={num_nodes}; they must agree")
        if arch not in (None, "Denoiser"):
            raise ConfigError(f"diffusion_arch.arch={arch!r} is not supported; only 'Denoiser' exists")
        if depth < 1:
            raise ConfigError(f"Denoiser depth must be >= 1, got {depth}")
        del resnet_block_groups  # official argument without effect
        self.dim = int(dim)
        self.cond_dim = int(cond_dim)
        self.num_nodes = int(num_nodes)
        self.channels = self.num_nodes  # attribute read by the diffusion wrapper (lucidrains legacy name)
        self.self_condition = bool(self_condition)
        self.out_dim = int(out_dim if out_dim is not None else dim)
        gl = dict(num_nodes=self.num_nodes, node_types=node_types, learn_influence=learn_influence)
        size = self.dim + self.cond_dim
        input_dim = self.dim * (2 if self.self_condition else 1) + self.cond_dim
        self.init_lin = StaticGraphLinear(input_dim, size, bias=True, **gl)

        time_dim = size * 4
        self.random_or_learned_sinusoidal_cond = learned_sinusoidal_cond or random_fourier_features
        if self.random_or_learned_sinusoidal_cond:
            pos_emb: nn.Module = RandomOrLearnedSinusoidalPosEmb(learned_sinusoidal_dim, random_fourier_features)
            fourier_dim = learned_sinusoidal_dim + 1
        else:
            pos_emb = SinusoidalPosEmb(size, theta=sinusoidal_pos_emb_theta)
            fourier_dim = size
        self.time_mlp = nn.Sequential(pos_emb, nn.Linear(fourier_dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))

        def mixer() -> nn.Module:
            if use_attention:
                inner: nn.Module = Attention(size, heads=attn_heads, dim_head=attn_dim_head, **gl)
            else:
                inner = StaticGraphLinear(size, size, bias=False, **gl)
            return Residual(PreNorm(size, inner))

        rb = dict(time_emb_dim=time_dim, norm_type=norm_type, **gl)
        self.layers = nn.ModuleList()
        for i in range(depth):
            # The official network appends two stages per depth step; only the very last has no attention.
            self.layers.append(nn.ModuleList([ResnetBlock(size, size, **rb), mixer()]))
            self.layers.append(nn.ModuleList([ResnetBlock(size, size, **rb),
                                              mixer() if i != depth - 1 else nn.Identity()]))
        final_out = self.out_dim * (2 if learned_variance else 1)
        self.final_res_block = ResnetBlock(size * 2, size, **rb)
        self.final_glin = StaticGraphLinear(size, final_out, bias=True, **gl)

    def _fast_cpu_dtype(self, x: Tensor) -> Optional[torch.dtype]:
        """Compute dtype when :mod:`~skeleton_diffusion.methods.skeleton_diffusion.denoiser_fast` computes this call (no grad, CPU float32
        input and weights, paper configuration; bfloat16 under a CPU bfloat16 autocast), else None."""
        dtype = cpu_kernels.fast_path_dtype(x)
        if dtype is None or self.init_lin.weight.dtype != torch.float32:
            return None
        ok = self.__dict__.get("_fast_supported")
        if ok is None:
            ok = self.__dict__["_fast_supported"] = fast_path_supported(self)
        return dtype if ok else None

    def forward(self, x: Tensor, time: Tensor, x_self_cond: Optional[Tensor] = None,
                x_cond: Optional[Tensor] = None) -> Tensor:
        """Predict x̂₀.

        Args:
            x: noisy latent ``x_t [B, N, dim]``.
            time: diffusion step ``[B]`` (int64; the raw integer t is embedded).
            x_self_cond: ``[B, N, dim]`` previous x̂₀ when ``self_condition`` (zeros when None), else ignored.
            x_cond: condition ``[B, N, cond_dim]`` (``z_past``); required iff ``cond_dim > 0``. It is
                concatenated *before* ``x``.
        Returns:
            ``[B, N, out_dim]``.
        """
        if x.ndim != 3 or x.shape[1] != self.num_nodes or x.shape[2] != self.dim:
            raise InputError(f"Denoiser expected x [B, {self.num_nodes}, {self.dim}], got {tuple(x.shape)}")
        if time.ndim != 1 or time.shape[0] != x.shape[0]:
            raise InputError(f"Denoiser expected time [B={x.shape[0]}], got {tuple(time.shape)}")
        if self.cond_dim > 0:
            if x_cond is None or x_cond.shape != (x.shape[0], self.num_nodes, self.cond_dim):
                got = None if x_cond is None else tuple(x_cond.shape)
                raise InputError(f"Denoiser expected x_cond [B, {self.num_nodes}, {self.cond_dim}], got {got}")
        elif x_cond is not None:
            raise InputError("Denoiser was built with cond_dim=0 but x_cond was given")
        fast = self._fast_cpu_dtype(x)
        if fast is not None:  # no-grad CPU: node-major oneDNN path, same function (nn/denoiser_fast.py)
            with torch.autocast("cpu", enabled=False):
                return denoiser_fast.forward(self, x, time, x_cond, x_self_cond, dtype=fast)
        if self.self_condition:
            x = torch.cat((torch.zeros_like(x) if x_self_cond is None else x_self_cond, x), dim=-1)
        if self.cond_dim > 0:
            x = torch.cat((x_cond, x), dim=-1)
        x = self.init_lin(x)
        r = x
        time, index = denoiser_fast.distinct_steps(time)  # each distinct step embedded once (row-wise identical)
        t = self.time_mlp(time)
        for block, mix in self.layers:
            x = mix(block(x, t, index))
        x = torch.cat((x, r), dim=-1)
        x = self.final_res_block(x, t, index)
        return self.final_glin(x)


def fast_path_supported(model: "Denoiser") -> bool:
    """True when every block of ``model`` has a node-major fast form (``norm_type='none'``) and all graph layers
    share one node-type assignment (as the :class:`Denoiser` builds them)."""
    if not all(isinstance(m.norm, nn.Identity) for m in model.modules() if isinstance(m, Block)):
        return False
    types = [None if m.node_type_index is None else tuple(m.node_type_index.tolist())
             for m in model.modules() if isinstance(m, StaticGraphLinear)]
    return len({t for t in types if t is not None}) <= 1
