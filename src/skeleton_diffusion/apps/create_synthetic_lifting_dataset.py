"""Synthetic 2D->3D lifting dataset: 3D motion projected through sampled pinhole cameras (+ detector-like noise).

    python -m skeleton_diffusion.apps.create_synthetic_lifting_dataset                       # procedural motion
    python -m skeleton_diffusion.apps.create_synthetic_lifting_dataset --from-processed datasets/processed/Human36M/hmp/data_3d_h36m.npz

Source 3D: the embedded procedural generator (``data/builders/synthetic.py``, AMASS-22 joints, converted to our
17-joint ``h36m`` skeleton by an approximate joint map, :data:`AMASS_TO_H36M`; synthetic only), or any processed
``data_3d_<ds>.npz`` whose skeleton is ``h36m`` (Human3.6M) or ``amass`` (AMASS, BVH imports, synthetic), Z-up.
Each clip's root is kept above the floor origin (horizontal trajectory removed) and seen by ``--cameras`` random H36M-like cameras (1000 px square
images, focal 1100-1200 px, 4-6 m away, 0.8-2 m high). 2D = pinhole projection, normalised to the image width,
plus optional Gaussian detector noise with per-joint std (pixels, extremities noisier) and rare outliers.
Clips are assigned to subjects S1 S5 S6 S7 S8 (train) and S9 S11 (test). Deterministic for a seed.

Output: ``<out>/data_lifting_<name>.npz`` (format: :mod:`skeleton_diffusion.data.windows.lifting`) and
``<out>/dataset_config.yaml`` (a ``configs/dataset`` group). Built from ``datasets/processed/<NAME>/hmp/data_3d_<n>.npz``
the default output is ``datasets/processed/<NAME>/lifting/``, and the set is usable by name as
``dataset=<n>_lifting`` (e.g. ``python train_lifting.py dataset=cmuassimp_lifting``).
"""

from __future__ import annotations

from skeleton_diffusion.config.cli import run_cli

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError
from skeleton_diffusion.representations.camera import project_pinhole, sample_pinhole_cameras
from skeleton_diffusion.data.windows.lifting import lifting_file_path, save_lifting

__all__ = ["AMASS_TO_H36M", "amass_to_h36m", "DETECTOR_NOISE_PX", "build_synthetic_lifting",
           "lifting_dataset_config", "default_out_dir", "default_name", "main"]

#: H36M-17 joint <- AMASS-22 joints averaged (approximate; synthetic data only). Head: extrapolated (see code).
AMASS_TO_H36M: tuple[tuple[int, ...], ...] = (
    (0,), (2,), (5,), (8,), (1,), (4,), (7,), (3, 6), (12,), (12, 15), (15,), (16,), (18,), (20,), (17,), (19,), (21,),
)
#: Per-joint detector noise std (pixels) of the h36m joints: torso 2-3 px, head 4, limbs 4-8 (wrists noisiest).
DETECTOR_NOISE_PX = (2.0, 3.0, 4.0, 6.0, 3.0, 4.0, 6.0, 2.0, 2.0, 3.0, 4.0, 3.0, 5.0, 8.0, 3.0, 5.0, 8.0)
TRAIN = ("S1", "S5", "S6", "S7", "S8")
TEST = ("S9", "S11")


def amass_to_h36m(x: np.ndarray) -> np.ndarray:
    """``[T, 22, 3]`` AMASS-layout positions -> ``[T, 17, 3]`` h36m layout (:data:`AMASS_TO_H36M`)."""
    out = np.stack([x[:, list(idx)].mean(axis=1) for idx in AMASS_TO_H36M], axis=1)
    out[:, 10] = x[:, 15] + 0.6 * (x[:, 15] - x[:, 12])  # head top above the head joint
    return out.astype(np.float32)


def _source_split(key: tuple) -> str:
    """``train`` / ``test`` of a processed leaf: its split key (generic layout) or its subject (H36M: S9, S11
    test; other subjects train)."""
    first = str(key[0])
    if first in ("train", "valid", "test"):
        return "test" if first == "test" else "train"
    return "test" if first in TEST else "train"


def source_fps(source: Path) -> float:
    """The frame rate of a processed ``data_3d_*.npz``: ``fps`` of the ``dataset_config.json`` / ``build_info.json``
    beside it, else 50 for Human3.6M (``data_3d_h36m.npz``)."""
    import json

    for side in ("dataset_config.json", "build_info.json"):
        f = source.parent / side
        if f.is_file():
            fps = json.loads(f.read_text()).get("fps")
            if fps:
                return float(fps)
    if source.name == "data_3d_h36m.npz":
        return 50.0
    raise ConfigError(f"'{source}': frame rate unknown (no dataset_config.json / build_info.json with 'fps' beside "
                      "it); pass --source-fps")


