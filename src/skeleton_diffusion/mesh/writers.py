"""Write a fitted SMPL sequence: one ``.npz`` (parameters, vertices, faces, fit error) and, on request, one
``.obj`` per frame (written by ``trimesh``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skeleton_diffusion.mesh.fitting import SMPLFit
from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.utils.io import atomic_write

__all__ = ["save_mesh_npz", "save_obj_frames", "MESH_NPZ_KEYS"]

MESH_NPZ_KEYS = ("betas", "global_orient", "body_pose", "transl", "poses", "vertices", "faces", "joints",
                 "target_joints", "per_frame_error_mm", "mean_error_mm", "fps", "gender", "source")


def save_mesh_npz(path: str | Path, fit: SMPLFit, *, fps: float, gender: str = "neutral", source: str = "",
                  **extra: Any) -> Path:
    """Write ``path`` atomically (``numpy.load`` reads it without pickle). Keys: ``betas [B]``,
    ``global_orient [T, 3]``, ``body_pose [T, 69]`` (axis-angle), ``transl [T, 3]`` m, ``poses [T, 72]`` (AMASS
    style: global + body), ``vertices [T, V, 3]`` m, ``faces [F, 3]``, ``joints`` / ``target_joints [T, 22, 3]``,
    ``per_frame_error_mm [T]``, ``mean_error_mm``, ``fps``, ``gender``, ``source`` (+ ``extra``)."""
    if fit.vertices is None or fit.faces is None:
        raise InputError("the fit has no vertices; call fit_smpl(..., with_vertices=True)")
    path = Path(path).expanduser()
    arrays = {
        "betas": fit.betas, "global_orient": fit.global_orient, "body_pose": fit.body_pose, "transl": fit.transl,
        "poses": np.concatenate([fit.global_orient, fit.body_pose], axis=1),
        "vertices": fit.vertices.astype(np.float32), "faces": fit.faces.astype(np.int32),
        "joints": fit.joints.astype(np.float32), "target_joints": fit.target.astype(np.float32),
        "per_frame_error_mm": fit.per_frame_error_mm.astype(np.float32),
        "mean_error_mm": np.float32(fit.mean_error_mm), "fps": np.float32(fps), "gender": np.asarray(gender),
        "source": np.asarray(source)}
    for key, value in extra.items():
        arrays[key] = np.asarray(value)
    with atomic_write(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def save_obj_frames(out_dir: str | Path, vertices: np.ndarray, faces: np.ndarray, *,
                    stem: str = "frame") -> list[Path]:
    """One Wavefront ``.obj`` per frame: ``<out_dir>/<stem>000.obj`` ... (``vertices [T, V, 3]``, ``faces [F, 3]``)."""
    import trimesh

    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(vertices) - 1)))
    written = []
    for t, v in enumerate(vertices):
        mesh = trimesh.Trimesh(vertices=np.asarray(v, dtype=np.float64), faces=np.asarray(faces), process=False)
        target = out_dir / f"{stem}{t:0{width}d}.obj"
        with atomic_write(target, "w") as fh:
            fh.write(mesh.export(file_type="obj"))
        written.append(target)
    return written
