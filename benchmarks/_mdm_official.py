"""Our MDM port vs the OFFICIAL MDM code (GuyTevet/motion-diffusion-model) on the same device, in one run.

The official code is read from ``--official-dir`` or cloned at run time (``git clone --depth 1 <--official-url>``)
into ``output/bench/motion-diffusion-model`` (``output/`` is git-ignored). Two of its imports need files this
benchmark does not use and are stubbed: ``clip`` (the text features are given as ``y['text_embed']``, the official
caching option) and ``model.rotation2xyz`` (SMPL, unused on HumanML3D features with ``lambda_rcxyz = 0``).

Both sides get the same weights (the official state dict through our converter's ``build_network``), the same
inputs and, for the equality check, the same noise. Timed:

* train step: ``training_losses`` (official ``SpacedDiffusion`` vs :func:`official_training_losses`) + mean +
  backward + AdamW step (lr 1e-4, as ``TrainLoop``), batch ``--batch``, 196 frames, train mode;
* sampling: ``p_sample_loop`` with ``ClassifierFreeSampleModel`` (two forwards per step) on the process respaced
  to ``--steps`` steps vs our :class:`~skeleton_diffusion.methods.mdm.generation.MDMT2MGenerator` (one batched
  forward per step, per-window noise), guidance 2.5.
"""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

OFFICIAL_URL = "https://github.com/GuyTevet/motion-diffusion-model"


def official_source(directory: str | None, url: str) -> Path:
    if directory:
        return Path(directory)
    dest = Path("output") / "bench" / "motion-diffusion-model"
    if not (dest / "model" / "mdm.py").is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "--depth", "1", url, str(dest)], check=True)
    return dest


def import_official(src: Path) -> dict[str, Any]:
    clip = types.ModuleType("clip")
    clip.load = clip.tokenize = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CLIP is not used here"))
    sys.modules.setdefault("clip", clip)
    sys.path.insert(0, str(src))
    import model  # noqa: F401  (the official package; its rotation2xyz is replaced before model.mdm imports it)

    r2x = types.ModuleType("model.rotation2xyz")

    class Rotation2xyz:  # SMPL is not needed for hml_vec with lambda_rcxyz = 0
        def __init__(self, device: Any, dataset: str = "amass") -> None:
            self.smpl_model = torch.nn.Module()  # MDM._apply / train() forward to it

    r2x.Rotation2xyz = Rotation2xyz
    sys.modules["model.rotation2xyz"] = r2x
    from diffusion import gaussian_diffusion as gd
    from diffusion.respace import SpacedDiffusion, space_timesteps
    from model.cfg_sampler import ClassifierFreeSampleModel
    from model.mdm import MDM

    MDM.load_and_freeze_clip = lambda self, version: torch.nn.Identity()
    return {"MDM": MDM, "gd": gd, "SpacedDiffusion": SpacedDiffusion, "space_timesteps": space_timesteps,
            "CFG": ClassifierFreeSampleModel}


def _official_model(o: dict, latent: int, layers: int) -> torch.nn.Module:
    return o["MDM"](modeltype="", njoints=263, nfeats=1, num_actions=1, translation=True, pose_rep="rot6d",
                    glob=True, glob_rot=True, latent_dim=latent, ff_size=1024, num_layers=layers, num_heads=4,
                    dropout=0.1, activation="gelu", data_rep="hml_vec", cond_mode="text", cond_mask_prob=0.1,
                    action_emb="tensor", arch="trans_enc", emb_trans_dec=False, clip_version="ViT-B/32",
                    dataset="humanml", text_encoder_type="clip", pos_embed_max_len=5000, mask_frames=False,
                    pred_len=0, context_len=0, emb_policy="add", all_goal_joint_names=[], multi_target_cond=False,
                    multi_encoder_type="multi", target_enc_layers=1)


