"""A synthetic SMPL-format body model (random, body-like) for tests, benchmarks and demos without the SMPL files.

It has SMPL's sizes (6890 vertices, 24 joints, SMPL's kinematic tree, 207 pose blend shapes) so ``smplx`` loads
it like the real model: every bone is a tube of vertices around a rough T-pose skeleton (random radii), the
joint regressor averages random vertices near each joint, skinning weights blend each tube between its two
joints, shape directions move whole body parts (so they change bone lengths) and pose directions are small
random vectors. It is not a human body; it only exercises the code paths.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

__all__ = ["SMPL_PARENTS", "synthetic_smpl_arrays", "write_synthetic_smpl"]

SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
_REST = np.array([  # rough SMPL T-pose joints (y up, +x = body's left), metres
    [0, 0, 0], [0.06, -0.09, 0], [-0.06, -0.09, 0], [0, 0.11, -0.01], [0.10, -0.47, 0], [-0.10, -0.47, 0],
    [0, 0.25, 0], [0.09, -0.87, -0.04], [-0.09, -0.87, -0.04], [0, 0.31, 0.02], [0.12, -0.93, 0.08],
    [-0.12, -0.93, 0.08], [0, 0.52, -0.01], [0.08, 0.43, 0], [-0.08, 0.43, 0], [0, 0.62, 0.05],
    [0.18, 0.46, -0.01], [-0.18, 0.46, -0.01], [0.43, 0.44, -0.03], [-0.43, 0.44, -0.03], [0.68, 0.45, -0.02],
    [-0.68, 0.45, -0.02], [0.76, 0.44, -0.03], [-0.76, 0.44, -0.03]], dtype=np.float64)
NUM_VERTS, RINGS, SEGS = 6890, 12, 24


def _frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = d / max(np.linalg.norm(d), 1e-9)
    a = np.array([0.0, 0, 1]) if abs(d[2]) < 0.9 else np.array([1.0, 0, 0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def synthetic_smpl_arrays(seed: int = 0, num_betas: int = 10) -> dict[str, np.ndarray]:
    """The SMPL arrays (``v_template``, ``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``,
    ``kintree_table``, ``f``) of a random body-like model; dense numpy, float64."""
    rng = np.random.default_rng(seed)
    n_j = len(SMPL_PARENTS)
    verts, faces, weights = [], [], []
    for j in range(1, n_j):
        p = SMPL_PARENTS[j]
        a, b = _REST[p], _REST[j]
        u, v = _frame(b - a)
        radius = rng.uniform(0.03, 0.07)
        base = len(verts)
        for r in range(RINGS):
            s = r / (RINGS - 1)
            for k in range(SEGS):
                ang = 2 * np.pi * k / SEGS
                verts.append(a + s * (b - a) + radius * (np.cos(ang) * u + np.sin(ang) * v))
                w = np.zeros(n_j)
                w[p], w[j] = 1 - 0.5 * s, 0.5 * s
                weights.append(w)
        for r in range(RINGS - 1):
            for k in range(SEGS):
                i0, i1 = base + r * SEGS + k, base + r * SEGS + (k + 1) % SEGS
                faces += [[i0, i1, i0 + SEGS], [i1, i1 + SEGS, i0 + SEGS]]
    while len(verts) < NUM_VERTS:  # the remaining vertices: a cloud around the head, weighted to it
        verts.append(_REST[15] + rng.normal(0, 0.05, 3))
        w = np.zeros(n_j)
        w[15] = 1.0
        weights.append(w)
    v_template = np.asarray(verts)
    w_arr = np.asarray(weights)
    regressor = np.zeros((n_j, NUM_VERTS))
    for j in range(n_j):
        near = np.argsort(np.linalg.norm(v_template - _REST[j], axis=1))[:12]
        coef = rng.uniform(0.5, 1.5, len(near))
        regressor[j, near] = coef / coef.sum()
    part_dirs = rng.normal(0, 0.02, (n_j, 3, num_betas))
    shapedirs = np.einsum("vj,jck->vck", w_arr, part_dirs) + rng.normal(0, 1e-3, (NUM_VERTS, 3, num_betas))
    posedirs = rng.normal(0, 1e-3, (NUM_VERTS, 3, 9 * (n_j - 1)))
    kintree = np.stack([np.where(SMPL_PARENTS < 0, 4294967295, SMPL_PARENTS), np.arange(n_j)]).astype(np.int64)
    return {"v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": regressor,
            "weights": w_arr, "kintree_table": kintree, "f": np.asarray(faces, dtype=np.int64)}


def write_synthetic_smpl(model_dir: str | Path, seed: int = 0, *, gender: str = "neutral",
                         fmt: str = "pkl") -> Path:
    """Write ``<model_dir>/smpl/SMPL_<GENDER>.<fmt>`` (``pkl``: a plain pickle of numpy arrays, ``npz``)."""
    path = Path(model_dir) / "smpl" / f"SMPL_{gender.upper()}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = synthetic_smpl_arrays(seed)
    if fmt == "npz":
        np.savez(path, **arrays)
    else:
        with open(path, "wb") as fh:
            pickle.dump(arrays, fh, protocol=2)
    return path
