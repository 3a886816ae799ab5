"""Released DiffPose checkpoints -> our run folders, and the lifter loaded from them.

Official files (``torch.save`` lists, read with ``torch.load(weights_only=True)``):

* denoiser ``diffpose_uvxyz_{cpn,gt}.pth`` / ``ckpt_*.pth`` = ``[state_dict, optimizer, epoch, step, ema]`` of
  ``DataParallel(GCNdiff)``; the official test loads ``states[0]`` (non-EMA, ``module.*`` keys);
* pose prior ``gcn_xyz_{cpn,gt}.pth`` = ``states[0]`` of ``DataParallel(GCNpose)`` (same list layout).

``convert(src, out_dir, prior=..., config=...)`` writes ``out_dir/checkpoints/diffpose_<epoch>.pt`` (a name the
run-folder resolver of :mod:`skeleton_diffusion.checkpoints.format` finds; older conversions wrote ``diffpose.pt``) (``denoiser`` and
``prior`` state dicts without the prefix, ``meta`` with the network sizes, schedule and test settings) and
``out_dir/config.yaml``. The settings come from the official YAML (``--config
configs/human36m_diffpose_uvxyz_{cpn,gt}.yml``) or the built-in copy of it chosen by ``preset`` ('cpn' | 'gt').
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from torch import Tensor

from skeleton_diffusion.methods.diffpose.diffusion import diffpose_betas, lift as _lift
from skeleton_diffusion.methods.diffpose.networks import build_from_state_dict, strip_data_parallel
from skeleton_diffusion.checkpoints.format import make_meta, resolve_checkpoint, save_checkpoint
from skeleton_diffusion.tasks.lifting.official import OfficialLiftingProtocol
from skeleton_diffusion.utils.device import resolve_device
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError
from skeleton_diffusion.utils.io import safe_torch_load

__all__ = ["DiffPoseSettings", "PRESETS", "read_official_checkpoint", "read_official_config", "convert", "load_run",
           "DiffPoseVideoLifter",
           "DiffPoseLifter"]

_log = logging.getLogger(__name__)
CHECKPOINT_NAME = "diffpose.pt"


@dataclass(frozen=True)
class DiffPoseSettings:
    """Network sizes, schedule and test procedure (official YAML ``model`` / ``diffusion`` / ``testing``)."""

    hid_dim: int = 96
    num_layer: int = 5
    n_head: int = 4
    dropout: float = 0.25
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 1e-3
    num_diffusion_timesteps: int = 51
    test_times: int = 1
    test_timesteps: int = 2
    test_num_diffusion_timesteps: int = 24
    eta: float = 0.0                 # main_diffpose_frame.py --eta default
    skip_type: str = "uniform"       # --skip_type default
    test_2d: str = "data_2d_h36m_cpn_ft_h36m_dbb_gmm.npz"


#: The official configs (``configs/human36m_diffpose_uvxyz_{cpn,gt}.yml``): they differ in the test 2D file and
#: ``test_num_diffusion_timesteps``.
PRESETS: dict[str, DiffPoseSettings] = {
    "cpn": DiffPoseSettings(),
    "gt": DiffPoseSettings(test_num_diffusion_timesteps=12, test_2d="data_2d_h36m_gt_gmm.npz"),
    # Diffpose_video configs: CPN evaluates t = 0 only, GT t = 6, 0; test 2D = plain VideoPose3D detections
    "video_cpn": DiffPoseSettings(test_timesteps=1, test_num_diffusion_timesteps=6,
                                  test_2d="data_2d_h36m_cpn_ft_h36m_dbb.npz"),
    "video_gt": DiffPoseSettings(test_num_diffusion_timesteps=12, test_2d="data_2d_h36m_gt_gmm.npz"),
}


def _official_list(path: Path, what: str) -> list[Any]:
    obj = safe_torch_load(path)
    if isinstance(obj, Mapping) and "meta" in obj:
        raise CheckpointError(f"'{path}' is already one of our checkpoints (it has 'meta'); load it with load_run")
    if not isinstance(obj, (list, tuple)) or not obj or not isinstance(obj[0], Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}; expected the official DiffPose {what} "
                              "list [state_dict, optimizer, epoch, step(, ema)] written by torch.save(states)")
    return list(obj)


def read_official_checkpoint(path: str | Path, what: str = "denoiser") -> dict[str, Any]:
    """Official list -> ``{'state_dict', 'epoch', 'step', 'ema'}`` (``state_dict`` = ``states[0]`` without the
    ``module.`` prefix; ``ema`` = ``states[4]`` or None)."""
    states = _official_list(Path(path), what)
    sd = strip_data_parallel({k: v for k, v in states[0].items() if isinstance(v, Tensor)})
    ema = states[4] if len(states) > 4 and isinstance(states[4], Mapping) else None
    return {"state_dict": sd, "epoch": states[2] if len(states) > 2 else None,
            "step": states[3] if len(states) > 3 else None,
            "ema": strip_data_parallel(ema) if ema is not None else None}


def read_official_config(path: str | Path) -> DiffPoseSettings:
    """An official DiffPose YAML (``configs/human36m_diffpose_uvxyz_*.yml``) -> :class:`DiffPoseSettings`."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the DiffPose config '{path}': {exc}") from None
    if not isinstance(cfg, Mapping) or not all(isinstance(cfg.get(k), Mapping) for k in ("model", "diffusion")):
        raise ConfigError(f"'{path}' is not an official DiffPose config: sections 'model' and 'diffusion' expected")
    m, d, t = cfg["model"], cfg["diffusion"], cfg.get("testing") or {}
    base = DiffPoseSettings()
    try:
        return DiffPoseSettings(
            hid_dim=int(m.get("hid_dim", base.hid_dim)), num_layer=int(m.get("num_layer", base.num_layer)),
            n_head=int(m.get("n_head", base.n_head)), dropout=float(m.get("dropout", base.dropout)),
            beta_schedule=str(d.get("beta_schedule", base.beta_schedule)),
            beta_start=float(d.get("beta_start", base.beta_start)), beta_end=float(d.get("beta_end", base.beta_end)),
            num_diffusion_timesteps=int(d.get("num_diffusion_timesteps", base.num_diffusion_timesteps)),
            test_times=int(t.get("test_times", base.test_times)),
            test_timesteps=int(t.get("test_timesteps", base.test_timesteps)),
            test_num_diffusion_timesteps=int(t.get("test_num_diffusion_timesteps", base.test_num_diffusion_timesteps)),
            test_2d=Path(str((cfg.get("data") or {}).get("dataset_path_test_2d", base.test_2d))).name)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"'{path}': a model/diffusion/testing value has the wrong type ({exc})") from None


