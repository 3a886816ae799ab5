"""Faster no-grad CPU kernels for inference: oneDNN matrix products and a vectorised ``tanh``.

Why: PyTorch's CPU ``mm``/``bmm``/``F.linear`` in float32 call MKL's ``sgemm``. MKL chooses its code path by CPU
vendor, and on AMD processors it runs its AVX2 kernels even where AVX-512 exists; oneDNN (also inside every
PyTorch CPU build, used by ``torch.ops.mkldnn._linear_pointwise``) dispatches on the instruction set. Measured on
the project's 2-core AMD EPYC (AVX-512) box, one thread, float32: MKL 95-108 GFLOP/s, oneDNN 210-240 GFLOP/s for
the denoiser's products (``benchmarks/bench_inference.py`` measures the whole effect). Results are the same
function up to float rounding (the summation order of a dot product differs between libraries).

``torch.tanh`` on CPU is several times slower than ``torch.sigmoid`` on the same tensor (8.3 vs 0.8 ms on
3.2 M floats here); :func:`tanh_` uses ``tanh(x) = 2 sigmoid(2x) - 1`` (absolute error <= 1.2e-7, i.e. float32
rounding of values of size 1; not relative accuracy near 0, which nothing downstream needs).

Only for inference: the oneDNN op has no autograd formula, so callers use these functions under ``no_grad`` and
fall back to the ordinary path otherwise (:func:`fast_path_enabled`). Set the environment variable
``SKELETON_DIFFUSION_FAST_CPU=0`` to disable them (e.g. to compare against the plain path).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["onednn_linear_available", "fast_path_enabled", "linear", "node_linear", "tanh_"]

_ONEDNN: Optional[bool] = None


def onednn_linear_available() -> bool:
    """True when ``torch.ops.mkldnn._linear_pointwise`` exists and agrees with ``F.linear`` on a probe (cached)."""
    global _ONEDNN
    if _ONEDNN is None:
        ok = False
        try:
            if torch.backends.mkldnn.is_available():
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(5, 7, generator=gen)
                w = torch.randn(3, 7, generator=gen)
                b = torch.randn(3, generator=gen)
                y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
                ok = bool(torch.allclose(y, F.linear(x, w, b), rtol=1e-5, atol=1e-5))
        except Exception:  # an op missing from this build, or refusing this CPU
            ok = False
        _ONEDNN = ok
    return _ONEDNN


def fast_path_enabled(x: Tensor) -> bool:
    """Whether the no-grad float32 CPU kernels apply to ``x``: CPU float32, autograd off, no autocast, not disabled
    by ``SKELETON_DIFFUSION_FAST_CPU=0``, and oneDNN usable."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled():
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    if os.environ.get("SKELETON_DIFFUSION_FAST_CPU", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return onednn_linear_available()


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ weight.T + bias`` for 2-D contiguous float32 CPU ``x [M, in]``, ``weight [out, in]`` via oneDNN.

    Callers check :func:`fast_path_enabled` first."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def node_linear(x: Tensor, weights: Sequence[Tensor], biases: Optional[Sequence[Optional[Tensor]]] = None,
                add: Optional[Tensor] = None, out: Optional[Tensor] = None) -> Tensor:
    """Per-node products of node-major ``x [N, R, in]``: ``out[n] = x[n] @ weights[n].T (+ biases[n]) (+ add[n])``.

    ``weights[n] [out, in]`` (e.g. the node's type weight), ``add [N, R, out]`` (fused into the product),
    ``out [N, R, out]`` optional destination. Returns ``[N, R, out]``."""
    n = x.shape[0]
    if add is not None:
        ys = [torch.ops.mkldnn._linear_pointwise.binary(x[i], add[i], weights[i],
                                                         None if biases is None else biases[i], "add")
              for i in range(n)]
    else:
        ys = [linear(x[i], weights[i], None if biases is None else biases[i]) for i in range(n)]
    return torch.stack(ys) if out is None else torch.stack(ys, out=out)


def tanh_(x: Tensor) -> Tensor:
    """In-place ``tanh`` as ``2 sigmoid(2x) - 1`` (see the module docstring); returns ``x``."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)
