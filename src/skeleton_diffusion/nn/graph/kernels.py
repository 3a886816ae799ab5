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
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["onednn_linear_available", "fast_path_enabled", "fast_path_dtype", "linear", "TypeGroups",
           "grouped_linear", "gemm_backend", "recurrence_backend", "tanh_", "run_chunks"]

_PROBES: dict = {}  # dtype -> whether oneDNN's linear works and agrees with F.linear in that dtype


def _probe(dtype: torch.dtype) -> bool:
    if dtype not in _PROBES:
        ok = False
        try:
            if torch.backends.mkldnn.is_available():
                gen = torch.Generator().manual_seed(0)
                x, w, b = torch.randn(5, 7, generator=gen), torch.randn(3, 7, generator=gen), torch.randn(3, generator=gen)
                with torch.no_grad(), torch.autocast("cpu", enabled=False):  # the probe may run under autocast
                    y = torch.ops.mkldnn._linear_pointwise(x.to(dtype), w.to(dtype), b.to(dtype), "none", [], "")
                    tol = 1e-5 if dtype == torch.float32 else 0.1
                    ok = y.dtype == dtype and bool(torch.allclose(y.float(), F.linear(x, w, b), rtol=tol, atol=tol))
        except Exception:  # an op missing from this build, or refusing this CPU
            ok = False
        _PROBES[dtype] = ok
    return _PROBES[dtype]


def onednn_linear_available() -> bool:
    """True when ``torch.ops.mkldnn._linear_pointwise`` exists and agrees with ``F.linear`` on a probe (cached)."""
    return _probe(torch.float32)


def _disabled() -> bool:
    return os.environ.get("SKELETON_DIFFUSION_FAST_CPU", "1").strip().lower() in ("0", "false", "no", "off")


def fast_path_enabled(x: Tensor) -> bool:
    """Whether the no-grad float32 CPU kernels apply to ``x``: CPU float32, autograd off, no autocast, not disabled
    by ``SKELETON_DIFFUSION_FAST_CPU=0``, and oneDNN usable (:func:`fast_path_dtype` is float32)."""
    return fast_path_dtype(x) == torch.float32