def _clips_from_source(rng: np.random.Generator, source: Path | None, n_clips: int, frames: int,
                       step: int, split: str = "train") -> list[tuple[np.ndarray, str]]:
    if source is None:
        from skeleton_diffusion.data.builders.synthetic import generate_clip

        clips = []
        for _ in range(n_clips):
            pos, labels = generate_clip(rng, frames * step)
            pos, labels = pos[::step], labels[::step]
            names, counts = np.unique(np.asarray(labels), return_counts=True)
            clips.append((amass_to_h36m(pos), str(names[counts.argmax()])))
        return clips
    from skeleton_diffusion.data.processed import read_processed
    from skeleton_diffusion.data.processed import iter_leaves

    all_leaves = [(k, np.asarray(v)) for k, v in iter_leaves(read_processed(source))]
    if not all_leaves:
        raise ConfigError(f"'{source}' holds no sequences")
    # train subjects crop only the source's train (+ valid) clips, test subjects only its test clips: no leak
    leaves = [(k, v) for k, v in all_leaves if _source_split(k) == split]
    if not leaves:
        raise ConfigError(f"'{source}' holds no {split} sequences (splits follow the source: its 'test' split or "
                          f"subjects {list(TEST)} are test, the rest train)")
    clips = []
    for i in range(n_clips):
        key, seq = leaves[i % len(leaves)]
        if seq.shape[1] == 22:
            seq = amass_to_h36m(seq)
        elif seq.shape[1] != 17:
            raise ConfigError(f"'{source}': {seq.shape[1]} joints; supported: 17 (h36m) or 22 (amass layout)")
        if len(seq) > frames * step:
            s = int(rng.integers(0, len(seq) - frames * step + 1))
            seq = seq[s:s + frames * step]
        clips.append((seq[::step].astype(np.float32), str(key[-1]).split(" ")[0]))
    return clips


def build_synthetic_lifting(out_dir: str | Path, *, clips_per_subject: int = 6, frames: int = 240, step: int = 2,
                            cameras: int = 4, noise_px: float = 1.0, outlier_prob: float = 0.005,
                            seed: int = 0, source: str | Path | None = None,
                            subjects: Sequence[str] = TRAIN + TEST, fps: float | None = None,
                            name: str = "synthetic") -> Path:
    """Build and write the dataset; returns the file path. ``noise_px`` scales :data:`DETECTOR_NOISE_PX`
    (0 = exact projections); ``step`` subsamples the source frames (procedural source: 60 fps / 2 = 30 fps).
    With a processed ``source``, train subjects see only the source's train/valid clips and test subjects only its
    test clips, and the rate is ``fps`` (default: the source's, :func:`source_fps`) / ``step``. ``name``: the file
    is ``data_lifting_<name>.npz``."""
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, 1])  # separate stream: the 3D and cameras do not depend on the noise
    skel = get_skeleton("h36m")
    res = 1000
    noise_std_px = np.asarray(DETECTOR_NOISE_PX) * float(noise_px)
    seqs = []
    src = Path(source) if source else None
    for subject in subjects:
        split = "test" if subject in TEST else "train"
        for c_idx, (clip, action) in enumerate(_clips_from_source(rng, src, clips_per_subject, frames, step, split)):
            clip = clip.copy()
            clip[:, :, :2] -= clip[:, :1, :2]   # root kept above the origin (walks in place; 3D is root-relative)
            target = np.array([0.0, 0.0, 1.0])
            for cam_i, cam in enumerate(sample_pinhole_cameras(rng, cameras, target, up_axis=2, res=res)):
                pose_cam = (clip - cam["t"]) @ cam["R"].T
                kps = project_pinhole(pose_cam, cam["focal"], 0.0)            # normalised: centre at 0
                if noise_px > 0:
                    kps = kps + noise_rng.normal(size=kps.shape) * (noise_std_px[None, :, None] / res * 2)
                    out = noise_rng.random(kps.shape[:2]) < outlier_prob
                    kps[out] += noise_rng.normal(size=(int(out.sum()), 2)) * (30.0 / res * 2)
                seqs.append({"pose_3d": (pose_cam - pose_cam[:, :1]).astype(np.float32),
                             "pose_2d": kps.astype(np.float32), "subject": subject,
                             "action": action, "camera": cam_i, "clip": c_idx})
    split_of = {s: ("train" if s in TRAIN else "test") for s in subjects}
    noise_norm = np.maximum(noise_std_px, 1e-3) / res * 2 if noise_px > 0 else np.ones(skel.num_joints)
    path = lifting_file_path(out_dir, name)
    rate = 60.0 if src is None else (float(fps) if fps else source_fps(src))
    save_lifting(path, seqs, split_of=split_of, joint_names=skel.joint_names, skeleton="h36m",
                 fps=rate / step, joint_noise_std=noise_norm)
    _write_config(path, lifting_dataset_config(path, name, src, fps=rate / step))
    return path


