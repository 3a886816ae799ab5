"""AMASS / AMASS-MANO: SMPL+H G ``*.tar.bz2`` archives -> zarr intermediates -> ``data_3d_amass.npz``.

Clip identity follows the official pipeline exactly, so the shipped ``segments_test.csv`` addresses the same
windows: within each archive, ``file_idx`` is the position of a member among the *successfully processed*
``*.npz`` members in **tar-member order**. The skip rules are the official ones:

* basename not ending in ``.npz`` or starting with ``.`` -> ignored (not counted);
* no ``mocap_framerate`` / ``mocap_frame_rate`` key (``shape.npz``, ``*_stagei.npz``) -> skipped;
* gender: ``str(npz['gender'])``; the literal ``"b'female'"`` becomes ``female``; anything else than
  ``male`` / ``female`` (e.g. ``"b'male'"``, ``neutral``) -> skipped (the official body-model lookup fails);
* any other error while reading / posing the file (missing keys, wrong shapes) -> skipped.

``frame_multiplier = int(round(framerate / fps))`` (numpy round-half-to-even; 100 Hz -> every 2nd frame, i.e.
50 Hz; 250 Hz -> every 4th, 62.5 Hz, as in the official data) and the joints are decimated ``[::frame_multiplier]``.
Joints come from our SMPL+H joint FK (:mod:`.smplh_fk`), 16 betas, all 52 joints kept in zarr, metres, Z-up,
global translation included. Better than the official script: every archive is extracted into
``<name>.partial/`` and renamed when complete (interrupted runs redo only unfinished archives), and the tar
member path of every ``file_idx`` is recorded (``extraction_info.json`` per archive and ``clip_sources.json``
next to the npz) and checked against the ``file`` column of the test CSV.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr
from tqdm.auto import tqdm

from skeleton_diffusion.utils.errors import DatasetNotPreparedError
from skeleton_diffusion.utils.io import atomic_write
from skeleton_diffusion.data.builders.common import (
    BuildSummary,
    build_side_files_if_possible,
    check_csv_windows,
    log,
    official_train_window_count,
    record_csv_check,
    write_processed,
)
from skeleton_diffusion.data.processed import read_processed
from skeleton_diffusion.data.builders.smplh_fk import JointBodyModel, load_body_model

AMASS_TRAIN = ["ACCAD", "BMLhandball", "BMLmovi", "BMLrub", "CMU", "EKUT", "EyesJapanDataset", "KIT", "PosePrior",
               "TCDHands", "TotalCapture"]
AMASS_VALID = ["HumanEva", "HDM05", "SFU", "MoSh"]
AMASS_TEST = ["DFaust", "DanceDB", "GRAB", "HUMAN4D", "SOMA", "SSM", "Transitions"]
AMASS_SPLITS = {"train": AMASS_TRAIN, "valid": AMASS_VALID, "test": AMASS_TEST}

NUM_BETAS = 16
ZARR_JOINTS = 52
OBS, PRED = 30, 120  # frames at 60 fps (task hmp)
RECORD_NAME = "extraction_info.json"
EXTRACTION_VERSION = 1


class _Skip(Exception):
    """A member the official pipeline skips (reason in the message)."""


def archive_stem(path: str | Path) -> str:
    """Dataset name of an archive, as the official script derives it (``name.split('.')[0]``)."""
    return Path(path).name.split(".")[0]


def load_gendered_models(models_dir: str | Path, num_betas: int = NUM_BETAS) -> dict[str, JointBodyModel]:
    """``{male, female}`` joint models from ``<models_dir>/smplh/<gender>/model.npz``."""
    models_dir = Path(models_dir)
    return {g: load_body_model(models_dir / "smplh" / g / "model.npz", num_betas) for g in ("male", "female")}


def _framerate(bdata: Any) -> float | None:
    for key in ("mocap_framerate", "mocap_frame_rate"):
        if key in bdata.files:
            return float(np.asarray(bdata[key]))
    return None


def official_gender(value: Any) -> str:
    """``str(npz['gender'])`` with the official ``"b'female'" -> female`` patch (everything else unchanged)."""
    # numpy 1.x (official environment) renders a 0-d bytes array as "b'female'" and a 0-d str array as its text;
    # numpy 2 renders them differently, so reproduce the numpy 1.x string explicitly.
    arr = np.asarray(value)
    item = arr.item() if arr.shape == () else None
    gender = item if isinstance(item, str) else str(item) if isinstance(item, bytes) else str(value)
    return "female" if gender == "b'female'" else gender


def process_npz(
    bdata: Any, models: dict[str, JointBodyModel], target_fps: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Joints ``[T', 52, 3]`` float32 (metres, with translation) and trans ``[T', 3]`` of one AMASS npz.

    Raises ``_Skip`` with the reason for the files the official pipeline skips.
    """
    framerate = _framerate(bdata)
    if framerate is None:
        raise _Skip("no framerate: neither 'mocap_framerate' nor 'mocap_frame_rate' (shape-only file)")
    gender = official_gender(bdata["gender"])
    if gender not in models:
        raise _Skip(f"bad gender: {gender!r} (official body-model lookup fails for it)")
    fps = framerate if target_fps == -1 else target_fps
    multiplier = int(np.round(framerate / fps))
    if multiplier < 1:
        raise _Skip(f"error: framerate {framerate} gives frame_multiplier {multiplier}")
    poses, trans = np.asarray(bdata["poses"]), np.asarray(bdata["trans"])
    betas = np.asarray(bdata["betas"]).reshape(-1)[:NUM_BETAS]
    model = models[gender]
    if poses.ndim != 2 or poses.shape[1] != 3 * model.num_joints or trans.shape != (poses.shape[0], 3):
        raise _Skip(f"error: poses {poses.shape} / trans {trans.shape} do not fit a {model.num_joints}-joint model")
    if betas.shape[0] != model.num_betas:
        raise _Skip(f"error: {betas.shape[0]} betas, the body model uses {model.num_betas}")
    # FK is per frame, so posing only the kept frames equals posing all and decimating (official order).
    joints = model.forward(poses[::multiplier], trans[::multiplier], betas, device=device)
    info = {"framerate": framerate, "frame_multiplier": multiplier, "gender": gender, "frames": int(joints.shape[0])}
    return joints[:, :ZARR_JOINTS].astype(np.float32), trans[::multiplier].astype(np.float32), info


