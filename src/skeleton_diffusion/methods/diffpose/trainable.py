"""Official DiffPose (frame-based) as a model of the shared lifting trainer (``method=diffpose`` / ``gcnpose``).

:class:`OfficialDiffPose` holds the official denoiser :class:`~.networks.GCNdiff` and pose prior
:class:`~.networks.GCNpose` and offers the two methods :mod:`skeleton_diffusion.training.lifting` calls:

* ``training_loss(pose_2d, mask, pose_3d)``: the official step (``runners/diffpose_frame.py: train``): ``x0 =
  [uv, xyz − root]``, noise ``ε ⊙ scale`` with the uv scale from the data's per-joint 2D error (the official code
  scales by the drawn GMM kernel's variance; here ``uv_noise_scale``: ``variance`` = ``joint_noise_std²``, ``std``
  or ``ones``; xyz scale 1), antithetic timesteps, :func:`~.diffusion.training_loss` (sum over joints × channels,
  batch mean). With ``stage: prior`` (``method=gcnpose``) or when no ``prior_checkpoint`` is given, the GCNpose
  prior is trained too, on its own MPJPE to the root-relative 3D (its parameters are disjoint from the denoiser's;
  the official training never feeds the prior to the denoiser).
* ``predict(pose_2d, mask, num_samples)``: the official test (``test_hyber``): start at ``[uv, prior(uv) − root]``
  without forward noise, DDIM over ``range(0, T_test, T_test // steps)`` (CPN config: t = 12, 0).

``prior_checkpoint`` (a ``method=gcnpose`` run of ours, or the official ``gcn_xyz_*.pth`` list) is loaded by
:meth:`prepare_training` and frozen, as the official recipe trains the denoiser with a pre-trained prior.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from skeleton_diffusion.methods.diffpose.diffusion import antithetic_timesteps, diffpose_betas, lift, training_loss
from skeleton_diffusion.methods.diffpose.graph import H36M_EDGES
from skeleton_diffusion.methods.diffpose.networks import GCNdiff, GCNpose, strip_data_parallel
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError

__all__ = ["OfficialDiffPose", "read_prior_state"]

_SIZE_KEYS = {"hidden", "layers", "heads", "dropout"}
_PRIOR_KEYS = {"hidden", "blocks", "heads", "dropout"}
_DIFF_KEYS = {"beta_schedule", "beta_start", "beta_end", "num_diffusion_timesteps"}
_TEST_KEYS = {"test_times", "test_timesteps", "test_num_diffusion_timesteps", "eta", "skip_type", "add_start_noise"}


def _checked(d: Optional[Mapping[str, Any]], allowed: set[str], what: str) -> dict[str, Any]:
    d = dict(d or {})
    bad = set(d) - allowed
    if bad:
        raise ConfigError(f"model.lifter.{what}: unknown key(s) {sorted(bad)}; known: {sorted(allowed)}")
    return d


def read_prior_state(path: str | Path) -> dict[str, Tensor]:
    """GCNpose weights from ``path``: one of our ``method=gcnpose``/``diffpose`` checkpoints or run folders (keys
    ``prior.*`` of its model state) or the official ``gcn_xyz_*.pth`` list (``states[0]``, ``module.*``)."""
    from skeleton_diffusion.checkpoints.format import resolve_checkpoint
    from skeleton_diffusion.utils.io import safe_torch_load

    p = Path(path).expanduser()
    p = resolve_checkpoint(p, hint="train one with `python train_lifting.py method=gcnpose`") if p.is_dir() else p
    if not p.is_file():
        raise CheckpointError(f"model.lifter.prior_checkpoint '{p}' does not exist (a method=gcnpose run or the "
                              "official gcn_xyz_*.pth)")
    obj = safe_torch_load(p)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        state = {k[len("prior."):]: v for k, v in obj["model"].items() if k.startswith("prior.")}
        if not state:
            raise CheckpointError(f"'{p}' holds no 'prior.*' weights (expected a method=gcnpose/diffpose run)")
        return state
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], Mapping):
        return strip_data_parallel({k: v for k, v in obj[0].items() if isinstance(v, Tensor)})
    raise CheckpointError(f"'{p}' is neither one of our gcnpose runs nor the official GCNpose list "
                          "[state_dict, optimizer, epoch, step]")


class OfficialDiffPose(nn.Module):
    """Official frame-based DiffPose (see module docstring). Inputs of the trainer: ``pose_2d [B, 1, J, 2]``
    (normalised), ``mask [B, 1, J]`` (1 = visible), ``pose_3d [B, 1, J, 3]`` (metres, camera frame)."""

    def __init__(self, *, num_joints: int, frames: int = 1, limbs: Sequence[Sequence[int]] = H36M_EDGES,
                 joint_noise_std: Optional[Sequence[float]] = None, stage: str = "diffusion",
                 denoiser: Optional[Mapping[str, Any]] = None, prior: Optional[Mapping[str, Any]] = None,
                 diffusion: Optional[Mapping[str, Any]] = None, testing: Optional[Mapping[str, Any]] = None,
                 prior_checkpoint: Optional[str] = None, train_prior: Optional[bool] = None,
                 uv_noise_scale: str = "variance", prior_loss_weight: float = 1.0, method: str = "diffpose",
                 node_edges: Any = None, sym_pairs: Any = None) -> None:
        super().__init__()
        if int(frames) != 1:
            raise ConfigError(f"official DiffPose is frame-based: model.lifter.frames must be 1, got {frames} "
                              "(video-based DiffPose: convert the Diffpose_video files; ours: method=diffpose_ours)")
        if stage not in ("diffusion", "prior"):
            raise ConfigError(f"model.lifter.stage must be 'diffusion' or 'prior', got {stage!r}")
        if uv_noise_scale not in ("variance", "std", "ones"):
            raise ConfigError(f"model.lifter.uv_noise_scale must be variance|std|ones, got {uv_noise_scale!r}")
        den = {"hidden": 96, "layers": 5, "heads": 4, "dropout": 0.25, **_checked(denoiser, _SIZE_KEYS, "denoiser")}
        pri = {"hidden": 96, "blocks": 5, "heads": 4, "dropout": 0.25, **_checked(prior, _PRIOR_KEYS, "prior")}
        diff = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 1e-3, "num_diffusion_timesteps": 51,
                **_checked(diffusion, _DIFF_KEYS, "diffusion")}
        self.testing = {"test_times": 1, "test_timesteps": 2, "test_num_diffusion_timesteps": 24, "eta": 0.0,
                        "skip_type": "uniform", "add_start_noise": False, **_checked(testing, _TEST_KEYS, "testing")}
        edges = [tuple(int(v) for v in e) for e in limbs] or list(H36M_EDGES)
        self.num_joints, self.stage = int(num_joints), stage
        self.denoiser = GCNdiff(int(den["hidden"]), int(den["layers"]), int(den["heads"]), float(den["dropout"]),
                                num_joints=self.num_joints, edges=edges)
        self.prior = GCNpose(int(pri["hidden"]), int(pri["blocks"]), int(pri["heads"]), float(pri["dropout"]),
                             num_joints=self.num_joints, edges=edges)
        self.prior_checkpoint = prior_checkpoint
        self.train_prior = stage == "prior" or (prior_checkpoint is None if train_prior is None else bool(train_prior))
        self.prior_loss_weight = float(prior_loss_weight)
        std = torch.ones(self.num_joints) if joint_noise_std is None else torch.as_tensor(joint_noise_std).float()
        if std.shape != (self.num_joints,):
            raise ConfigError(f"joint_noise_std must hold {self.num_joints} values, got {tuple(std.shape)}")
        scale = {"variance": std ** 2, "std": std, "ones": torch.ones_like(std)}[uv_noise_scale]
        self.register_buffer("uv_scale", scale, persistent=False)
        betas = diffpose_betas(str(diff["beta_schedule"]), float(diff["beta_start"]), float(diff["beta_end"]),
                               int(diff["num_diffusion_timesteps"]))
        self.register_buffer("betas", torch.from_numpy(betas).float(), persistent=False)

    # ------------------------------------------------------------------------------------------------ training
    def prepare_training(self) -> None:
        """Load and freeze ``prior_checkpoint`` (called by the trainer before the first step, not on reload)."""
        if self.prior_checkpoint:
            state = read_prior_state(self.prior_checkpoint)
            try:
                self.prior.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"model.lifter.prior_checkpoint '{self.prior_checkpoint}' does not fit the "
                                      f"GCNpose of model.lifter.prior ({str(exc).splitlines()[0]}); set "
                                      "model.lifter.prior.{hidden,blocks,heads} to the prior's sizes") from None
        if not self.train_prior:
            self.prior.requires_grad_(False)
        if self.stage == "prior":
            self.denoiser.requires_grad_(False)

    def _frame(self, pose_2d: Tensor, mask: Tensor) -> Tensor:
        if pose_2d.dim() != 4 or pose_2d.shape[1] != 1 or pose_2d.shape[2:] != (self.num_joints, 2):
            raise InputError(f"official DiffPose lifts single frames: pose_2d must be [B, 1, {self.num_joints}, 2], "
                             f"got {tuple(pose_2d.shape)}")
        return pose_2d[:, 0] * mask[:, 0, :, None].to(pose_2d.dtype)

    def training_loss(self, pose_2d: Tensor, mask: Tensor, pose_3d: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Official DiffPose loss (+ the prior's MPJPE when the prior trains) and its parts for the logs."""
        uv = self._frame(pose_2d, mask)
        xyz = pose_3d[:, 0] - pose_3d[:, 0, :1]
        logs: dict[str, Tensor] = {}
        loss = uv.new_zeros(())
        if self.stage == "diffusion":
            x0 = torch.cat([uv, xyz], dim=-1)
            scale = torch.cat([self.uv_scale[None, :, None].expand(-1, -1, 2),
                               torch.ones(1, self.num_joints, 3, device=uv.device)], dim=-1)
            noise = torch.randn_like(x0) * scale
            t = antithetic_timesteps(x0.shape[0], self.betas.shape[0], device=x0.device)
            loss = training_loss(self.denoiser, x0, t, noise, self.betas)
            logs["diffusion"] = loss.detach()
        if self.train_prior:
            prior_loss = (self.prior(uv) - xyz).norm(dim=-1).mean()
            logs["prior_mpjpe"] = prior_loss.detach()
            loss = loss + self.prior_loss_weight * prior_loss
        return loss, logs

    # ------------------------------------------------------------------------------------------------- testing
    @torch.no_grad()
    def predict(self, pose_2d: Tensor, mask: Tensor, num_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """``[B, S, 1, J, 3]`` root-relative metres (the official ``test_hyber``; ``stage: prior``: GCNpose's pose)."""
        uv = self._frame(pose_2d, mask)
        b, j, s = uv.shape[0], self.num_joints, int(num_samples)
        if self.stage == "prior":
            xyz = self.prior(uv)
            return (xyz - xyz[:, :1])[:, None, None].expand(b, s, 1, j, 3).clone()
        cfg = self.testing
        scale = torch.cat([self.uv_scale[None, :, None].expand(b, -1, 2), torch.ones(b, j, 3, device=uv.device)], -1)
        _, (_, xs, _) = lift(self.prior, self.denoiser, uv, self.betas, int(cfg["test_num_diffusion_timesteps"]),
                             int(cfg["test_timesteps"]), eta=float(cfg["eta"]), test_times=s,
                             skip_type=str(cfg["skip_type"]), add_start_noise=bool(cfg["add_start_noise"]),
                             noise_scale=scale, generator=generator, return_trajectory=True)
        out = xs[-1].reshape(s, b, j, -1)[..., 2:]
        return (out - out[..., :1, :]).transpose(0, 1)[:, :, None]
