"""Official DiffHPE-2D as a model of the shared lifting trainer (``method=diffhpe``).

:class:`OfficialDiffHPE` wraps the faithful :class:`~.model.LiftingDiffusionModel` (LiftCTGCN, raw 2D
conditioning, cosine β capped at ``beta_end = 0.5``, ε prediction) and offers what
:mod:`skeleton_diffusion.training.lifting` calls:

* ``training_loss(pose_2d, mask, pose_3d)``: per window an occlusion mask from the official generator
  (:func:`~.occlusion.official_occlusion_mask`, ``miss_type``/``miss_rate``, one ``RandomState(seed)`` as the
  official ``np.random``; default ``no_miss`` as ``conf/config.yaml``), occluded 2D set to 0, ``t ~ U{0..T−1}``,
  white noise (shaped by the ``err_var``/``err_ave`` files when ``anisotropic``), and
  :meth:`~.model.LiftingDiffusionModel.calc_loss` (MSE on ε, blended with the bone regularisers when their
  weights are > 0);
* ``predict(pose_2d, mask, num_samples)``: the official ancestral sampler (``impute``, all ``num_steps``).

``diffusion`` takes the official ``conf/diffusion`` keys (defaults: ``conf/config.yaml`` +
``conf/diffusion/diffhpe-2d.yaml``); ``denoiser`` = ``{hidden: channels, layers, dropout: p_dropout, embedding:
diffusion_embedding_dim}`` overrides the sizes (the shared debug preset sets it; ``heads`` is accepted there and
unused: LiftCTGCN has graph convolutions, no attention heads). The MixSTE-conditioned wrapper is not trained here.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import Tensor, nn

from skeleton_diffusion.methods.diffhpe.files import OFFICIAL_DIFFUSION_DEFAULTS, read_error_stats
from skeleton_diffusion.methods.diffhpe.model import LiftingDiffusionModel
from skeleton_diffusion.methods.diffhpe.occlusion import MISS_TYPES, official_occlusion_mask
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["OfficialDiffHPE", "DIFFHPE_2D"]

#: ``conf/config.yaml`` ``diffusion`` with ``conf/diffusion/diffhpe-2d.yaml`` applied (raw 2D conditioning).
DIFFHPE_2D: dict[str, Any] = {**OFFICIAL_DIFFUSION_DEFAULTS, "conditioning": "raw", "p_dropout": 0.032}
_SIZE_MAP = {"hidden": "channels", "layers": "layers", "dropout": "p_dropout", "embedding": "diffusion_embedding_dim"}


class OfficialDiffHPE(nn.Module):
    """Official DiffHPE-2D (see module docstring): ``pose_2d [B, L, J, 2]`` normalised, ``mask [B, L, J]``,
    ``pose_3d [B, L, J, 3]`` metres (camera frame); ``L = frames`` (27 officially)."""

    def __init__(self, *, num_joints: int, frames: int = 27, diffusion: Optional[Mapping[str, Any]] = None,
                 denoiser: Optional[Mapping[str, Any]] = None, miss_type: str = "no_miss", miss_rate: float = 0.2,
                 noise_sigma: float = 5.0, seed: int = 42, bones_rewired: bool = False,
                 anisotropic_step_noise: bool = False, method: str = "diffhpe", prior: Any = None,
                 limbs: Any = None, node_edges: Any = None, sym_pairs: Any = None,
                 joint_noise_std: Any = None) -> None:
        super().__init__()
        cfg = {**DIFFHPE_2D, **dict(diffusion or {})}
        unknown = set(cfg) - set(DIFFHPE_2D)
        if unknown:
            raise ConfigError(f"model.lifter.diffusion: unknown key(s) {sorted(unknown)}; known: {sorted(DIFFHPE_2D)}")
        for key, value in dict(denoiser or {}).items():
            if key == "heads":
                continue
            if key not in _SIZE_MAP:
                raise ConfigError(f"model.lifter.denoiser: unknown key {key!r}; known: {sorted(_SIZE_MAP)} (+ heads)")
            cfg[_SIZE_MAP[key]] = value
        if cfg["conditioning"] != "raw":
            raise ConfigError("training the MixSTE-conditioned DiffHPE-Wrapper is not supported here: "
                              "model.lifter.diffusion.conditioning must be 'raw' (DiffHPE-2D)")
        if miss_type not in MISS_TYPES:
            raise ConfigError(f"model.lifter.miss_type must be one of {MISS_TYPES}, got {miss_type!r}")
        self.model = LiftingDiffusionModel(cfg, int(frames), int(num_joints), bones_rewired=bool(bones_rewired),
                                           anisotropic_step_noise=bool(anisotropic_step_noise))
        self.frames, self.num_joints = int(frames), int(num_joints)
        self.miss_type, self.miss_rate, self.noise_sigma = miss_type, float(miss_rate), float(noise_sigma)
        self.rng = np.random.RandomState(int(seed))
        self.anisotropic = bool(cfg["anisotropic"])
        self.err_paths = (str(cfg["err_var_path"]), str(cfg["err_ave_path"]))
        self.reg_time = float(cfg["skeleton_time_regularization"])
        self.reg_side = float(cfg["skeleton_side_regularization"])
        self.register_buffer("err_var", torch.ones(self.num_joints, 3))
        self.register_buffer("err_mean", torch.zeros(self.num_joints, 3))

    def prepare_training(self) -> None:
        """Read the anisotropic ``err_var_path`` / ``err_ave_path`` files (stored in the checkpoint)."""
        if self.anisotropic:
            if not self.err_paths[0]:
                raise ConfigError("model.lifter.diffusion.anisotropic needs err_var_path (a [J, 3] .npy file)")
            self.err_var.copy_(read_error_stats(self.err_paths[0], self.num_joints))
            if self.err_paths[1]:
                self.err_mean.copy_(read_error_stats(self.err_paths[1], self.num_joints))

    def _stats(self) -> tuple[Optional[Tensor], Optional[Tensor]]:
        return (self.err_var, self.err_mean) if self.anisotropic else (None, None)

    def _bcjl(self, pose_2d: Tensor, mask: Tensor) -> Tensor:
        if pose_2d.dim() != 4 or pose_2d.shape[1:] != (self.frames, self.num_joints, 2):
            raise InputError(f"DiffHPE lifts windows of {self.frames} frames: pose_2d must be "
                             f"[B, {self.frames}, {self.num_joints}, 2], got {tuple(pose_2d.shape)}")
        return (pose_2d * mask[..., None].to(pose_2d.dtype)).permute(0, 3, 2, 1)

    def occlude(self, pose_2d: Tensor) -> Tensor:
        """One official occlusion draw per window: masked joints 0, ``noisy`` adds ``N(0, noise_sigma)``."""
        masks, noises = [], []
        for _ in range(pose_2d.shape[0]):
            m = official_occlusion_mask(self.miss_type, self.frames, self.num_joints, self.miss_rate, self.rng,
                                        self.noise_sigma)
            if isinstance(m, tuple):
                m, n = m
                noises.append(n)
            masks.append(m)
        mask = torch.as_tensor(np.stack(masks), dtype=pose_2d.dtype, device=pose_2d.device)
        out = pose_2d * mask[..., None]
        if noises:
            out = out + torch.as_tensor(np.stack(noises), dtype=pose_2d.dtype, device=pose_2d.device)
        return out

    def training_loss(self, pose_2d: Tensor, mask: Tensor, pose_3d: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        data_2d = self._bcjl(self.occlude(pose_2d), mask)
        data_3d = (pose_3d - pose_3d[:, :, :1]).permute(0, 3, 2, 1)
        t = torch.randint(0, self.model.num_steps, (data_3d.shape[0],), device=data_3d.device)
        err_var, err_mean = self._stats()
        loss = self.model.calc_loss(data_2d, data_3d, t, torch.randn_like(data_3d), err_var, err_mean,
                                    reg_time=self.reg_time, reg_side=self.reg_side)
        return loss, {"diffusion": loss.detach()}

    @torch.no_grad()
    def predict(self, pose_2d: Tensor, mask: Tensor, num_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """``[B, S, L, J, 3]`` root-relative metres from the official sampler (``num_steps`` ancestral steps)."""
        err_var, err_mean = self._stats()
        out = self.model.impute(self._bcjl(pose_2d, mask), int(num_samples), err_var=err_var, err_mean=err_mean,
                                generator=generator)
        return out.permute(0, 1, 4, 3, 2)
