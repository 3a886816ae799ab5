"""Work of each inference stage in floating-point operations, and this machine's measured float32 matmul peak.

Used by ``bench_inference.py`` to print achieved GFLOP/s and the fraction of the peak per stage. The count is
the *necessary* matrix-product work of the computation (read from the modules' sizes, nothing hard-coded):

* every graph linear layer: ``2·N·in·out`` (per-node product) + ``2·N·N·out`` (node mixing) per row;
* attention: ``2 · 2·heads·N·N·dim_head`` per row (scores and weighted values);
* a graph GRU step: ``2·N·(in + H)·3H`` products + ``2 · 2·N·N·3H`` mixing of the input and hidden terms; the
  decoder's constant input is projected once per sequence (the official code repeats it at every step: that
  redundant work is not counted, so both implementations are measured against the same numerator);
* elementwise work (gates, softmax, normalisation) and the per-step time embedding are not counted.
"""

from __future__ import annotations

import time

import torch


def _graph_linear(lin) -> int:
    n = lin.num_nodes
    return 2 * n * lin.in_features * lin.out_features + 2 * n * n * lin.out_features


def denoiser_flops_per_row(denoiser) -> int:
    """Products of one denoiser evaluation of one sample ``[N, dim]``."""
    from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Attention
    from skeleton_diffusion.nn.graph.layers import StaticGraphLinear

    total = 0
    for m in denoiser.modules():
        if isinstance(m, StaticGraphLinear):
            total += _graph_linear(m)
        elif isinstance(m, Attention):
            total += 2 * 2 * m.heads * denoiser.num_nodes ** 2 * m.dim_head
    return total


def _gru_step(cell, with_input: bool = True) -> int:
    n, h = cell.num_nodes, cell.hidden_size
    return 2 * n * ((cell.input_size if with_input else 0) + h) * 3 * h + 2 * 2 * n * n * 3 * h


def encoder_flops_per_sequence(autoencoder, frames: int) -> int:
    enc = autoencoder.encoder
    return (sum(frames * _gru_step(cell) for cell in enc.rnn.layers) + _graph_linear(enc.fc)
            + _graph_linear(enc.initial_hidden1))


def decoder_flops_per_sequence(autoencoder, steps: int) -> int:
    dec = autoencoder.decoder
    total = _graph_linear(dec.initial_hidden_h) + steps * _graph_linear(dec.fc)
    for cell in dec.rnn.layers:
        total += 2 * cell.num_nodes * cell.input_size * 3 * cell.hidden_size  # constant input, projected once
        total += steps * _gru_step(cell, with_input=False)
    return total


def stage_flops(autoencoder, denoiser, windows: int, samples: int, obs_length: int, pred_length: int,
                denoiser_steps: int) -> dict:
    """``{'encode', 'denoise', 'decode'}`` -> FLOPs of one prediction (``windows`` observations x ``samples``)."""
    rows = windows * samples
    return dict(encode=windows * encoder_flops_per_sequence(autoencoder, obs_length),
                denoise=rows * denoiser_steps * denoiser_flops_per_row(denoiser),
                decode=rows * decoder_flops_per_sequence(autoencoder, pred_length))


def measured_peak_gflops(size: int = 1024, repeats: int = 7) -> dict:
    """Best float32 matmul rate on this machine with the current torch thread count (GFLOP/s): MKL ``torch.mm``
    and oneDNN ``_linear_pointwise`` on ``size``^3 products; the best repeat (least disturbed) of each, by wall
    clock and by process CPU time (``cpu`` divides by the CPU seconds, i.e. the rate per busy core-second x
    threads)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    flops = 2 * size ** 3
    fns = {"mkl": lambda: torch.mm(a, b)}
    try:
        torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
        fns["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    except Exception:  # no oneDNN in this build
        pass
    out = {}
    with torch.no_grad():
        for name, fn in fns.items():
            fn()
            wall, cpu = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            out[name] = dict(wall=flops / min(wall) / 1e9, cpu=flops / max(min(cpu), 1e-9) / 1e9)
    out["peak"] = dict(wall=max(v["wall"] for v in out.values()),
                       cpu=max(v["cpu"] for k, v in out.items() if k != "peak"))
    return out
