"""SMPL body model: find the user's model file, read it safely and build a :class:`smplx.SMPL` from it.

The SMPL files are licensed to each user (https://smpl.is.tue.mpg.de) and are not shipped. ``--model-dir DIR``
(default ``$SKELETON_DIFFUSION_BODY_MODELS``, else ``./body_models``) may hold, for ``gender="neutral"``:
``DIR/SMPL_NEUTRAL.pkl``, ``DIR/smpl/SMPL_NEUTRAL.pkl`` (the layout ``smplx.create`` reads) or the original file
name ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``; an ``.npz`` with the same keys works as well. The file is read
with an allow-listed unpickler (numpy / scipy.sparse / chumpy arrays only), then handed to ``smplx``.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError, SkeletonDiffusionError

__all__ = ["BodyModelNotFoundError", "default_model_dir", "find_model_file", "read_model_file",
           "load_body_model", "SMPL_KEYS", "NUM_BODY_JOINTS"]

NUM_BODY_JOINTS = 22  # the HumanML3D / AMASS joints: the first 22 SMPL joints, in SMPL order
SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
_GENDER_FILES = {
    "neutral": ("SMPL_NEUTRAL", "basicModel_neutral_lbs_10_207_0_v1.0.0", "basicmodel_neutral_lbs_10_207_0_v1.1.0"),
    "male": ("SMPL_MALE", "basicmodel_m_lbs_10_207_0_v1.0.0", "basicmodel_m_lbs_10_207_0_v1.1.0"),
    "female": ("SMPL_FEMALE", "basicModel_f_lbs_10_207_0_v1.0.0", "basicmodel_f_lbs_10_207_0_v1.1.0"),
}


class BodyModelNotFoundError(SkeletonDiffusionError, FileNotFoundError):
    """The user's SMPL model file is missing; the message names where to put it."""


def default_model_dir() -> Path:
    """``$SKELETON_DIFFUSION_BODY_MODELS`` if set, else ``./body_models``."""
    return Path(os.environ.get("SKELETON_DIFFUSION_BODY_MODELS", "body_models")).expanduser()


def _candidates(model_dir: Path, gender: str) -> list[Path]:
    out = []
    for sub in (model_dir, model_dir / "smpl"):
        for stem in _GENDER_FILES[gender]:
            for ext in (".pkl", ".npz"):
                out.append(sub / f"{stem}{ext}")
    return out


def find_model_file(model_dir: str | Path | None = None, gender: str = "neutral") -> Path:
    """The SMPL file for ``gender`` in ``model_dir`` (or ``model_dir`` itself when it is a file)."""
    gender = str(gender).lower()
    if gender not in _GENDER_FILES:
        raise DataFormatError(f"unknown SMPL gender {gender!r}; expected one of {sorted(_GENDER_FILES)}")
    model_dir = default_model_dir() if model_dir is None else Path(model_dir).expanduser()
    if model_dir.is_file():
        return model_dir
    for cand in _candidates(model_dir, gender):
        if cand.is_file():
            return cand
    name = _GENDER_FILES[gender][0]
    raise BodyModelNotFoundError(
        f"no SMPL body model ({gender}) found in '{model_dir}': looked for {name}.pkl (or .npz) there and in its "
        f"'smpl/' sub-folder, and for the original name {_GENDER_FILES[gender][1]}.pkl. The SMPL files are licensed "
        "to each user and are not shipped: register at https://smpl.is.tue.mpg.de, download 'SMPL for Python' "
        f"(version 1.0.0 or 1.1.0), and put the {gender} model at '{model_dir / 'smpl' / (name + '.pkl')}' (the "
        "layout smplx reads), or pass --model-dir <folder holding it> (or set SKELETON_DIFFUSION_BODY_MODELS). "
        "chumpy is not needed: the file is read with a safe, allow-listed reader.")


def read_model_file(path: str | Path) -> dict[str, np.ndarray]:
    """The SMPL arrays of ``path`` (``.pkl`` via the allow-listed unpickler, ``.npz`` without pickle), checked."""
    from skeleton_diffusion.mesh.safe_pickle import safe_load_pickle

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        if head.startswith(b"PK"):
            try:
                with np.load(fh, allow_pickle=False) as z:
                    data: dict[str, Any] = {k: z[k] for k in z.files if k in SMPL_KEYS}
            except ValueError as exc:
                raise DataFormatError(f"'{path}': an SMPL .npz must hold plain arrays ({exc})") from None
        else:
            data = safe_load_pickle(fh, what=path)
    if not isinstance(data, dict):
        raise DataFormatError(f"'{path}' is not an SMPL model file (a dict of arrays), found {type(data).__name__}")
    missing = [k for k in SMPL_KEYS if k not in data]
    if missing:
        raise DataFormatError(f"'{path}' lacks the SMPL arrays {missing}; expected keys {list(SMPL_KEYS)}")
    arrays = {k: np.asarray(data[k]) for k in SMPL_KEYS}
    v = arrays["v_template"].shape[0] if arrays["v_template"].ndim == 2 else -1
    j = arrays["kintree_table"].shape[-1] if arrays["kintree_table"].ndim == 2 else -1
    expected = {"v_template": (v, 3), "J_regressor": (j, v), "weights": (v, j), "kintree_table": (2, j)}
    for key, shape in expected.items():
        if arrays[key].shape != shape or v <= 0 or j < NUM_BODY_JOINTS:
            raise DataFormatError(f"'{path}': {key} has shape {arrays[key].shape}, expected {shape} "
                                  f"(V={v} vertices, J={j} >= {NUM_BODY_JOINTS} joints)")
    for key in ("shapedirs", "posedirs"):
        if arrays[key].ndim != 3 or arrays[key].shape[:2] != (v, 3):
            raise DataFormatError(f"'{path}': {key} has shape {arrays[key].shape}, expected ({v}, 3, K)")
    if arrays["posedirs"].shape[2] != 9 * (j - 1):
        raise DataFormatError(f"'{path}': posedirs has {arrays['posedirs'].shape[2]} components, expected "
                              f"{9 * (j - 1)} (9 per non-root joint)")
    if arrays["f"].ndim != 2 or arrays["f"].shape[1] != 3:
        raise DataFormatError(f"'{path}': f (faces) has shape {arrays['f'].shape}, expected (F, 3)")
    return arrays


def load_body_model(model_dir: str | Path | None = None, gender: str = "neutral", *, num_betas: int = 10,
                    device: Any = "cpu") -> Any:
    """A :class:`smplx.SMPL` (batch size 1, float32, on ``device``) built from the user's SMPL file."""
    import torch

    try:
        import smplx
        from smplx.utils import Struct
    except ImportError:  # pragma: no cover - dependency missing
        raise SkeletonDiffusionError("fitting meshes needs the 'smplx' package: pip install smplx trimesh") from None
    path = find_model_file(model_dir, gender)
    arrays = read_model_file(path)
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-component shape spaces
        model = smplx.SMPL(str(path), data_struct=Struct(**arrays), gender=gender,
                           num_betas=min(int(num_betas), arrays["shapedirs"].shape[2]), dtype=torch.float32)
    model.source_path = path
    return model.to(device).eval()