def _official_diffusion(o: dict, steps: int | None) -> Any:
    gd = o["gd"]
    betas = gd.get_named_beta_schedule("cosine", 1000, 1.0)
    return o["SpacedDiffusion"](use_timesteps=o["space_timesteps"](1000, [steps or 1000]), betas=betas,
                                model_mean_type=gd.ModelMeanType.START_X, model_var_type=gd.ModelVarType.FIXED_SMALL,
                                loss_type=gd.LossType.MSE, rescale_timesteps=False, lambda_vel=0.0,
                                lambda_rcxyz=0.0, lambda_fc=0.0, lambda_target_loc=0.0)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def compare(o: dict, *, latent: int, layers: int, batch: int, steps: int, iters: int, device: torch.device
            ) -> dict[str, Any]:
    """Equality checks and timings for one size -> a result row."""
    from skeleton_diffusion.methods.mdm.convert import OfficialMDMRun, build_diffusion, build_network
    from skeleton_diffusion.methods.mdm.generation import MDMT2MGenerator
    from skeleton_diffusion.methods.mdm.losses import official_training_losses

    torch.manual_seed(0)
    off = _official_model(o, latent, layers)
    off.to(device)  # official MDM.to() returns None (a documented defect): no chaining
    state = {k: v for k, v in off.state_dict().items() if not k.startswith("clip_model.")}
    args = {"dataset": "humanml", "latent_dim": latent, "layers": layers, "diffusion_steps": 1000}
    net = build_network(args, state).to(device)
    ours = build_diffusion(net, args)
    ours = ours.to(device)
    odiff = _official_diffusion(o, None)
    frames = 196
    x0 = torch.randn(batch, 263, 1, frames, device=device)
    emb = torch.randn(batch, 512, device=device)
    mask = torch.ones(batch, 1, 1, frames, dtype=torch.bool, device=device)
    y = {"mask": mask, "lengths": torch.full((batch,), frames, device=device), "text_embed": emb[None],
         "scale": torch.full((batch,), 2.5, device=device)}  # fmt: skip
    t = torch.randint(0, 1000, (batch,), device=device)
    noise = torch.randn_like(x0)
    # equality: the loss in eval mode (no dropout, no condition dropping) with the same noise
    off.eval(), net.eval()
    with torch.no_grad():
        l_off = odiff.training_losses(off, x0, t, model_kwargs={"y": y}, noise=noise)["loss"]
        l_ours = official_training_losses(ours, x0[:, :, 0], t, x_cond=emb, noise=noise[:, :, 0])["loss"]
    loss_diff = float((l_off - l_ours).abs().max() / l_off.abs().max())
    off.train(), net.train()
    opt_off = torch.optim.AdamW([p for n, p in off.named_parameters() if not n.startswith("clip_model.")], lr=1e-4)
    opt_ours = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step_off() -> None:
        opt_off.zero_grad()
        odiff.training_losses(off, x0, t, model_kwargs={"y": y})["loss"].mean().backward()
        opt_off.step()

    def step_ours() -> None:
        opt_ours.zero_grad()
        official_training_losses(ours, x0[:, :, 0], t, x_cond=emb)["loss"].mean().backward()
        opt_ours.step()

    step_off(), step_ours()  # warm-up
    t_off, t_ours = _best(step_off, iters), _best(step_ours, iters)
    # sampling (eval mode, guided)
    off.eval(), net.eval()
    sdiff = _official_diffusion(o, steps)
    cfg_model = o["CFG"](off)
    run = OfficialMDMRun(diffusion=ours, args=args, device=device, checkpoint=Path("bench"))
    gen = MDMT2MGenerator(run, lambda caps: emb[[int(c) for c in caps]], steps=steps, max_batch=batch)
    caps = [str(i) for i in range(batch)]

    def sample_off() -> None:
        with torch.no_grad():
            sdiff.p_sample_loop(cfg_model, (batch, 263, 1, frames), clip_denoised=False, model_kwargs={"y": y},
                                progress=False)  # fmt: skip

    def sample_ours() -> None:
        gen.generate(caps, None, 1, window_ids=list(range(batch)))

    s_off, s_ours = _best(sample_off, 1), _best(sample_ours, 1)
    return {"size": f"d{latent}x{layers}", "batch": batch, "steps": steps, "loss_rel_diff": loss_diff,
            "train_official_s": t_off, "train_ours_s": t_ours, "train_ratio": t_off / t_ours,
            "sample_official_s": s_off, "sample_ours_s": s_ours, "sample_ratio": s_off / s_ours}
