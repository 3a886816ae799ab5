"""Autoencoder train-step benchmark: our vectorised model vs a straightforward official-style reference.

One step = autoencode (past + future encoding, ph-step decoding) + L1 loss + backward + grad clip + AdamW(amsgrad).
Defaults are the AMASS recipe: batch 64, 21 nodes / 13 types, 30 observed and 120 predicted frames, hidden and
latent 96, 2 encoder layers. Timing: both variants in one process with interleaved steps (so a shared, busy CPU
slows both alike); wall and process-CPU medians are reported. Memory: one fresh process per variant running one
step; CPU = peak RSS (``ru_maxrss``) minus the RSS before the step, CUDA = ``torch.cuda.max_memory_allocated``.

    python benchmarks/bench_autoencoder.py --device auto --iters 5 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

AMASS_TYPES = [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 10, 10, 11, 11, 12, 12]


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _build(variant: str, device):
    import torch

    from skeleton_diffusion.methods.skeleton_diffusion.autoencoder import AutoEncoder

    torch.manual_seed(0)
    ours = AutoEncoder(num_nodes=21, node_types=AMASS_TYPES, latent_size=96, enc_num_layers=2)
    if variant == "ours":
        model = ours
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _reference_autoencoder import ReferenceAutoEncoder

        model = ReferenceAutoEncoder(AMASS_TYPES, enc_layers=2)
        model.load_state_dict(ours.state_dict())  # identical weights
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, amsgrad=True, weight_decay=0.01)
    return model, opt


def _make_step(model, opt, obs, fut):
    import torch

    def step() -> float:
        pred, _, _ = model.autoencode(fut, obs, ph=120)
        loss = model.loss(pred, fut)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    return step


def _data(args, device):
    import torch

    gen = torch.Generator().manual_seed(1)
    obs = (0.3 * torch.randn(args.batch_size, 30, 21, 3, generator=gen)).to(device)
    fut = (0.3 * torch.randn(args.batch_size, 120, 21, 3, generator=gen)).to(device)
    return obs, fut


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _run_memory(args: argparse.Namespace) -> dict:
    """One variant in a fresh process: peak memory of ``args.iters`` steps (after data/model setup)."""
    import torch

    torch.set_num_threads(args.threads)
    from skeleton_diffusion.utils.device import resolve_device

    device = resolve_device(args.device)
    model, opt = _build(args.variant, device)
    step = _make_step(model, opt, *_data(args, device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss0 = _current_rss_bytes()
    loss = step()
    _sync(device)
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(), "cuda max_memory_allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0, "peak RSS delta"
    return {"variant": args.variant, "peak_bytes": peak, "mem_kind": kind, "first_loss": loss}


def _run_timing(args: argparse.Namespace) -> dict:
    """Both variants in one process, steps interleaved (ours, reference, ours, ...) so they see the same load."""
    import torch

    torch.set_num_threads(args.threads)
    from skeleton_diffusion.utils.device import resolve_device

    device = resolve_device(args.device)
    data = _data(args, device)
    variants = args.variants.split(",")
    steps = {v: _make_step(*_build(v, device), *data) for v in variants}
    wall: dict = {v: [] for v in variants}
    cpu: dict = {v: [] for v in variants}
    for i in range(args.iters + 1):  # round 0 = warm-up, excluded
        for v in variants:
            c0, t0 = time.process_time(), time.perf_counter()
            steps[v]()
            _sync(device)
            if i > 0:
                wall[v].append(time.perf_counter() - t0)
                cpu[v].append(time.process_time() - c0)
    return {"device": str(device), "wall": wall, "cpu": cpu}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--iters", type=int, default=3, help="timed steps per variant (after one warm-up step)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--variants", default="ours,reference")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(_run_memory(args)))
        return
    print(f"load average before: {os.getloadavg()}, cpu count {os.cpu_count()}, torch threads {args.threads}")
    mem = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, "--device", args.device, "--iters", "1",
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        mem[variant] = json.loads(out.strip().splitlines()[-1])
    timing = _run_timing(args)
    med = {}
    for variant in args.variants.split(","):
        w, c, m = timing["wall"][variant], timing["cpu"][variant], mem[variant]
        med[variant] = (statistics.median(w), statistics.median(c))
        print(f"{variant:>9}: median step wall {med[variant][0]:.3f} s, cpu {med[variant][1]:.3f} s "
              f"(wall {', '.join(f'{t:.2f}' for t in w)})  {m['mem_kind']} {m['peak_bytes'] / 2**30:.2f} GiB  "
              f"loss {m['first_loss']:.6f}  [{timing['device']}]", flush=True)
    if {"ours", "reference"} <= set(med):
        o, r = med["ours"], med["reference"]
        print(f"speed-up (reference/ours): wall {r[0] / o[0]:.2f}x, cpu time {r[1] / o[1]:.2f}x; memory ours/reference "
              f"{mem['ours']['peak_bytes'] / max(mem['reference']['peak_bytes'], 1):.2f}; same loss: "
              f"{abs(mem['ours']['first_loss'] - mem['reference']['first_loss']) <= 1e-5}")
    try:
        print(f"load average after: {os.getloadavg()}")
    except OSError:
        pass


if __name__ == "__main__":
    main()
