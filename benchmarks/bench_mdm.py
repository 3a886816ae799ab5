"""MDM benchmarks, in one run on one machine, with ratios.

``--compare official`` (default): our port vs the OFFICIAL MDM code (fetched at run time into the ignored
``output/bench/``, see ``_mdm_official.py``): train step and guided sampling at the paper size (d 512, 8 layers)
and a small size (d 128, 2 layers), HumanML3D features (263 x 196 frames), same weights and inputs; prints the
relative loss difference (equal outputs) and official / ours time ratios.

    python benchmarks/bench_mdm.py --threads 2 --bench-batch 16 --bench-steps 10
    python benchmarks/bench_mdm.py --official-dir <checkout of GuyTevet/motion-diffusion-model>

``--compare skeleton_diffusion``: MDM vs SkeletonDiffusion, train-step time and sampling time.

Shapes (issue 16, item 7): batch 64, 120 predicted frames, the AMASS skeleton (22 joints; the HMP model space
drops the root -> 21 nodes), 30 observed frames (``condition=past`` for MDM, the same task as SkeletonDiffusion).

* MDM: paper size (d 512, ff 1024, 8 layers, 4 heads), x₀ loss, ``--mdm-noise`` isotropic | nonisotropic.
  Train step = forward-noise + denoise + MSE + backward + AdamW. Sampling with 1000 (full chain), 50 and 10
  respaced steps of a 1000-step model (``--mdm-steps``).
* SkeletonDiffusion: the AMASS recipe (AE latent 96, 2 encoder layers; Denoiser depth 4, 8x32 heads), train step
  = frozen-AE encoding + best-of-k loss (``--sd-k``, paper 50) + backward + clip + Adam; sampling = encode obs +
  10 latent steps + GRU decoding of 120 frames (one sample per sequence, like MDM).

Sampling runs whose estimated time passes ``--max-sample-s`` are *extrapolated* from the measured per-step time of
the longest measured run and marked ``~`` (on a 2-core CPU the 1000-step chain takes over an hour).

    python benchmarks/bench_mdm.py --device auto --train-iters 3 --sample-repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

AMASS_TYPES = [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 10, 10, 11, 11, 12, 12]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, iters: int, warmup: int) -> list[float]:
    out = []
    for i in range(warmup + iters):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return out


def build_mdm(device, noise: str, timesteps: int = 1000):
    import torch

    from skeleton_diffusion.diffusion.motion_space import build_motion_diffusion
    from skeleton_diffusion.nn.motion_transformer import MDM
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    torch.manual_seed(0)
    sk = get_skeleton("amass")
    net = MDM(sk.num_nodes, 120, 3, cond_mode="past", obs_length=30)  # paper defaults
    return build_motion_diffusion({"noise": noise, "diffusion_timesteps": timesteps}, net, sk,
                                  representation="hmp").to(device)


def build_sd(device):
    import torch

    from skeleton_diffusion.diffusion.nonisotropic import NonisotropicGaussianDiffusion
    from skeleton_diffusion.diffusion.covariance import get_cov_from_corr
    from skeleton_diffusion.methods.skeleton_diffusion.autoencoder import AutoEncoder
    from skeleton_diffusion.methods.skeleton_diffusion.denoiser import Denoiser
    from skeleton_diffusion.methods.skeleton_diffusion.pipeline import SkeletonDiffusion
    from skeleton_diffusion.skeletons.lookup import get_skeleton

    torch.manual_seed(0)
    ae = AutoEncoder(num_nodes=21, node_types=AMASS_TYPES, latent_size=96, enc_num_layers=2)
    ae.to(device).eval().requires_grad_(False)
    den = Denoiser(dim=96, cond_dim=96, out_dim=96, num_nodes=21, node_types=AMASS_TYPES, depth=4, attn_heads=8,
                   attn_dim_head=32, use_attention=True, norm_type="none", learn_influence=True)
    sig, lam, u = get_cov_from_corr(torch.from_numpy(get_skeleton("amass").adjacency()))
    diff = NonisotropicGaussianDiffusion(sig, lam, u, den, diffusion_conditioning=True, latent_size=96).to(device)
    return SkeletonDiffusion(ae, diff, pose_box_size=1.2, obs_length=30, pred_length=120)


def run(args: argparse.Namespace) -> dict:
    import torch

    from skeleton_diffusion.diffusion.motion_space import mdm_loss, motion_to_x
    from skeleton_diffusion.diffusion.respace import sample_motion
    from skeleton_diffusion.methods.skeleton_diffusion.best_of_k import best_of_k_loss
    from skeleton_diffusion.utils.device import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    b = args.batch_size
    g = torch.Generator().manual_seed(1)
    obs = (0.3 * torch.randn(b, 30, 21, 3, generator=g)).to(device)
    fut = (0.3 * torch.randn(b, 120, 21, 3, generator=g)).to(device)
    res: dict = {"device": str(device), "batch_size": b, "threads": args.threads, "mdm_noise": args.mdm_noise,
                 "sd_k": args.sd_k}

    # ---------------- train steps
    mdm = build_mdm(device, args.mdm_noise).train()
    opt = torch.optim.AdamW(mdm.parameters(), lr=1e-4)
    x0 = motion_to_x(fut)

    def mdm_step() -> None:
        loss = mdm_loss(mdm, x0, x_cond=obs)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sd = build_sd(device)
    sd_opt = torch.optim.Adam(sd.diffusion.parameters(), lr=1e-3, betas=(0.9, 0.99))

    def sd_step() -> None:
        sd.diffusion.train()
        with torch.no_grad():
            z_past, z_fut = sd.autoencoder.get_train_embeddings(fut, past=obs)
        out = best_of_k_loss(sd.diffusion, sd.autoencoder, z_fut, z_past, obs, fut, args.sd_k, "input_space")
        sd_opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sd.diffusion.parameters(), 1.0)
        sd_opt.step()

    res["train_step_s"] = {
        "mdm": statistics.median(_time(mdm_step, device, args.train_iters, args.warmup)),
        "skeleton_diffusion": statistics.median(_time(sd_step, device, args.train_iters, args.warmup)),
    }
    print(f"train step: MDM {res['train_step_s']['mdm']:.3f}s, SkeletonDiffusion (k={args.sd_k}) "
          f"{res['train_step_s']['skeleton_diffusion']:.3f}s", file=sys.stderr, flush=True)
    opt = sd_opt = None  # free the optimiser states before sampling

    # ---------------- sampling
    mdm.eval()
    sd.diffusion.eval()
    with torch.no_grad():
        sd_t = statistics.median(_time(lambda: sd.predict(obs, 1), device, args.sample_repeats, 1))
    res["sample_s"] = {"skeleton_diffusion_10": sd_t}
    measured: dict[int, float] = {}
    for steps in sorted(args.mdm_steps):
        per_step = max((t / s for s, t in measured.items()), default=None)
        if per_step is not None and per_step * steps > args.max_sample_s:
            res["sample_s"][f"mdm_{steps}"] = per_step * steps
            res.setdefault("extrapolated", []).append(f"mdm_{steps}")
            continue
        measured[steps] = statistics.median(_time(
            lambda: sample_motion(mdm, b, x_cond=obs, steps=steps), device, args.sample_repeats, 0))
        res["sample_s"][f"mdm_{steps}"] = measured[steps]
        print(f"MDM sampling, {steps} steps: {measured[steps]:.2f}s", file=sys.stderr, flush=True)
    res["ratios_vs_skeleton_diffusion"] = {
        "train_step": res["train_step_s"]["mdm"] / res["train_step_s"]["skeleton_diffusion"],
        **{k: v / sd_t for k, v in res["sample_s"].items() if k.startswith("mdm_")}}
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--sample-repeats", type=int, default=1)
    p.add_argument("--mdm-steps", type=int, nargs="+", default=[10, 50, 1000])
    p.add_argument("--mdm-noise", default="isotropic", choices=["isotropic", "nonisotropic"])
    p.add_argument("--sd-k", type=int, default=50, help="SkeletonDiffusion best-of-k (paper: 50)")
    p.add_argument("--max-sample-s", type=float, default=600.0,
                   help="extrapolate MDM sampling runs estimated above this many seconds")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--compare", default="official", choices=["official", "skeleton_diffusion"])
    p.add_argument("--official-dir", default=None, help="a checkout of the official MDM code (else cloned)")
    p.add_argument("--official-url", default="https://github.com/GuyTevet/motion-diffusion-model")
    p.add_argument("--bench-batch", type=int, default=16, help="--compare official: batch")
    p.add_argument("--bench-steps", type=int, default=10, help="--compare official: respaced sampling steps")
    p.add_argument("--sizes", nargs="+", default=["512x8", "128x2"], help="--compare official: dxlayers")
    args = p.parse_args()
    if args.compare == "official":
        return _main_official(args)
    res = run(args)
    tr, sm, ra = res["train_step_s"], res["sample_s"], res["ratios_vs_skeleton_diffusion"]
    ext = set(res.get("extrapolated", []))
    print(f"\ndevice {res['device']}, batch {res['batch_size']}, {res['threads']} threads, MDM noise "
          f"{res['mdm_noise']}")
    print("| what | MDM | SkeletonDiffusion | MDM / SD |\n|---|---|---|---|")
    print(f"| train step (s) | {tr['mdm']:.3f} | {tr['skeleton_diffusion']:.3f} (k={res['sd_k']}) | "
          f"{ra['train_step']:.2f} |")
    for key in sorted((k for k in sm if k.startswith("mdm_")), key=lambda k: int(k.split("_")[1])):
        mark = "~" if key in ext else ""
        print(f"| sampling, MDM {key.split('_')[1]} steps vs SD 10 steps (s) | {mark}{sm[key]:.2f} | "
              f"{sm['skeleton_diffusion_10']:.2f} | {mark}{ra[key]:.1f} |")
    if ext:
        print("~ extrapolated from the measured per-step time (--max-sample-s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


def _main_official(args: argparse.Namespace) -> None:
    import os

    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _mdm_official import compare, import_official, official_source

    from skeleton_diffusion.utils.device import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    o = import_official(official_source(args.official_dir, args.official_url))
    rows = []
    for size in args.sizes:
        latent, layers = (int(v) for v in size.split("x"))
        rows.append(compare(o, latent=latent, layers=layers, batch=args.bench_batch, steps=args.bench_steps,
                            iters=args.train_iters, device=device))  # fmt: skip
    print(f"\ndevice {device}, {args.threads} threads, batch {args.bench_batch}, 196 frames, "
          f"{args.bench_steps} sampling steps (guided 2.5)")
    print("| size | loss rel. diff | train official (s) | train ours (s) | ratio | sampling official (s) | "
          "sampling ours (s) | ratio |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['loss_rel_diff']:.1e} | {r['train_official_s']:.3f} | {r['train_ours_s']:.3f} | "
              f"{r['train_ratio']:.2f}x | {r['sample_official_s']:.2f} | {r['sample_ours_s']:.2f} | "
              f"{r['sample_ratio']:.2f}x |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