def _find_prior(src: Path, video: bool) -> Path:
    pattern = "mixste*.bin" if video else "gcn_xyz*.pth"
    cands = sorted(src.parent.glob(pattern))
    if len(cands) != 1:
        raise CheckpointError(f"DiffPose needs its prior checkpoint ({pattern}): pass prior=<file> (--prior); "
                              f"found {len(cands)} candidates beside '{src}'")
    return cands[0]


def _read_mixste(path: Path) -> Mapping[str, Tensor]:
    obj = safe_torch_load(path)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model_pos"), Mapping):
        raise CheckpointError(f"'{path}' is not an official MixSTE checkpoint: a dict with 'model_pos' expected")
    return obj["model_pos"]


def convert(src: Path, out_dir: Path, *, config: Path | None = None, force: bool = False, prior: Path | None = None,
            preset: str = "cpn", use_ema: bool = False, **options: Any) -> Path:
    """Official DiffPose denoiser ``src`` + GCNpose ``prior`` -> ``out_dir/checkpoints/diffpose_<epoch>.pt`` (returned)
    and ``out_dir/config.yaml``. ``use_ema`` takes ``states[4]`` instead of the test's ``states[0]``."""
    variant = str(options.pop("variant", "video" if preset.startswith("video") else "frame"))
    mixste_heads = int(options.pop("mixste_heads", 8))      # official MixSTE2(num_heads=8); not in the weights
    if options:
        raise ConfigError(f"unknown DiffPose convert options {sorted(options)}; known: prior, preset, use_ema, "
                          "variant, mixste_heads")
    if variant not in ("frame", "video"):
        raise ConfigError(f"variant must be 'frame' or 'video', got {variant!r}")
    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise CheckpointError(f"'{out_dir}' is not empty; choose a new folder or pass force=True (--force)")
    if config is not None:
        settings = read_official_config(config)
    elif preset in PRESETS:
        settings = PRESETS[preset]
    else:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)} (or pass the official YAML), got {preset!r}")
    den = read_official_checkpoint(src, "denoiser")
    state = den["state_dict"]
    if use_ema:
        if den["ema"] is None:
            raise CheckpointError(f"'{src}' has no EMA weights (states[4]); convert without use_ema")
        state = den["ema"]
    prior_path = Path(prior).expanduser() if prior is not None else _find_prior(src, variant == "video")
    sizes = dict(hid_dim=settings.hid_dim, num_layer=settings.num_layer, n_head=settings.n_head,
                 dropout=settings.dropout)
    denoiser = build_from_state_dict("denoiser", state, source=str(src), **sizes)
    if variant == "video":
        from skeleton_diffusion.methods.diffpose.video import load_mixste
        prior_net = load_mixste(_read_mixste(prior_path), source=str(prior_path), num_heads=mixste_heads)
    else:
        pri = read_official_checkpoint(prior_path, "pose prior")["state_dict"]
        prior_net = build_from_state_dict("prior", pri, source=str(prior_path), **sizes)
    meta = make_meta("lifting", "h36m17", method="diffpose", variant=variant, settings=asdict(settings),
                     num_joints=int(denoiser.num_joints), mixste_heads=mixste_heads,
                     converted_from={"denoiser": str(src), "prior": str(prior_path), "config": str(config or preset),
                                     "weights": "ema" if use_ema else "states[0]"},
                     epoch=den["epoch"] if isinstance(den["epoch"], int) else -1,
                     step=den["step"] if isinstance(den["step"], int) else -1)
    ck_dir = out_dir / "checkpoints"
    ck_dir.mkdir(parents=True, exist_ok=True)
    epoch = den["epoch"] if isinstance(den["epoch"], int) and den["epoch"] >= 0 else 0
    out = save_checkpoint(ck_dir / f"diffpose_{epoch}.pt", {"denoiser": denoiser, "prior": prior_net}, meta)
    (out_dir / "config.yaml").write_text(yaml.safe_dump({"method": "diffpose", "variant": variant,
                                                         **asdict(settings)}, sort_keys=False))
    _log.info("wrote %s and %s", out, out_dir / "config.yaml")
    return out


