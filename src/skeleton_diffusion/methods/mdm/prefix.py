"""An official prefix-completion MDM (``context_len``/``pred_len``, HumanML3D) as a motion predictor: the
:class:`~skeleton_diffusion.tasks.base.Predictor` contract the ``predict`` app and Python callers use.

    run = load_model("<converted official prefix MDM>")              # OfficialMDMRun
    p = run.as_predictor(data_root="datasets/raw/HumanML3D")           # Mean.npy / Std.npy of the dataset
    futures = p.predict(obs, num_samples=10, seed=0, text="a person walks")   # [B, S, T_pred, 22, 3] metres

Observation -> model: ``obs [B, C, 22, 3]`` metres, HumanML3D joint order, Y up (``C = context_len``); one
constant-velocity frame is appended (a feature row holds the velocity to the next frame), then
:func:`~skeleton_diffusion.representations.humanml3d.positions_to_features` gives the ``C`` prefix rows
(floor / origin / facing normalised as the official preprocessing, no uniform-skeleton retargeting), which are
normalised with the dataset's Mean/Std and fed as ``y['prefix']`` (official: text and past together; without a
text the text embedding is dropped, the past kept, as the official unconditional pass). Sampling is the official
one (:func:`~skeleton_diffusion.methods.mdm.sampling.sample_motion`, ``clip_denoised=False``); horizons longer
than ``pred_len`` roll out (the last ``C`` rows become the next prefix). Model -> metres: de-normalise,
:func:`~skeleton_diffusion.representations.humanml3d.recover_from_ric` of prefix + generated rows, then the
yaw + translation that best maps the recovered prefix onto the observation (least squares) places the futures in
the observation's own frame.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from skeleton_diffusion.representations.humanml3d import positions_to_features, recover_from_ric
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["OfficialPrefixPredictor", "observation_features", "fit_yaw_translation"]

_JOINTS = 22


def observation_features(obs: np.ndarray) -> np.ndarray:
    """``obs [C, 22, 3]`` metres (Y up) -> HumanML3D features ``[C, 263]`` (not normalised); the last row's
    velocities come from a constant-velocity extrapolated frame ``C``."""
    p = np.asarray(obs, dtype=np.float64)
    ext = np.concatenate([p, 2 * p[-1:] - p[-2:-1]], axis=0)
    feats, _ = positions_to_features(ext)
    return feats


def fit_yaw_translation(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation about Y and translation with ``dst ≈ src @ R.T + t`` over all points of
    ``src, dst [..., 3]`` -> ``(R [3, 3], t [3])``."""
    a, b = src.reshape(-1, 3).astype(np.float64), dst.reshape(-1, 3).astype(np.float64)
    ca, cb = a.mean(0), b.mean(0)
    h = (a - ca)[:, [0, 2]].T @ (b - cb)[:, [0, 2]]
    u, _, vt = np.linalg.svd(h)
    r2 = vt.T @ np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T   # 2D Kabsch on (x, z)
    r = np.eye(3)
    r[np.ix_([0, 2], [0, 2])] = r2
    return r, cb - ca @ r.T