def default_out_dir(source: str | Path | None) -> Path:
    """``datasets/processed/SyntheticLifting`` (procedural), else ``<processed>/<NAME>/lifting`` beside the source's
    ``hmp`` folder (or ``<source folder>/lifting``)."""
    if source is None:
        return Path("datasets/processed/SyntheticLifting")
    folder = Path(source).parent
    return (folder.parent if folder.name == "hmp" else folder) / "lifting"


def default_name(source: str | Path | None) -> str:
    """``synthetic`` (procedural), else ``<n>`` of the source's ``data_3d_<n>.npz`` (lower case)."""
    if source is None:
        return "synthetic"
    stem = Path(source).stem
    return (stem[len("data_3d_"):] if stem.startswith("data_3d_") else stem).lower()


def lifting_dataset_config(path: Path, name: str, source: Path | None, *, fps: float) -> dict:
    """The ``configs/dataset`` group of a built lifting file: ``dataset=<name>_lifting`` (``synthetic_lifting`` for
    the procedural set). ``lifting_file`` is relative to the datasets folder (the parent of ``processed/``) when
    the file lies under one, else absolute."""
    path = Path(path).absolute()
    rel: str = str(path)
    for parent in path.parents:
        if parent.name == "processed":
            rel = path.relative_to(parent.parent).as_posix()
            break
    cmd = "python -m skeleton_diffusion.apps.create_synthetic_lifting_dataset"
    if source is not None:
        cmd += f" --from-processed {source} --name {name}"
    return {"dataset_name": f"{name}_lifting", "skeleton_name": "h36m", "lifting_file": rel,
            "fps": float(fps), "source": None if source is None else str(source), "create_command": cmd}


def _write_config(path: Path, cfg: dict) -> Path:
    import yaml

    from skeleton_diffusion.utils.io import atomic_write

    out = Path(path).parent / "dataset_config.yaml"
    with atomic_write(out, "w") as fh:
        fh.write(f"# written by create_synthetic_lifting_dataset; usable as dataset={cfg['dataset_name']} (add "
                 "dataset_main_path=<datasets folder> if not ./datasets)\n")
        yaml.safe_dump(cfg, fh, sort_keys=False)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="output folder (default: datasets/processed/SyntheticLifting, or "
                   "<processed>/<NAME>/lifting beside --from-processed)")
    p.add_argument("--name", default=None, help="the file is data_lifting_<name>.npz and the set dataset=<name>_lifting "
                   "(default: synthetic, or <n> of --from-processed data_3d_<n>.npz)")
    p.add_argument("--clips-per-subject", type=int, default=6)
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--noise-px", type=float, default=1.0, help="scale of the per-joint detector noise (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-processed", default=None, help="a processed data_3d_<ds>.npz (h36m or amass layout)")
    p.add_argument("--source-fps", type=float, default=None,
                   help="frame rate of --from-processed (default: read from the dataset_config.json beside it)")
    p.add_argument("--force", action="store_true", help="replace an existing lifting file of the same name")
    a = p.parse_args(argv)
    out = a.out or default_out_dir(a.from_processed)
    name = a.name or default_name(a.from_processed)

    def build() -> Path:
        existing = lifting_file_path(out, name)
        if existing.exists() and not a.force:
            raise ConfigError(f"'{existing}' already exists; nothing was written. Pass --force to rebuild it, or "
                              "--out / --name for a new one.")
        return build_synthetic_lifting(out, clips_per_subject=a.clips_per_subject, frames=a.frames,
                                       cameras=a.cameras, noise_px=a.noise_px, seed=a.seed, source=a.from_processed,
                                       fps=a.source_fps, name=name)

    path = run_cli(build)
    print(f"wrote {path}; use it as dataset={name}_lifting")
    return path


if __name__ == "__main__":
    main()
