"""One replication of MDM's HumanML3D evaluation sampling: the official loop vs ours, in one run, with the ratio.

Both loops use the SAME reduced networks (a transformer denoiser over ``[T, 263]`` HumanML3D features that predicts
x0, and a transformer text encoder standing in for CLIP) and the same ancestral x0 sampler with classifier-free
guidance, so the ratio measures the loop structure only:

* official (``CompMDMGeneratedDataset`` + ``ClassifierFreeSampleModel``): batch by batch (32 windows); for the
  MultiModality batches the whole chain ``mm_num_repeats`` times in a row; per step two forwards (conditional,
  unconditional), each re-encoding the captions; noise from the global torch RNG;
* ours (:mod:`skeleton_diffusion.tasks.generation.batched_sampling`): captions encoded once; all windows and repeats
  in chunks of ``--chunk`` rows, re-split into the 32-row evaluation batches; conditional + unconditional in one
  forward; per-window noise streams. The run also checks that two chunk sizes give identical samples.

    python benchmarks/bench_generation_eval.py --device cpu --steps 10 --batches 2 --mm-repeats 10

Official sizes (a full replication) are ``--batches 32 --mm-batches 4 --mm-repeats 30 --steps 1000``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from skeleton_diffusion.tasks.generation.batched_sampling import (
    cosine_betas,
    ddpm_sample,
    encode_once,
    guided_x0,
    window_generators,
    window_noise,
)


class TextEncoder(nn.Module):
    """CLIP stand-in: hashed word tokens -> transformer -> mean-pooled ``[B, d]``."""

    def __init__(self, d: int, layers: int, vocab: int = 4096, tokens: int = 24) -> None:
        super().__init__()
        self.vocab, self.tokens = vocab, tokens
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, batch_first=True), layers)

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids = torch.zeros(len(captions), self.tokens, dtype=torch.long, device=self.emb.weight.device)
        for i, c in enumerate(captions):
            words = [sum(map(ord, w)) % self.vocab for w in c.split()][: self.tokens]
            ids[i, : len(words)] = torch.tensor(words)
        return self.enc(self.emb(ids)).mean(1)


class Denoiser(nn.Module):
    """MDM-like: features ``[B, T, F]`` + timestep + text ``[B, d]`` -> x0 ``[B, T, F]``."""

    def __init__(self, feat: int, d: int, layers: int, steps: int) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(feat, d), nn.Linear(d, feat)
        self.t_emb, self.c_emb = nn.Embedding(steps, d), nn.Linear(d, d)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, batch_first=True), layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        tok = (self.t_emb(t) + self.c_emb(cond))[:, None]
        h = self.enc(torch.cat([tok, self.inp(x)], 1))
        return self.out(h[:, 1:])


def official_loop(text_enc, model, captions, mm_batches, repeats, shape, betas, scale, bs, device):
    """Batch by batch; MM batches sampled ``repeats`` times; two forwards per step, text re-encoded in each."""
    out, mm = [], []
    null = torch.zeros(1, model.c_emb.in_features, device=device)

    def denoise_official(caps):
        def fn(x, t):
            c = model(x, t, text_enc(caps))  # conditional forward (MDM encodes the text inside forward)
            text_enc(caps)  # the unconditional forward encodes it too, then masks it
            u = model(x, t, null.expand(len(caps), -1))
            return u + scale * (c - u)

        return fn

    for b in range(len(captions) // bs):
        caps = captions[b * bs : (b + 1) * bs]
        for r in range(repeats if b in mm_batches else 1):
            x = ddpm_sample(denoise_official(caps), (bs, *shape), betas,
                            lambda: torch.randn(bs, *shape, device=device))  # fmt: skip
            if r == 0:
                out.append(x)
            if b in mm_batches:
                mm.append(x)
    return torch.cat(out), mm


def our_loop(text_enc, model, captions, mm_batches, repeats, shape, betas, scale, bs, device, chunk, seed=0):
    """All (window, repeat) rows in chunks; captions encoded once; one guided forward; per-window noise."""
    rows = [(w, 0) for w in range(len(captions) // bs * bs)]
    rows += [(w, r) for b in sorted(mm_batches) for w in range(b * bs, (b + 1) * bs) for r in range(1, repeats)]
    with torch.no_grad():
        cond_all = encode_once(text_enc, [captions[w] for w, _ in rows])
    null = torch.zeros(1, cond_all.shape[1], device=device)
    samples = []
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        gens = [window_generators(seed, [w], r, device)[0] for w, r in part]
        cond = cond_all[i : i + chunk]
        x = ddpm_sample(lambda x, t, c=cond: guided_x0(model, x, t, c, null, scale), (len(part), *shape), betas,
                        lambda g=gens: window_noise(g, shape, device))  # fmt: skip
        samples.append(x)
    x = torch.cat(samples)
    n = len(captions) // bs * bs
    main = x[:n]
    extra = x[n:].reshape(-1, repeats - 1, *shape) if repeats > 1 and mm_batches else None
    mm = [] if extra is None else [torch.cat([main[w][None], extra[k]]) for k, w in enumerate(
        w for b in sorted(mm_batches) for w in range(b * bs, (b + 1) * bs))]  # fmt: skip
    return main, mm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, default=2, help="32-window batches (official: 32, i.e. 1024 windows)")
    ap.add_argument("--mm-batches", type=int, default=1, help="MultiModality batches (official 4)")
    ap.add_argument("--mm-repeats", type=int, default=10, help="generations per MM caption (official 30)")
    ap.add_argument("--steps", type=int, default=10, help="diffusion steps (official 1000)")
    ap.add_argument("--frames", type=int, default=196)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=256, help="rows per batched forward in our loop")
    ap.add_argument("--scale", type=float, default=2.5, help="guidance scale (MDM 2.5)")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    torch.manual_seed(0)
    bs, feat = 32, 263
    text_enc = TextEncoder(args.d, args.layers).to(device).eval()
    model = Denoiser(feat, args.d, args.layers, args.steps).to(device).eval()
    captions = [f"a person walks {w} and turns {i % 7}" for i, w in
                zip(range(args.batches * bs), ["forward", "left", "slowly", "back"] * 10_000)]  # fmt: skip
    mm_batches = set(range(min(args.mm_batches, args.batches))) if args.mm_repeats > 1 else set()
    betas = cosine_betas(args.steps).to(device)
    shape = (args.frames, feat)

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            res = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return res, time.perf_counter() - t0

    (_, mm_off), t_off = timed(lambda: official_loop(text_enc, model, captions, mm_batches, args.mm_repeats, shape,
                                                     betas, args.scale, bs, device))  # fmt: skip
    (main_ours, mm_ours), t_ours = timed(lambda: our_loop(text_enc, model, captions, mm_batches, args.mm_repeats,
                                                          shape, betas, args.scale, bs, device, args.chunk))
    small, _ = our_loop(text_enc, model, captions[:bs], set(), 1, shape, betas, args.scale, bs, device, chunk=7)
    same = bool(torch.allclose(small, main_ours[:bs], rtol=1e-4, atol=1e-5))
    res = {"device": str(device), "windows": args.batches * bs, "mm_batches": len(mm_batches),
           "mm_repeats": args.mm_repeats, "steps": args.steps, "official_s": round(t_off, 3),
           "ours_s": round(t_ours, 3), "ratio": round(t_off / t_ours, 2),
           "same_draws_across_chunkings": same, "mm_generations": [sum(len(x) for x in mm_off), sum(len(x) for x in mm_ours)]}  # fmt: skip
    print(json.dumps(res))
    print(f"official loop {t_off:.2f} s, ours {t_ours:.2f} s: {t_off / t_ours:.2f}x faster "
          f"(same draws across chunkings: {same})")


if __name__ == "__main__":
    main()