class OfficialPrefixPredictor:
    """A loaded official prefix MDM (``run``: :class:`~.convert.OfficialMDMRun`) with metre-space I/O.
    ``mean``/``std`` ``[263]``: the dataset's ``Mean.npy``/``Std.npy`` the model was trained with."""

    condition = "past"
    up = "y"

    def __init__(self, run: Any, mean: Tensor, std: Tensor, *, text: str = "", steps: Any = None,
                 guidance_param: Optional[float] = None, eta: float = 1.0) -> None:
        from skeleton_diffusion.skeletons.lookup import get_skeleton

        net = run.model
        if not getattr(net, "is_prefix_comp", False):
            raise ConfigError(f"'{run.checkpoint}' is an official {run.condition} MDM without context_len: it is "
                              "not a prediction model, use generate (python -m skeleton_diffusion.apps.generate "
                              f"--checkpoint {run.checkpoint} --captions ...)")
        if run.args.get("dataset") != "humanml" or int(net.njoints) * int(net.nfeats) != mean.numel():
            raise InputError(f"'{run.checkpoint}': prediction with an official prefix MDM needs a HumanML3D model "
                             f"(dataset {run.args.get('dataset')!r}, {int(net.njoints)} features) and the dataset's "
                             f"263-d Mean.npy/Std.npy (got {mean.numel()})")
        self.run, self.text, self.steps, self.eta = run, str(text or ""), steps, float(eta)
        self.guidance_param = guidance_param
        self.mean, self.std = mean.float().reshape(-1), std.float().reshape(-1)
        self.skeleton = get_skeleton("amass")  # SMPL's first 22 joints = HumanML3D order
        self.device, self.checkpoint = run.device, run.checkpoint

    obs_length = property(lambda self: int(self.run.model.context_len))
    pred_length = property(lambda self: int(self.run.model.pred_len))
    fps = property(lambda self: 20.0)

    def _cond(self, past: Tensor, text: str) -> dict[str, Any]:
        cond: dict[str, Any] = {"past": past[..., None]}                        # [n, C, 263, 1]
        if text:
            cond["text"] = self.run.text_encoder()([text]).to(self.device).expand(past.shape[0], -1)
        return cond

    @torch.no_grad()
    def predict(self, obs: Any, num_samples: int = 50, seed: Optional[int] = 0, *, pred_length: Optional[int] = None,
                allow_longer: bool = False, return_numpy: bool = True, text: Optional[str] = None,
                **_: Any) -> Any:
        """``obs [C, 22, 3]`` or ``[B, C, 22, 3]`` metres (Y up) -> ``[B, S, T_pred, 22, 3]`` metres in the
        observation's frame. ``text``: the caption (default: the constructor's; empty = unconditional)."""
        from skeleton_diffusion.tasks.hmp.input_checks import validate_observation

        x = validate_observation(obs, self.skeleton, self.obs_length, allow_longer=allow_longer).numpy()
        b, s, c = x.shape[0], int(num_samples), self.obs_length
        ph = int(pred_length or self.pred_length)
        feats = torch.as_tensor(np.stack([observation_features(o) for o in x]), dtype=torch.float32)  # [B, C, F]
        norm = ((feats - self.mean) / self.std).to(self.device)
        past = norm.repeat_interleave(s, dim=0)                                  # [B*S, C, F]
        g = None if seed is None else torch.Generator(device=self.device).manual_seed(int(seed))
        text = self.text if text is None else str(text)
        chunks, done = [], 0
        while done < ph:
            out = self.run.sample(past.shape[0], x_cond=self._cond(past, text), steps=self.steps, eta=self.eta,
                                  guidance_param=self.guidance_param if self.guidance_param is not None
                                  else (self.run.guidance_param if text else None),
                                  num_frames=self.pred_length, generator=g)     # [n, F, P]
            fut = out.permute(0, 2, 1)                                           # [n, P, F]
            chunks.append(fut)
            done += fut.shape[1]
            past = torch.cat([past, fut], dim=1)[:, -c:]
        gen = torch.cat(chunks, dim=1)[:, :ph].cpu() * self.std + self.mean     # [B*S, T, F]
        full = torch.cat([feats.repeat_interleave(s, dim=0), gen], dim=1).double()
        joints = recover_from_ric(full, _JOINTS).numpy().reshape(b, s, c + ph, _JOINTS, 3)
        pred = np.empty((b, s, ph, _JOINTS, 3), dtype=np.float32)
        for i in range(b):  # the recovered prefix (same for every sample) fitted onto the observation
            r, t = fit_yaw_translation(joints[i, 0, :c], x[i])
            pred[i] = joints[i, :, c:] @ r.T + t
        return pred if return_numpy else torch.from_numpy(pred)

    def reconstruct_observation(self, obs: Any) -> np.ndarray:
        """``recover_from_ric`` of the observation's own features, placed back in its frame -> ``[B, C, 22, 3]``
        (≈ the observation: the representation's round trip)."""
        from skeleton_diffusion.tasks.hmp.input_checks import validate_observation

        x = validate_observation(obs, self.skeleton, self.obs_length).numpy()
        out = []
        for o in x:
            rec = recover_from_ric(torch.as_tensor(observation_features(o)), _JOINTS).numpy()
            r, t = fit_yaw_translation(rec, o)
            out.append(rec @ r.T + t)
        return np.stack(out).astype(np.float32)
