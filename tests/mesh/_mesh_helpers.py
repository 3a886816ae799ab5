"""Shared helpers of the mesh tests: a synthetic SMPL-format model written like the released files (a pickle with
a scipy.sparse joint regressor and chumpy-pickled shape directions) and motions made by that model."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse


class Ch:
    """Pickles like ``chumpy.ch.Ch`` (class path and an ``x`` entry in its state)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getstate__(self) -> dict:
        return {"x": self.x, "_dirty_vars": set()}


Ch.__module__ = "chumpy.ch"


def write_release_like_model(model_dir: Path, seed: int = 0) -> Path:
    """``<model_dir>/smpl/SMPL_NEUTRAL.pkl`` in the released layout (protocol 2, sparse regressor, chumpy array)."""
    from skeleton_diffusion.mesh.synthetic import synthetic_smpl_arrays

    arrays = synthetic_smpl_arrays(seed)
    arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    arrays["shapedirs"] = Ch(arrays["shapedirs"])
    arrays["bs_style"], arrays["bs_type"] = "lbs", "lrotmin"
    path = Path(model_dir) / "smpl" / "SMPL_NEUTRAL.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    fake, parent = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy")
    fake.Ch, parent.ch = Ch, fake
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": parent, "chumpy.ch": fake})
    try:
        with open(path, "wb") as fh:
            pickle.dump(arrays, fh, protocol=2)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return path


def random_params(t_len: int, seed: int = 1, num_betas: int = 10) -> dict[str, np.ndarray]:
    """Smooth random SMPL parameters for ``t_len`` frames: body pose (hands at 0), orientation, translation, shape."""
    rng = np.random.default_rng(seed)
    tt = np.linspace(0, 2 * np.pi, t_len)[:, None, None]
    amp, phase = rng.normal(0, 0.35, (1, 23, 3)), rng.uniform(0, 6, (1, 23, 3))
    body = (amp * np.sin(tt + phase)).reshape(t_len, 69)
    body[:, 63:] = 0.0
    s = tt[:, 0, 0]
    orient = np.stack([0.2 * np.sin(s), 0.5 * s + rng.uniform(-3, 3), 0.1 * np.cos(s)], 1)
    transl = np.stack([0.3 * s, 0.9 + 0.05 * np.sin(2 * s), 0.1 * s], 1)
    return {"betas": rng.normal(0, 1, num_betas), "global_orient": orient, "body_pose": body, "transl": transl}


def model_joints(model, params: dict[str, np.ndarray]) -> np.ndarray:
    """The model's own first 22 joints ``[T, 22, 3]`` for ``params`` (full smplx forward)."""
    import torch

    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    t_len = len(params["global_orient"])
    with torch.no_grad():
        out = model(betas=f(params["betas"])[None].expand(t_len, -1), global_orient=f(params["global_orient"]),
                    body_pose=f(params["body_pose"]), transl=f(params["transl"]))
    return out.joints[:, :22].numpy()
