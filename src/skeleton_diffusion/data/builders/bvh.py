"""Generic BVH -> processed dataset on the AMASS-22 skeleton (Z-up, metres, target fps).

Pipeline per file:

1. :func:`parse_bvh`: any hierarchy (several roots allowed), any channel order per joint, ``End Site`` leaves
   (kept as virtual joints named ``<parent>_End``);
2. :func:`bvh_forward_kinematics`: local transform = translation (the ``OFFSET``, replaced component-wise by
   position channels when the joint has them) times the rotation composed from the rotation channels **in the
   order they are listed** (``Zrotation Xrotation Yrotation`` -> ``Rz @ Rx @ Ry``, degrees); global transforms
   are chained parent -> child;
3. resampling to the target fps **before** FK, at times ``k / fps``: every joint's rotation by quaternion slerp,
   translations (root position channels) linearly, so bone lengths stay exactly those of the file (an integer
   ratio, e.g. 120 -> 60 Hz, is plain decimation);
4. joint map to AMASS-22 (built-in ``cmu`` for the cgspeed CMU conversion, ``lafan1`` for Ubisoft LAFAN1, or a
   JSON map file ``{"<amass joint>": "<bvh joint>" | ["<bvh joint>", ...] (mean), "unit": ..., "up": ...}``;
   AMASS joints may be named as SMPL (``left_hip``) or as our skeleton (``LHip``));
5. units -> metres (``unit``: ``m``, ``cm``, ``mm``, ``inch``, ``cmu`` (= 1/0.45 inch, the CMU ASF unit kept by
   the cgspeed BVH files), a float in metres per unit, or ``auto`` = the candidate that makes the rest-pose extent
   closest to 1.7 m) and axes -> Z-up (``up='y'``: the rotation ``(x, y, z) -> (x, -z, y)``; ``'z'``: unchanged).

The dataset is written in the generic processed layout ``{split: {clip: float32 [T, 22, 3]}}`` as
``processed/<NAME>/hmp/data_3d_<name>.npz`` with ``segments_<split>.csv`` (``name,init,pred_init,pred_end``,
windows from frame 0 with stride ``obs`` = 0.5 s, every window that fits; procedure version 1) so AMASS models
can be evaluated zero-shot and new models trained. Splits: with ``split_mode='clips'`` whole files are assigned
to train/valid/test by sorted name (deterministic, ratios 80/10/10, at least one test clip); with ``'time'`` every
file is cut in time (first 70 % train, next 15 % valid, last 15 % test); ``'auto'`` uses ``time`` for fewer than
10 files; ``'test'`` puts everything into test (zero-shot evaluation only).

``skeleton='native'`` skips step 4 and keeps the files' own joints (``native_skeleton.bvh_to_native``; End Sites
dropped, optional subset), writing ``skeleton.json`` beside the data (issue 17, docs/any_skeleton.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from skeleton_diffusion.utils.errors import DataFormatError, DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_write
from skeleton_diffusion.skeletons.formats.bvh import (
    bvh_forward_kinematics,
    leading_rest_frames,
    parse_bvh,
    resolve_unit,
    to_z_up,
)
from skeleton_diffusion.data.builders.common import (
    BuildSummary,
    build_side_files_if_possible,
    split_clips,
    write_processed,
)
from skeleton_diffusion.data.segments import window_rows, write_csv
from skeleton_diffusion.data.processed import read_processed

SMPL22_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
AMASS22_NAMES = (
    "GlobalRoot", "LHip", "RHip", "Spine1", "LKnee", "RKnee", "Spine3", "LHeel", "RHeel", "Neck", "LFoot", "RFoot",
    "BMN", "LSI", "RSI", "Head", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist",
)

def _sided(**parts: str | list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for side, word in (("left", "Left"), ("right", "Right")):
        for part, pattern in parts.items():
            names = [pattern] if isinstance(pattern, str) else pattern
            out[f"{side}_{part}"] = [n.format(S=word) for n in names]
    return out


_BUILTIN_MAPS: dict[str, dict[str, list[str]]] = {
    # cgspeed CMU: Hips -> LowerBack (at the Hips) -> Spine -> Spine1 -> Neck (at Spine1) -> Neck1 -> Head.
    # LowerBack coincides with Hips, so spine1 = Spine; the collar (clavicle) joint sits at Spine1 in CMU, so
    # the SMPL-like collar is the mid-point of the clavicle bone (LeftShoulder -> LeftArm).
    "cmu": {
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": ["Spine1"], "spine3": ["Spine1", "Neck1"],
        "neck": ["Neck1"], "head": ["Head"],
        **_sided(hip="{S}UpLeg", knee="{S}Leg", ankle="{S}Foot", foot="{S}ToeBase",
                 collar=["{S}Shoulder", "{S}Arm"], shoulder="{S}Arm", elbow="{S}ForeArm", wrist="{S}Hand"),
    },
    # Ubisoft LAFAN1: Hips -> Spine -> Spine1 -> Spine2 -> Neck -> Head; {S}Shoulder is the clavicle joint.
    "lafan1": {
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": ["Spine1"], "spine3": ["Spine2"], "neck": ["Neck"],
        "head": ["Head"],
        **_sided(hip="{S}UpLeg", knee="{S}Leg", ankle="{S}Foot", foot="{S}Toe", collar="{S}Shoulder",
                 shoulder="{S}Arm", elbow="{S}ForeArm", wrist="{S}Hand"),
    },
}
BUILTIN_UNITS = {"cmu": "cmu", "lafan1": "cm"}


def builtin_map(name: str) -> dict[str, list[str]]:
    """Built-in joint map ``{smpl_name: [bvh joints]}`` for ``cmu`` or ``lafan1``."""
    if name not in _BUILTIN_MAPS:
        raise ValueError(f"unknown built-in BVH map {name!r}; choose from {sorted(_BUILTIN_MAPS)} or give a JSON file")
    return {k: list(v) for k, v in _BUILTIN_MAPS[name].items()}


def load_joint_map(spec: str | Path | Mapping) -> tuple[dict[str, list[str]], dict]:
    """``(map from SMPL-22 name -> bvh joints, options)`` from a built-in name, a JSON file or a mapping."""
    if isinstance(spec, str) and spec in _BUILTIN_MAPS:
        return builtin_map(spec), {"unit": BUILTIN_UNITS[spec], "up": "y"}
    if isinstance(spec, Mapping):
        raw = dict(spec)
        src = "<mapping>"
    else:
        path = Path(spec)
        if not path.is_file():
            raise DatasetNotPreparedError(f"joint map file not found: '{path}' (or use --map cmu / lafan1)")
        with open(path) as fh:
            raw = json.load(fh)
        src = str(path)
    options = {k: raw.pop(k) for k in ("unit", "up") if k in raw}
    alias = dict(zip(AMASS22_NAMES, SMPL22_NAMES))
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        name = alias.get(key, key)
        if name not in SMPL22_NAMES:
            raise DataFormatError(f"{src}: unknown AMASS joint {key!r}; use SMPL names {list(SMPL22_NAMES)}")
        out[name] = [value] if isinstance(value, str) else list(value)
    missing = [n for n in SMPL22_NAMES if n not in out]
    if missing:
        raise DataFormatError(f"{src}: joint map lacks {missing}")
    return out, options


def map_to_amass22(positions: np.ndarray, joint_names: Sequence[str], joint_map: Mapping[str, Sequence[str]],
                   source: str = "<bvh>") -> np.ndarray:
    """``[F, J_bvh, 3]`` -> ``[F, 22, 3]`` (each AMASS joint = one BVH joint or the mean of several)."""
    index = {n: i for i, n in enumerate(joint_names)}
    out = np.zeros((positions.shape[0], 22, 3))
    for k, name in enumerate(SMPL22_NAMES):
        srcs = joint_map[name]
        missing = [s for s in srcs if s not in index]
        if missing:
            raise DataFormatError(
                f"{source}: joint(s) {missing} (for AMASS joint '{name}') not in the BVH hierarchy; "
                f"BVH joints: {list(joint_names)}"
            )
        out[:, k] = positions[:, [index[s] for s in srcs]].mean(axis=1)
    return out


def bvh_to_amass22(
    path: str | Path, joint_map: str | Path | Mapping = "cmu", *, unit: str | float | None = None,
    up: str | None = None, fps: float = 60,
) -> tuple[np.ndarray, dict]:
    """One BVH file -> ``float32 [T, 22, 3]`` metres, Z-up, ``fps``; plus info (source fps, unit, frames)."""
    motion = parse_bvh(path)
    jmap, options = load_joint_map(joint_map)
    unit = unit if unit is not None else options.get("unit", "auto")
    up = up if up is not None else options.get("up", "y")
    scale = resolve_unit(unit, motion)
    positions = bvh_forward_kinematics(motion, fps)  # slerp of the rotation channels, then FK: rigid bones
    mapped = map_to_amass22(positions, motion.joint_names, jmap, motion.source)
    out = to_z_up(mapped * scale, up).astype(np.float32)
    info = {"source_fps": motion.fps, "metres_per_unit": scale, "source_frames": motion.frames.shape[0],
            "frames": int(out.shape[0]),
            "tpose_frames": leading_rest_frames(motion, fps=fps)}
    return out, info


# ----------------------------------------------------------------------------------------------- dataset build
def build_bvh_dataset(
    input_dir: str | Path,
    name: str,
    *,
    data_root: str | Path = "datasets",
    joint_map: str | Path | Mapping = "cmu",
    unit: str | float | None = None,
    up: str | None = None,
    fps: int = 60,
    obs_seconds: float = 0.5,
    pred_seconds: float = 2.0,
    split_mode: str = "auto",
    side_files: bool = True,
    force: bool = False,
    progress: bool = True,
    skeleton: str = "amass",
    joints: Sequence[str] | None = None,
    labels: str = "auto",
    drop_degenerate: bool = True,
    trim_tpose: bool = False,
) -> BuildSummary:
    """BVH folder (recursive ``*.bvh``) -> ``processed/<name>/hmp/data_3d_<name.lower()>.npz`` + CSVs + side files.

    ``skeleton='amass'`` maps every file onto AMASS-22 with ``joint_map``; ``'native'`` keeps the files' own
    joints (End Sites dropped, optional ``joints`` subset; files with another hierarchy are skipped with a reason)
    and writes ``skeleton.json`` beside the data. ``labels`` (``auto|folder|filename|none``): the CMD / mean-motion
    classes written to ``clip_labels.txt`` (see :func:`~.native_skeleton.clip_labels`). Every build writes
    ``dataset_config.yaml`` (a ``configs/dataset`` group). ``drop_degenerate``: joints that coincide with their
    parent in every frame are dropped (native; reported) instead of refused. ``trim_tpose``: cut a leading
    rest pose (all rotations zero) off every clip; without it a leading T-pose is only reported. A rebuild
    (``force``) is written to a temporary folder and swapped in, so no file of the old build remains."""
    from skeleton_diffusion.data.builders.native_skeleton import bvh_to_native, clip_labels, native_dataset_cfg, side_cfg, write_dataset_config, write_native_dataset
    from skeleton_diffusion.data.builders.common import check_windows_nonempty, handle_degenerate, staged_dataset_dir

    if skeleton not in ("amass", "native"):
        raise ValueError(f"skeleton must be 'amass' or 'native', got {skeleton!r}")
    native = skeleton == "native"
    input_dir = Path(input_dir)
    final_dir = Path(data_root) / "processed" / name / "hmp"
    npz_name = f"data_3d_{name.lower()}.npz"
    summary = BuildSummary(name, output=str(final_dir / npz_name))
    obs, pred = int(round(obs_seconds * fps)), int(round(pred_seconds * fps))

    if (final_dir / npz_name).is_file() and not force and (not native or (final_dir / "skeleton.json").is_file()):
        summary.reused = True
        positions = read_processed(final_dir / npz_name)
        _write_windows(final_dir, positions, summary, obs, pred)
        return summary
    if not input_dir.is_dir():
        raise DatasetNotPreparedError(f"BVH input folder '{input_dir}' does not exist (or is not a folder); "
                                      "--input must be a folder searched recursively for *.bvh files")
    files = sorted(input_dir.rglob("*.bvh"))
    if not files:
        raise DatasetNotPreparedError(f"no .bvh files found under '{input_dir}' (searched recursively); "
                                      "--input must be a folder holding BVH motion files")
    clips: dict[str, np.ndarray] = {}
    infos: dict[str, dict] = {}
    sources: dict[str, str] = {}
    native_def: tuple[list[str], list[int]] | None = None
    for f in tqdm(files, desc="BVH files", unit="file", disable=not progress):
        summary.sequences_read += 1
        clip = f.relative_to(input_dir).with_suffix("").as_posix().replace("/", "__")
        try:
            if native:
                arr, info, jn, jp = bvh_to_native(f, joints=joints, unit=unit, up=up, fps=fps)
                if native_def is None:
                    native_def = (jn, jp)
                elif (jn, jp) != native_def:
                    summary.skip(str(f), f"different hierarchy: joints {jn} differ from the first file's "
                                         f"{native_def[0]} (use --joints to keep a common subset)")
                    continue
            else:
                arr, info = bvh_to_amass22(f, joint_map, unit=unit, up=up, fps=fps)
        except DataFormatError as exc:
            summary.skip(str(f), f"unreadable: {exc}")
            continue
        start = info.pop("tpose_frames", 0)
        if start:
            if trim_tpose:
                arr = arr[start:]
                summary.notes.append(f"T-pose: trimmed the first {start} frame(s) of {clip} (rest pose)")
            else:
                summary.notes.append(f"T-pose: {clip} starts with {start} rest-pose frame(s); kept "
                                     "(--trim-tpose cuts them)")
            info["tpose_frames"] = start
        clips[clip], infos[clip] = arr, info
        sources[clip] = f.relative_to(input_dir).as_posix()
        if len(arr) < obs + pred:
            summary.notes.append(f"note: {clip} has {len(arr)} frames < one window ({obs + pred})")
    if not clips:
        reasons = "; ".join(f"{Path(item).name}: {why}" for item, why in summary.skipped[:3])
        raise DataFormatError(f"none of the {len(files)} BVH files under '{input_dir}' could be read: {reasons}"
                              + (" ..." if len(summary.skipped) > 3 else ""))
    if native:
        assert native_def is not None
        kept, parents = handle_degenerate(clips, native_def[0], native_def[1], summary, drop=drop_degenerate,
                                          source=str(input_dir))
        names = [native_def[0][k] for k in kept]
        clips = {c: a[:, kept] for c, a in clips.items()}
    else:
        from skeleton_diffusion.data.builders.common import degenerate_joints
        from skeleton_diffusion.skeletons.lookup import get_skeleton

        amass_parents = get_skeleton("amass").parents
        bad = degenerate_joints(clips.values(), amass_parents)
        if bad:
            pairs = ", ".join(f"{SMPL22_NAMES[j]} on {SMPL22_NAMES[amass_parents[j]]}" for j in bad)
            raise DataFormatError(
                f"{input_dir}: with joint map {joint_map if not isinstance(joint_map, Mapping) else 'custom'!s}, "
                f"AMASS joint(s) coincide with their parent in every frame ({pairs}): a zero-length bone of the "
                "fixed AMASS-22 skeleton. Map these joints onto distinct BVH joints (a JSON --map), or build with "
                "--skeleton native, which drops duplicate joints")
    ranges = split_clips(list(clips), {k: len(v) for k, v in clips.items()}, split_mode)
    positions = {s: {c: clips[c][a:b].copy() for c, (a, b) in r.items()} for s, r in ranges.items()}
    with staged_dataset_dir(final_dir) as out_dir:
        with atomic_write(out_dir / "build_info.json", "w") as fh:
            json.dump({"fps": fps, "skeleton": skeleton,
                       "joint_map": None if native else (str(joint_map) if not isinstance(joint_map, Mapping)
                                                         else "custom"),
                       "split_mode": split_mode, "files": infos, "ranges": ranges, "windows_version": 1}, fh, indent=1)
        if native:
            from skeleton_diffusion.skeletons.skeleton import Skeleton

            sk_native = Skeleton.from_hierarchy(name.lower(), names, parents,
                                                description=f"native BVH skeleton of {input_dir.name}")
            _count_windows(positions, summary, obs, pred)
            check_windows_nonempty(summary, positions, obs + pred, str(input_dir))
            write_native_dataset(out_dir, name, positions, sk_native, clip_labels(sources, labels), summary,
                                 fps=fps, obs=obs, pred=pred, side_files=side_files)
        else:
            _count_windows(positions, summary, obs, pred)
            check_windows_nonempty(summary, positions, obs + pred, str(input_dir))
            write_processed(out_dir / npz_name, positions, skeleton="amass")
            _write_windows(out_dir, positions, summary, obs, pred)
            cfg = native_dataset_cfg(name, fps, 22, skeleton_file=False)
            write_dataset_config(out_dir, cfg)
            if side_files and summary.windows.get("test", 0) > 0:
                build_side_files_if_possible(name.lower(), out_dir, out_dir, summary, force=True,
                                             dataset_cfg=side_cfg(cfg, out_dir))
                from skeleton_diffusion.data.side_files import build_side_files

                build_side_files(name.lower(), out_dir, out_dir, force=False, dataset_cfg=side_cfg(cfg, out_dir),
                                 mmapd=True)  # mmapd_GT.csv: the APDE reference
    summary.csv_checks["test"] = (f"generated: {summary.windows.get('test', 0)} windows in "
                                  f"{final_dir / 'segments_test.csv'}")
    return summary


def _count_windows(positions: Mapping[str, Mapping[str, np.ndarray]], summary: BuildSummary, obs: int,
                   pred: int) -> None:
    for split, clips_of in positions.items():
        summary.windows[split] = len(window_rows([(c, len(a)) for c, a in clips_of.items()], obs, pred, stride=obs))


def _write_windows(out_dir: Path, positions: Mapping[str, Mapping[str, np.ndarray]], summary: BuildSummary,
                   obs: int, pred: int) -> None:
    summary.clips_written = sum(len(v) for v in positions.values())
    summary.frames = sum(len(a) for v in positions.values() for a in v.values())
    for split, clips_of in positions.items():
        rows = window_rows([(c, len(a)) for c, a in clips_of.items()], obs, pred, stride=obs)
        write_csv(out_dir / f"segments_{split}.csv", ("name", "init", "pred_init", "pred_end"), rows)
        summary.windows[split] = len(rows)


def bvh_dataset_cfg(name: str, fps: int = 60) -> dict:
    """A ``configs/dataset``-style config for an AMASS-22 BVH dataset (as written to ``dataset_config.yaml``)."""
    from skeleton_diffusion.data.builders.native_skeleton import native_dataset_cfg

    return native_dataset_cfg(name, fps, 22, skeleton_file=False)
