"""Inference / evaluation benchmark: ours vs the official computation, samples/s and peak memory per size.

One prediction = encode 16 observed windows (30 frames), sample S latents per window with the 10-step ancestral
sampler (official denoiser size: depth 4, 8 heads x 32, 32.1 M parameters), decode 120 frames for each of the
16·S samples. AMASS shapes (21 nodes / 13 types, latent 96, 2 encoder layers), random weights.

Variants (each in its own process, so peak memory is measured separately):
* ``ours``      : :meth:`SkeletonDiffusion.predict` as ``eval.py`` / ``load_model`` run it: no autograd, on CPU the
                  fast forward of the denoiser (``nn/denoiser_fast.py``), each distinct step embedded once,
                  the decoder's no-grad recurrence (64 sequences at a time, output layer in the loop),
                  ``keep_freed_cpu_memory``; products through MKL per node on Intel CPUs, through oneDNN per
                  node type elsewhere (``cpu_kernels.gemm_backend``).
* ``ours_bf16`` : the same with ``sampling_precision=bf16`` (the denoiser in bfloat16; opt-in, samples differ from
                  float32 at the 1e-3 level).
* ``ours_generic``: ``ours`` with the no-grad CPU fast path switched off (``SKELETON_DIFFUSION_FAST_CPU=0``: MKL
                  products, batch-major graph layers; not in the default list), to see what the fast path adds.
* ``reference`` : the official computation (``_reference_inference.py``: per-call weight gathers, explicit
                  attention, one step embedding per row, per-step decoder calls; default allocator). Its outputs
                  equal ours to float rounding (checked in the ``ours`` run and printed).

For every size S (default 10, 50, 100 samples) it prints the time per prediction, samples/s (16·S / time), the
peak memory (CPU: process peak RSS, ``ru_maxrss``; CUDA: ``max_memory_allocated``) and the ratios, then estimates
a full AMASS test-set evaluation (12,727 windows x 50 samples) on this machine from the S = 50 throughput
(prediction time only; the metrics add a few percent).

    python benchmarks/bench_inference.py --threads 2
    python benchmarks/bench_inference.py --sizes 50 --variants ours,reference --repeats 3
    python benchmarks/bench_inference.py --threads 1 --clock cpu --sizes 10 --variants ours,reference --rounds 3

Per stage (``--stage-samples``, default 10 samples per window) it also prints encode / ``num_timesteps``
denoiser steps / decode: time, achieved GFLOP/s (necessary matrix-product work, ``_stage_flops.py``) and the
fraction of this machine's measured float32 matmul peak (best of MKL and oneDNN on a 1024^3 product), ours and
the reference, with ratios: the gap to the physical limit per stage.

Timings on a shared machine drift: compare ratios within one run.
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

AMASS_TEST_WINDOWS = 12727
GIB = 1024 ** 3


def _models(device):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_diffusion import _build

    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import SkeletonDiffusion

    ae, diffusion = _build(device)
    diffusion.eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # trained-like weights: node types differ, G is not the identity
        for p in list(ae.parameters()) + list(diffusion.parameters()):
            p.add_(0.02 * torch.randn(p.shape, generator=gen).to(p.device))
    ours = SkeletonDiffusion(ae, diffusion, pose_box_size=1.2, obs_length=30, pred_length=120).eval()

    def reference():
        from _reference_inference import ReferencePipeline
        from bench_diffusion import _reference_models

        rae, rdiff = _reference_models(ae, diffusion, device)  # the same reference layers as the k = 1 benchmark
        return ReferencePipeline(rae, rdiff).to(device).eval().requires_grad_(False)

    return ours, reference


def _peak_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_variant(args: argparse.Namespace) -> dict:
    import torch

    from skeleton_diffusion.utils.cpu_allocator import keep_freed_cpu_memory
    from skeleton_diffusion.utils.device import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.variant.startswith("ours") and device.type == "cpu":
        keep_freed_cpu_memory()  # what eval.py and load_model do
    ours, make_reference = _models(device)
    gen = torch.Generator().manual_seed(1)
    obs = (0.3 * torch.randn(args.batch, 30, 21, 3, generator=gen)).to(device)
    if args.variant == "reference":
        model = make_reference()

        def predict(s: int) -> None:
            model.predict(obs, s, pred_length=args.pred_length)
    else:
        dtype = torch.bfloat16 if args.variant == "ours_bf16" else None

        def predict(s: int) -> None:
            ours.predict(obs, s, pred_length=args.pred_length, network_dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    predict(2)  # warm-up (allocations, kernel selection)
    sync()
    rows = []
    for s in args.sizes:  # increasing sizes: the running peak is the peak of the current size
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            predict(s)
            sync()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            print(f"  [{args.variant}] S={s}: {times[-1]:.2f}s wall, {cpu[-1]:.2f}s CPU", file=sys.stderr, flush=True)
        rows.append(dict(samples=s, median_s=statistics.median(times), times_s=times,
                         cpu_s=statistics.median(cpu), peak_gib=_peak_bytes(device) / GIB))
    out = dict(variant=args.variant, device=str(device), rows=rows)
    if args.stage_samples > 0:
        out["stages"] = _time_stages(args, ours, model if args.variant == "reference" else None, obs, sync)
    if args.variant == "ours":  # the reference computes the same function (float rounding)
        ref = make_reference()
        a = ours.predict(obs[:2], 3, pred_length=args.pred_length, generator=torch.Generator().manual_seed(0))
        b = ref.predict(obs[:2], 3, pred_length=args.pred_length, generator=torch.Generator().manual_seed(0))
        out["max_abs_diff_vs_reference"] = float((a - b).abs().max())
        lo = ours.predict(obs[:2], 3, pred_length=args.pred_length, generator=torch.Generator().manual_seed(0),
                          network_dtype=torch.bfloat16)
        out["max_abs_diff_bf16"] = float((a - lo).abs().max())
        out["mean_abs_output"] = float(a.abs().mean())
    return out


def _time_stages(args: argparse.Namespace, ours, reference, obs, sync) -> dict:
    """Median wall and CPU seconds of each stage (encode, ``num_timesteps`` denoiser steps, decode) of one
    prediction with ``--stage-samples`` samples per window, timed separately (inputs made beforehand)."""
    import torch

    s = args.stage_samples
    dtype = torch.bfloat16 if args.variant == "ours_bf16" else None
    with torch.no_grad():
        if reference is None:
            encode = lambda: ours.condition(obs)  # noqa: E731
            z_past = encode()
            x_cond = z_past.repeat_interleave(s, dim=0)
            denoise = lambda: ours.diffusion.sample(batch_size=x_cond.shape[0], x_cond=x_cond,  # noqa: E731
                                                    network_dtype=dtype)
            latents = denoise()
            decode = lambda: ours.decode_latents(obs, latents, s, args.pred_length)  # noqa: E731
        else:
            encode = lambda: torch.tanh(reference.autoencoder(obs))  # noqa: E731
            z_past = encode()
            x_cond = z_past.repeat_interleave(s, dim=0)
            denoise = lambda: reference.diffusion.sample(batch_size=x_cond.shape[0], x_cond=x_cond,  # noqa: E731
                                                         sampler="ancestral")
            latents = denoise()
            obs_rep = obs.repeat_interleave(s, dim=0)[:, -2:]
            decode = lambda: reference.autoencoder.decoder(obs_rep, latents, args.pred_length)  # noqa: E731
        decode()
        stages = {}
        for _ in range(max(3, args.repeats)):  # stages interleaved, median of the repeats
            for name, fn in (("encode", encode), ("denoise", denoise), ("decode", decode)):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                sync()
                stages.setdefault(name, {"wall": [], "cpu": []})
                stages[name]["wall"].append(time.perf_counter() - t0)
                stages[name]["cpu"].append(time.process_time() - c0)
    return {k: {c: statistics.median(v[c]) for c in v} for k, v in stages.items()}


def _stage_report(args: argparse.Namespace, runs: dict, key: str) -> None:
    """Per stage: time, achieved GFLOP/s, fraction of the measured float32 matmul peak; ours/reference ratios."""
    import torch

    from _stage_flops import measured_peak_gflops, stage_flops

    torch.set_num_threads(args.threads)
    ours, _ = _models(torch.device("cpu"))
    den = ours.diffusion.model
    flops = stage_flops(ours.autoencoder, den, args.batch, args.stage_samples, 30, args.pred_length,
                        int(ours.diffusion.num_timesteps))
    peak = measured_peak_gflops()
    clock = "cpu" if key == "cpu_s" else "wall"
    print(f"\nper stage, {args.batch} windows x {args.stage_samples} samples ({clock} clock, median over "
          f"{len(next(iter(runs.values())))} interleaved runs x the repeats); measured fp32 matmul peak "
          f"{peak['peak'][clock]:.0f} GFLOP/s ({', '.join(f'{k} {v[clock]:.0f}' for k, v in peak.items() if k != 'peak')}"
          f"; {args.threads} threads)")
    print(f"{'stage':>8} {'GFLOP':>8} | " + " | ".join(f"{v + ' [s]':>16} {'GFLOP/s':>8} {'%peak':>6}" for v in runs)
          + "".join(f" | {'ref/' + v:>12}" for v in runs if v != "reference" and "reference" in runs))
    for stage in ("encode", "denoise", "decode", "total"):
        fl = sum(flops.values()) if stage == "total" else flops[stage]
        line = f"{stage:>8} {fl / 1e9:>8.2f} | "
        times = {}
        for v, results in runs.items():
            per_run = [sum(r["stages"][st][clock] for st in ("encode", "denoise", "decode")) if stage == "total"
                       else r["stages"][stage][clock] for r in results]
            times[v] = statistics.median(per_run)
        line += " | ".join(f"{times[v]:>16.3f} {fl / times[v] / 1e9:>8.1f} {100 * fl / times[v] / 1e9 / peak['peak'][clock]:>5.0f}%"
                           for v in runs)
        line += "".join(f" | {'x%.2f' % (times['reference'] / times[v]):>12}" for v in runs
                        if v != "reference" and "reference" in runs)
        print(line)


def _spawn(args: argparse.Namespace, variant: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", "--variant", variant, "--device", args.device,
           "--threads", str(args.threads), "--batch", str(args.batch), "--pred-length", str(args.pred_length),
           "--repeats", str(args.repeats), "--sizes", ",".join(map(str, args.sizes)), "--clock", args.clock,
           "--stage-samples", str(args.stage_samples)]
    t0 = time.time()
    env = dict(os.environ)
    if variant == "ours_generic":
        env["SKELETON_DIFFUSION_FAST_CPU"] = "0"
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.time_cap_s, env=env)
    except subprocess.TimeoutExpired:
        return dict(variant=variant, failed=True, reason=f"killed after {args.time_cap_s:.0f} s")
    if proc.returncode != 0:
        return dict(variant=variant, failed=True, reason=f"exit {proc.returncode} after {time.time() - t0:.0f} s")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="observed windows per prediction")
    p.add_argument("--sizes", default="10,50,100", help="samples per window, comma separated")
    p.add_argument("--pred-length", type=int, default=120)
    p.add_argument("--repeats", type=int, default=1, help="timed predictions per size (median reported)")
    p.add_argument("--variants", default="ours,ours_bf16,reference")
    p.add_argument("--time-cap-s", type=float, default=3600.0)
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="time used for samples/s and ratios: wall clock, or the process's CPU time (user+sys; "
                        "robust on a busy shared machine, meaningful with --threads 1)")
    p.add_argument("--stage-samples", type=int, default=10,
                   help="samples per window of the per-stage timing (encode / denoiser steps / decode), 0: off")
    p.add_argument("--rounds", type=int, default=1,
                   help="interleaved rounds: every variant runs once per round (A, B, A, B, ...); medians")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="ours", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.sizes = sorted(int(s) for s in str(args.sizes).split(",") if s.strip())
    if args._child:
        print(json.dumps(_run_variant(args)))
        return

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    runs: dict = {v: [] for v in variants}
    for rnd in range(max(1, args.rounds)):  # interleaved: drift of a shared machine hits every variant alike
        for v in variants:
            print(f"running {v} (round {rnd + 1}) ...", file=sys.stderr, flush=True)
            runs[v].append(_spawn(args, v))
    results = {}
    for v, rs in runs.items():  # median over rounds of each row's times
        good = [r for r in rs if not r.get("failed")]
        if not good:
            results[v] = rs[0]
            continue
        merged = dict(good[0])
        merged["rows"] = [dict(row, median_s=statistics.median(g["rows"][i]["median_s"] for g in good),
                               cpu_s=statistics.median(g["rows"][i]["cpu_s"] for g in good),
                               peak_gib=max(g["rows"][i]["peak_gib"] for g in good))
                          for i, row in enumerate(good[0]["rows"])]
        results[v] = merged
        runs[v] = good
    load = os.getloadavg()
    print(f"\n{args.batch} windows x S samples x {args.pred_length} frames, AMASS shapes, device {args.device}, "
          f"{args.threads} threads, load avg {load[0]:.1f}/{load[1]:.1f}")
    for v, r in results.items():
        if r.get("failed"):
            print(f"{v}: failed ({r['reason']})")
    ok = {v: {row["samples"]: row for row in r["rows"]} for v, r in results.items() if not r.get("failed")}
    key = "cpu_s" if args.clock == "cpu" else "median_s"
    print(f"times: {'process CPU time' if args.clock == 'cpu' else 'wall clock'} per prediction, median of "
          f"{args.repeats}")
    head = f"{'S':>4}"
    for v in ok:
        head += f" | {v + ' [s]':>16} {'samples/s':>10} {'peak GiB':>9}"
    ratios = [v for v in ("ours", "ours_bf16", "ours_generic") if v in ok and "reference" in ok]
    head += "".join(f" | {'ref/' + v:>14}" for v in ratios)
    print(head)
    for s in args.sizes:
        line = f"{s:>4}"
        for v, rows in ok.items():
            row = rows[s]
            line += f" | {row[key]:>16.2f} {args.batch * s / row[key]:>10.1f} {row['peak_gib']:>9.2f}"
        for v in ratios:
            line += f" | {'time x%.2f' % (ok['reference'][s][key] / ok[v][s][key]):>14}"
        print(line)
    if "ours" in results and not results["ours"].get("failed"):
        r = results["ours"]
        print(f"ours vs reference outputs: max |diff| {r['max_abs_diff_vs_reference']:.2e} (float32); bf16 "
              f"sampling: max |diff| {r['max_abs_diff_bf16']:.2e} (mean |output| {r['mean_abs_output']:.2e})")
    if args.stage_samples > 0 and args.device == "cpu":
        _stage_report(args, {v: rs for v, rs in runs.items() if rs and "stages" in rs[0]}, key)
    s_est = 50 if 50 in args.sizes else args.sizes[-1]
    for v, rows in ok.items():
        rate = args.batch * s_est / rows[s_est][key]  # samples per second
        total = AMASS_TEST_WINDOWS * 50 / rate
        print(f"full AMASS test set ({AMASS_TEST_WINDOWS} windows x 50 samples), {v}: ~{total / 3600:.1f} h on this "
              f"machine ({rate:.0f} samples/s at S={s_est}; prediction only)")


if __name__ == "__main__":
    main()