def read_extraction_record(archive_dir: str | Path) -> dict | None:
    path = Path(archive_dir) / RECORD_NAME
    if not path.is_file():
        return None
    with open(path) as fh:
        return json.load(fh)


def is_extracted(archive_dir: str | Path) -> bool:
    """Complete = our record exists, or an official-made folder with the three zarr arrays."""
    archive_dir = Path(archive_dir)
    if (archive_dir / RECORD_NAME).is_file():
        return True
    return all((archive_dir / f).exists() for f in ("poses.zarr", "trans.zarr", "poses_index.zarr"))


def extract_archive(
    tar_path: str | Path,
    out_root: str | Path,
    models: dict[str, JointBodyModel],
    *,
    target_fps: int = 60,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Extract one archive into ``<out_root>/<name>/{poses,trans,poses_index}.zarr`` (+ ``extraction_info.json``).

    Already-complete archives are skipped; an unfinished ``<name>.partial`` is discarded and redone.
    Returns the extraction record (members kept with their ``file_idx``, members skipped with reasons).
    """
    tar_path = Path(tar_path)
    name = archive_stem(tar_path)
    final = Path(out_root) / name
    if is_extracted(final):
        record = read_extraction_record(final)
        return record if record is not None else {"dataset": name, "members": None, "skipped": [], "reused": True}
    partial = Path(out_root) / f"{name}.partial"
    if partial.exists():
        log.info("discarding unfinished extraction %s", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    # zarr v2 format, as written by the official pipeline (zarr 2.x), so either tool reads the other's output.
    z_poses = zarr.open(str(partial / "poses.zarr"), mode="w", shape=(0, ZARR_JOINTS, 3),
                        chunks=(1000, ZARR_JOINTS, 3), dtype=np.float32, zarr_format=2)
    z_trans = zarr.open(str(partial / "trans.zarr"), mode="w", shape=(0, 3), chunks=(1000, 3), dtype=np.float32,
                        zarr_format=2)
    z_index = zarr.open(str(partial / "poses_index.zarr"), mode="w", shape=(0, 2), chunks=(1000, 2), dtype=np.int64,
                        zarr_format=2)
    members: list[dict] = []
    skipped: list[dict] = []
    cursor = 0
    with tarfile.open(tar_path, "r|*") as tar:
        for member in tqdm(tar, desc=f"{name} members", unit="file", disable=not progress, leave=False):
            base = Path(member.name).name
            if not member.isfile() or not base.endswith(".npz") or base.startswith("."):
                continue
            try:
                fh = tar.extractfile(member)
                if fh is None:
                    raise _Skip("error: cannot read member")
                with np.load(io.BytesIO(fh.read())) as bdata:
                    joints, trans, info = process_npz(bdata, models, target_fps, device)
            except _Skip as exc:
                skipped.append({"member": member.name, "reason": str(exc)})
                log.warning("%s: skipping '%s': %s", name, member.name, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - the official pipeline skips any failing file too
                skipped.append({"member": member.name, "reason": f"error: {type(exc).__name__}: {exc}"})
                log.warning("%s: skipping '%s': %s", name, member.name, exc)
                continue
            z_poses.append(joints, axis=0)
            z_trans.append(trans, axis=0)
            z_index.append(np.array([[cursor, cursor + joints.shape[0]]], dtype=np.int64), axis=0)
            cursor += joints.shape[0]
            members.append({"file_idx": len(members), "member": member.name, **info})
    record = {
        "version": EXTRACTION_VERSION,
        "dataset": name,
        "archive": tar_path.name,
        "target_fps": target_fps,
        "num_betas": NUM_BETAS,
        "frames": cursor,
        "members": members,
        "skipped": skipped,
    }
    with atomic_write(partial / RECORD_NAME, "w") as fh:
        json.dump(record, fh, indent=1)
    partial.rename(final)
    return record


def find_archive_dir(name: str, zarr_roots: Sequence[Path]) -> Path | None:
    for root in zarr_roots:
        if is_extracted(root / name):
            return root / name
    return None


def assemble_positions(
    datasets: Sequence[str], zarr_roots: Sequence[Path], num_joints: int, summary: BuildSummary, progress: bool = True
) -> tuple[dict, dict]:
    """``{dataset: {file_idx: float32 [T, num_joints, 3]}}`` (int keys) and ``{dataset: {file_idx: member}}``."""
    positions: dict[str, dict[int, np.ndarray]] = {}
    sources: dict[str, dict[int, str | None]] = {}
    missing = []
    for name in tqdm(datasets, desc="assembling", unit="dataset", disable=not progress, leave=False):
        folder = find_archive_dir(name, zarr_roots)
        if folder is None:
            missing.append(name)
            summary.skipped.append((name, "not extracted"))
            continue
        z_poses = zarr.open(str(folder / "poses.zarr"), mode="r")
        z_index = zarr.open(str(folder / "poses_index.zarr"), mode="r")
        index = np.asarray(z_index[:])
        poses = np.asarray(z_poses[:])
        record = read_extraction_record(folder)
        member_of = {m["file_idx"]: m["member"] for m in record["members"]} if record else {}
        positions[name] = {}
        sources[name] = {}
        for file_idx, (i0, i1) in enumerate(index):
            positions[name][file_idx] = np.ascontiguousarray(poses[i0:i1, :num_joints], dtype=np.float32)
            sources[name][file_idx] = member_of.get(file_idx)
            summary.frames += int(i1 - i0)
            summary.clips_written += 1
    if missing:
        log.warning("datasets not extracted (left out of the npz): %s (zarr roots %s)", missing,
                    [str(r) for r in zarr_roots])
    return positions, sources


def check_amass_csv(positions: dict, sources: dict | None, csv_path: Path, pred: int = PRED) -> tuple[int, int, list[str]]:
    """Every CSV row: clip present, ``basename(member) == file + '.npz'`` when the member is known, window fits."""

    def length_of(row: dict[str, str]) -> int | None:
        clips = positions.get(row["dataset"])
        idx = int(row["file_idx"])
        if clips is None or idx not in clips:
            return None
        member = (sources or {}).get(row["dataset"], {}).get(idx)
        if member is not None and Path(member).name != row["file"] + ".npz":
            return -1  # identity mismatch: reported as a window that does not fit in a clip of length -1
        return len(clips[idx])

    return check_csv_windows(
        csv_path,
        length_of,
        lambda r: int(r["pred_init"]) - OBS,
        lambda r: int(r["pred_init"]) + pred - 1,
        lambda r: f"{r['dataset']}/{r['file_idx']} ({r['file']})",
    )


def build_amass(
    data_root: str | Path = "datasets",
    *,
    include_hands: bool = False,
    datasets: Sequence[str] | None = None,
    fps: int = 60,
    device: str = "cpu",
    if_extract_zip: bool = False,
    side_files: bool = True,
    force: bool = False,
    progress: bool = True,
) -> BuildSummary:
    """Full AMASS pipeline (see module doc). Paths follow the official layout under ``data_root``."""
    data_root = Path(data_root)
    name = "AMASS-MANO" if include_hands else "AMASS"
    num_joints = 52 if include_hands else 22
    raw_dir = data_root / "raw" / "AMASS"
    zarr_root = data_root / "annotations" / name / "dataset"
    other = data_root / "annotations" / ("AMASS" if include_hands else "AMASS-MANO") / "dataset"
    processed_dir = data_root / "processed" / name / "hmp"
    annotations_dir = data_root / "annotations" / name / "hmp"
    out_path = processed_dir / "data_3d_amass.npz"
    summary = BuildSummary(name, output=str(out_path))

    if if_extract_zip:
        if datasets is None:
            found = sorted(p for p in raw_dir.glob("*.tar.bz2")) if raw_dir.is_dir() else []
            archives = [archive_stem(p) for p in found]
        else:
            archives = list(datasets)
        if not archives:
            raise DatasetNotPreparedError(f"No AMASS archives (*.tar.bz2) found in '{raw_dir}'.")
        models: dict[str, JointBodyModel] | None = None
        newly_extracted = []
        for arch in tqdm(archives, desc="AMASS archives", unit="archive", disable=not progress):
            tar_path = raw_dir / f"{arch}.tar.bz2"
            done = find_archive_dir(arch, [zarr_root, other])  # both variants store 52 joints: reuse either
            if done is not None:
                record = read_extraction_record(done) or {}
                if record.get("target_fps", fps) != fps:
                    log.warning("%s was extracted at %s fps, not %s: delete %s to re-extract", arch,
                                record.get("target_fps"), fps, done)
            elif not tar_path.is_file():
                summary.skip(arch, f"missing archive: {tar_path}")
                continue
            else:
                if models is None:
                    models = load_gendered_models(data_root / "annotations" / "AMASS" / "bodymodels")
                record = extract_archive(tar_path, zarr_root, models, target_fps=fps, device=device,
                                         progress=progress)
                newly_extracted.append(arch)
            if record.get("members") is not None:
                summary.sequences_read += len(record["members"]) + len(record["skipped"])
                for s in record["skipped"]:
                    summary.skipped.append((f"{arch}:{s['member']}", s["reason"]))

    split_lists = [*AMASS_TRAIN, *AMASS_VALID, *AMASS_TEST]
    if if_extract_zip and newly_extracted and out_path.is_file() and not force:
        log.info("archives %s newly extracted: rebuilding %s", newly_extracted, out_path)
        force = True
    if out_path.is_file() and not force:
        summary.reused = True
        positions = read_processed(out_path)
        sources_path = processed_dir / "clip_sources.json"
        sources = None
        if sources_path.is_file():
            with open(sources_path) as fh:
                sources = {d: {int(k): v for k, v in m.items()} for d, m in json.load(fh).items()}
        summary.clips_written = sum(len(v) for v in positions.values())
        summary.frames = sum(len(a) for v in positions.values() for a in v.values())
    else:
        positions, sources = assemble_positions(split_lists, [zarr_root, other], num_joints, summary, progress)
        if not positions:
            raise DatasetNotPreparedError(
                f"No extracted AMASS archives under '{zarr_root}'. Run "
                "`python -m skeleton_diffusion.apps.create_amass_dataset --if_extract_zip` first."
            )
        write_processed(out_path, positions, skeleton="amass-mano" if include_hands else "amass")
        with atomic_write(processed_dir / "clip_sources.json", "w") as fh:
            json.dump({d: {str(k): v for k, v in m.items()} for d, m in sources.items()}, fh, indent=0)

    for split, names in AMASS_SPLITS.items():
        if split == "test":
            continue
        lengths = [len(a) for n in names for a in positions.get(n, {}).values()]
        summary.windows[f"{split} (stride 1)"] = official_train_window_count(lengths, OBS + PRED)
    csv_path = annotations_dir / "segments_test.csv"
    if csv_path.is_file():
        record_csv_check(summary, "test", check_amass_csv(positions, sources, csv_path), csv_path)
        if side_files and summary.csv_ok:
            build_side_files_if_possible(name.lower(), processed_dir, annotations_dir, summary, force=force or not summary.reused)
        elif side_files:
            summary.notes.append("side files NOT built: the test CSV does not match the processed data")
    else:
        summary.csv_checks["test"] = f"not checked: {csv_path} missing (python -m skeleton_diffusion.apps.fetch_annotations)"
    return summary