def fast_path_dtype(x: Tensor) -> Optional[torch.dtype]:
    """Compute dtype of the no-grad CPU fast path for float32 input ``x``: ``torch.float32`` where
    :func:`fast_path_enabled`, ``torch.bfloat16`` under a CPU bfloat16 autocast (low-precision sampling, when
    oneDNN runs bfloat16 products), else None (use the generic path)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled() or _disabled():
        return None
    if not torch.is_autocast_enabled("cpu"):
        return torch.float32 if onednn_linear_available() else None
    if torch.get_autocast_dtype("cpu") == torch.bfloat16 and _probe(torch.bfloat16):
        return torch.bfloat16
    return None


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ weight.T + bias`` for 2-D CPU ``x [M, in]``, ``weight [out, in]`` (float32 or bfloat16) via oneDNN.

    Callers check :func:`fast_path_enabled` first."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class TypeGroups:
    """Nodes reordered so that nodes sharing a type (hence a weight) are adjacent.

    ``perm [N]``: new position -> original node; ``inv``: original node -> new position; ``groups``: ``(start, end,
    type)`` ranges of the new order. In node-major tensors ``[N, R, F]`` permuted with ``perm``, the rows of one
    type are then contiguous, so each type is ONE product of ``(end - start) * R`` rows (:func:`grouped_linear`)
    instead of one per node. ``node_types=None`` (one shared weight): a single group of all N nodes.
    """

    def __init__(self, node_types: Optional[Sequence[int]], num_nodes: int) -> None:
        types = [0] * num_nodes if node_types is None else [int(t) for t in node_types]
        order = sorted(range(num_nodes), key=lambda i: (types[i], i))
        self.perm = torch.tensor(order, dtype=torch.long)
        self.inv = torch.empty_like(self.perm)
        self.inv[self.perm] = torch.arange(num_nodes)
        self.identity = order == list(range(num_nodes))
        self.groups: list = []
        for pos, node in enumerate(order):
            if self.groups and self.groups[-1][2] == types[node]:
                self.groups[-1][1] = pos + 1
            else:
                self.groups.append([pos, pos + 1, types[node]])
        self.groups = [tuple(g) for g in self.groups]

    def permute(self, x: Tensor, dim: int = 0) -> Tensor:
        """``x`` with its node axis ``dim`` in the grouped order (a copy unless the order is the identity)."""
        return x if self.identity else x.index_select(dim, self.perm)

    def restore(self, x: Tensor, dim: int = 0) -> Tensor:
        """Inverse of :meth:`permute`."""
        return x if self.identity else x.index_select(dim, self.inv)

    def mixing(self, g: Tensor) -> Tensor:
        """Node mixing matrix ``g [N, N]`` in the grouped order."""
        return g if self.identity else g.index_select(0, self.perm).index_select(1, self.perm)

    def mixing_seq(self, g: Tensor) -> Tensor:
        """Mixing matrices ``g [T, N, N]`` in the grouped order."""
        return g if self.identity else g.index_select(1, self.perm).index_select(2, self.perm)


def grouped_linear(x: Tensor, groups: "TypeGroups", weights: Sequence[Tensor],
                   biases: Optional[Sequence[Optional[Tensor]]] = None, add: Optional[Tensor] = None,
                   out: Optional[Tensor] = None) -> Tensor:
    """Per-type products of grouped node-major ``x [N, R, in]`` (order :attr:`TypeGroups.perm`):
    ``out[n] = x[n] @ weights[k].T (+ biases[k]) (+ add[n])`` for node n in group k. Returns ``[N, R, out]``."""
    n, r, fin = x.shape
    fout = weights[0].shape[0]
    if x.dtype == torch.float32 and gemm_backend() == "mkl":  # products written in place: no concatenation
        y = x.new_empty(n, r, fout) if out is None else out.view(n, r, fout)
        for k, (lo, hi, _) in enumerate(groups.groups):
            xs, ys = x[lo:hi].reshape(-1, fin), y[lo:hi].view(-1, fout)
            b = None if biases is None else biases[k]
            if add is not None:
                torch.addmm(add[lo:hi].reshape(-1, fout), xs, weights[k].t(), out=ys)
                if b is not None:
                    ys.add_(b)
            elif b is not None:
                torch.addmm(b, xs, weights[k].t(), out=ys)
            else:
                torch.mm(xs, weights[k].t(), out=ys)
        return y
    parts = []
    for k, (lo, hi, _) in enumerate(groups.groups):
        xs = x[lo:hi].reshape(-1, fin)
        b = None if biases is None else biases[k]
        if add is None:
            parts.append(linear(xs, weights[k], b))
        else:
            parts.append(torch.ops.mkldnn._linear_pointwise.binary(xs, add[lo:hi].reshape(-1, fout), weights[k], b,
                                                                   "add"))
    if len(parts) == 1:
        y = parts[0] if out is None else out.view(-1, fout).copy_(parts[0])
    else:
        y = torch.cat(parts) if out is None else torch.cat(parts, out=out.view(-1, fout))
    return y.view(n, r, fout)


_GEMM: dict = {}


def gemm_backend() -> str:
    """Library of the float32 products of :func:`grouped_linear`: ``'onednn'`` or ``'mkl'`` (cached).

    MKL selects its kernels by CPU vendor: on Intel CPUs it runs its AVX-512 code and is as fast as oneDNN, and
    its ``out=`` variants let every type's product be written in place (no concatenation, ~10 % of a denoiser
    pass); on other vendors oneDNN is about twice as fast. ``SKELETON_DIFFUSION_CPU_GEMM=mkl|onednn`` overrides
    the choice (default ``auto``: MKL on ``GenuineIntel``)."""
    if "backend" not in _GEMM:
        choice = os.environ.get("SKELETON_DIFFUSION_CPU_GEMM", "auto").strip().lower()
        if choice not in ("mkl", "onednn"):
            vendor = ""
            try:
                with open("/proc/cpuinfo") as f:
                    vendor = next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
            except OSError:
                pass
            choice = "mkl" if vendor == "GenuineIntel" and torch.backends.mkl.is_available() else "onednn"
        _GEMM["backend"] = choice
    return _GEMM["backend"]


def recurrence_backend() -> str:
    """Library of the hidden-state products of the no-grad GRU recurrence (the decoder): ``'mkl'`` (one per-node
    batched ``baddbmm`` per step) or ``'onednn'`` (one product per node type per step, cached).

    The per-step products are small (64 sequences x a few nodes per type), so the number of calls matters as much
    as the library's peak. Measured on the AMD EPYC box (one thread, MKL on its AVX2 kernels, decoding 16 x S
    sequences x 120 frames): quiet, S = 10: oneDNN 0.47-0.50 s, MKL 0.52-0.55 s; S = 50: MKL 2.7-3.0 s, oneDNN
    3.1-3.3 s; with other processes on the cores MKL's one call per step is 20-30 % faster than 13 oneDNN calls.
    Default (``auto``): MKL wherever this PyTorch build has it (evaluations run S = 50), else oneDNN.
    ``SKELETON_DIFFUSION_CPU_RECURRENCE_GEMM=mkl|onednn`` overrides."""
    if "recurrence" not in _GEMM:
        choice = os.environ.get("SKELETON_DIFFUSION_CPU_RECURRENCE_GEMM", "auto").strip().lower()
        if choice not in ("mkl", "onednn"):
            choice = "mkl" if torch.backends.mkl.is_available() else "onednn"
        _GEMM["recurrence"] = choice
    return _GEMM["recurrence"]


def _sigmoid_tanh_faster() -> bool:
    """Whether ``2 sigmoid(2x) - 1`` beats ``torch.tanh_`` on this CPU (timed once on 256 K floats, cached; on
    the AMD EPYC box the sigmoid form was ~3x faster, on an Intel Xeon ``tanh_`` is ~2.5x faster)."""
    if "sigmoid_tanh" not in _GEMM:
        import time

        x = torch.linspace(-3.0, 3.0, 1 << 18)
        best = {True: float("inf"), False: float("inf")}
        for _ in range(3):
            for use_sigmoid in (True, False):
                t0 = time.perf_counter()
                (x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0) if use_sigmoid else x.tanh_())
                best[use_sigmoid] = min(best[use_sigmoid], time.perf_counter() - t0)
                x.copy_(torch.linspace(-3.0, 3.0, 1 << 18))
        _GEMM["sigmoid_tanh"] = best[True] < best[False]
    return _GEMM["sigmoid_tanh"]


def tanh_(x: Tensor) -> Tensor:
    """In-place ``tanh``; as ``2 sigmoid(2x) - 1`` (see the module docstring) where that is faster on this CPU
    (:func:`_sigmoid_tanh_faster`); returns ``x``."""
    if x.dtype == torch.float32 and not _sigmoid_tanh_faster():  # (bfloat16 sampling keeps the sigmoid form)
        return x.tanh_()
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def run_chunks(work: Callable[[int], None], num_chunks: int) -> None:
    """Run ``work(i)`` for ``i in range(num_chunks)`` (independent chunks of a no-grad CPU computation).

    With ``k = torch.get_num_threads() > 1`` the chunks run on ``min(k, num_chunks)`` Python threads, each with
    ``k // min(k, num_chunks)`` intra-op threads (PyTorch ops release the GIL), instead of one chunk at a time with
    ``k`` threads inside every small op: the per-step ops of the decoder recurrence or of a 200-row denoiser layer
    are too small to split well (2 cores: decoder 1.55 -> 1.33 s, sampling 4.74 -> 4.28 s at S = 50). The intra-op
    setting is restored afterwards. One thread, one chunk, a CPU autocast or ``SKELETON_DIFFUSION_FAST_CPU=0``: a
    plain loop."""
    k = torch.get_num_threads()
    if k <= 1 or num_chunks <= 1 or _disabled() or torch.is_autocast_enabled("cpu"):  # autocast is per thread too
        for i in range(num_chunks):
            work(i)
        return
    outer = min(k, num_chunks)
    grad = torch.is_grad_enabled()  # grad and inference modes are per thread: the workers take the caller's
    inference = torch.is_inference_mode_enabled()

    def run(i: int) -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            work(i)

    torch.set_num_threads(max(1, k // outer))  # read by each new worker thread at its first parallel op
    try:
        with ThreadPoolExecutor(max_workers=outer, thread_name_prefix="sd-chunk") as pool:
            for future in [pool.submit(run, i) for i in range(num_chunks)]:
                future.result()  # re-raises a worker's exception
    finally:
        torch.set_num_threads(k)