class DiffPoseLifter:
    """A converted DiffPose: ``lift(keypoints_2d [B, J, 2], num_samples) -> [B, S, J, 3]`` root-relative metres
    (camera frame). ``keypoints_2d`` are screen-normalised (``normalize_screen_coordinates``)."""

    def __init__(self, denoiser: torch.nn.Module, prior: torch.nn.Module, settings: DiffPoseSettings,
                 device: torch.device) -> None:
        self.denoiser, self.prior, self.settings, self.device = denoiser.to(device), prior.to(device), settings, device
        self.betas = torch.from_numpy(diffpose_betas(settings.beta_schedule, settings.beta_start, settings.beta_end,
                                                     settings.num_diffusion_timesteps)).float().to(device)

    @property
    def official_protocol(self) -> OfficialLiftingProtocol:
        """The official frame test (``main_diffpose_frame.py --test``): all S9/S11 frames in dataset order,
        batches of 1024, GMM kernels drawn after ``np.random.seed(19960903)``, per-action protocol #1/#2 with the
        mixed-batch P-MPJPE and the /15 action average (both official defects, switchable)."""
        return OfficialLiftingProtocol("diffpose_frame", "frames", self.settings.test_2d,
                                       num_samples=self.settings.test_times, batch_size=1024, action_average="all15",
                                       mixed_batch_p2=True, mpjpe_root=0, n_mpjpe_root=None)

    @torch.no_grad()
    def lift(self, keypoints_2d: Tensor, num_samples: int = 1, *, eta: float | None = None,
             add_start_noise: bool = False, noise_scale: Tensor | None = None,
             test_num_diffusion_timesteps: int | None = None, test_timesteps: int | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """``S = num_samples`` hypotheses ``[B, S, J, 3]``; with the official settings (eta 0, no start noise)
        they coincide, and their mean is the official ``test_times = S`` output."""
        s = self.settings
        if keypoints_2d.dim() != 3 or keypoints_2d.shape[-1] != 2:
            raise InputError(f"keypoints_2d must be [B, J, 2] normalised coordinates, got {tuple(keypoints_2d.shape)}")
        x = keypoints_2d.to(self.device, torch.float32)
        b, j = x.shape[:2]
        _, (_, xs, _) = _lift(self.prior, self.denoiser, x, self.betas,
                              test_num_diffusion_timesteps or s.test_num_diffusion_timesteps,
                              test_timesteps or s.test_timesteps, s.eta if eta is None else eta,
                              int(num_samples), None, skip_type=s.skip_type, add_start_noise=add_start_noise,
                              noise_scale=noise_scale, generator=generator, return_trajectory=True)
        xyz = xs[-1].reshape(int(num_samples), b, j, -1)[..., 2:]
        return (xyz - xyz[..., :1, :]).transpose(0, 1)


def load_run(run_dir_or_checkpoint: str | Path, device: str | torch.device = "auto", **options: Any) -> DiffPoseLifter:
    """A converted run folder (or its ``checkpoints/diffpose.pt``) -> :class:`DiffPoseLifter` in eval mode."""
    if options:
        raise ConfigError(f"unknown DiffPose load_run options {sorted(options)}")
    path = Path(run_dir_or_checkpoint).expanduser()
    if path.is_dir():
        legacy = path / "checkpoints" / CHECKPOINT_NAME
        path = legacy if legacy.is_file() else resolve_checkpoint(path, hint="convert the official files first")
    ckpt = safe_torch_load(path)
    meta = ckpt.get("meta") if isinstance(ckpt, Mapping) else None
    if not isinstance(meta, Mapping) or meta.get("method") != "diffpose":
        raise CheckpointError(f"'{path}' is not a converted DiffPose checkpoint (meta['method'] != 'diffpose'); "
                              "convert the official files first (convert --method diffpose SRC OUT --prior P)")
    settings = DiffPoseSettings(**meta["settings"])
    sizes = dict(hid_dim=settings.hid_dim, num_layer=settings.num_layer, n_head=settings.n_head,
                 dropout=settings.dropout)
    den = build_from_state_dict("denoiser", ckpt["denoiser"], source=str(path), **sizes)
    if meta.get("variant") == "video":
        from skeleton_diffusion.methods.diffpose.video import load_mixste
        mix = load_mixste(ckpt["prior"], source=str(path), num_heads=int(meta.get("mixste_heads", 8)))
        return DiffPoseVideoLifter(den, mix, settings,
                                   resolve_device(device))
    pri = build_from_state_dict("prior", ckpt["prior"], source=str(path), **sizes)
    return DiffPoseLifter(den, pri, settings, resolve_device(device))


class DiffPoseVideoLifter(DiffPoseLifter):
    """Video-based DiffPose: ``lift(keypoints_2d [T, J, 2] or [B, T, J, 2], num_samples) -> [B, S, T, J, 3]``
    (root-relative metres). The sequence is cut into MixSTE clips as officially (the last clip overlaps the one
    before; its predictions win for the overlapped frames)."""

    @property
    def official_protocol(self) -> OfficialLiftingProtocol:
        """The official video test (``Diffpose_video``): one lift per S9/S11 sequence, per-action frame-weighted
        MPJPE / P-MPJPE / N-MPJPE (uncentred) / MPJVE, plain mean over the actions evaluated. Each frame counts
        once (the official mean counts the overlapped frames of the last 243-frame clip twice)."""
        return OfficialLiftingProtocol("diffpose_video", "sequences", self.settings.test_2d, num_samples=1,
                                       action_average="present", mixed_batch_p2=False, mpjpe_root=0,
                                       n_mpjpe_root=None)

    @torch.no_grad()
    def lift(self, keypoints_2d: Tensor, num_samples: int = 1, *, eta: float | None = None,
             flip_augment: bool = True, generator: torch.Generator | None = None, **unused: Any) -> Tensor:
        from skeleton_diffusion.methods.diffpose.video import clip_sequence, lift_video_clips

        x = keypoints_2d.to(self.device, torch.float32)
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4 or x.shape[-1] != 2:
            raise InputError(f"keypoints_2d must be [T, J, 2] or [B, T, J, 2], got {tuple(keypoints_2d.shape)}")
        s, f, out = self.settings, self.prior.num_frame, []
        for seq in x:
            t = seq.shape[0]
            clips = clip_sequence(seq, f)
            samples = []
            for _ in range(int(num_samples)):
                pred = lift_video_clips(self.prior, self.denoiser, clips, self.betas, s.test_num_diffusion_timesteps,
                                        s.test_timesteps, s.eta if eta is None else eta, 1,
                                        flip_augment=flip_augment, skip_type=s.skip_type, generator=generator)
                full = pred[:-1].reshape(-1, *pred.shape[2:])[: max(0, t - f)] if t > f else pred.new_zeros(0)
                last = pred[-1][-min(t, f):] if t >= f else pred[-1][:t]
                samples.append(torch.cat([full, last]) if t > f else last)
            out.append(torch.stack(samples))
        return torch.stack(out)
