"""Captions and action labels for windows of the embedded ``synthetic`` dataset (text / action conditioning).

Every synthetic clip is a chain of action primitives (:data:`~.synthetic.PRIMITIVES`). The builder stores the
dominant primitive of every frame in ``frame_labels.npz`` (``{"<split>/<clip>": int8 [T]}``); datasets built
before that file existed are handled by replaying the generator with the seed and sizes recorded in
``synthetic_info.json`` (deterministic, checked against the stored positions).

* **Action label** of a window (HumanAct12-style: one label per clip): the primitive covering most frames of
  the window (ties -> the earlier one).
* **Caption** of a window: the primitives that last at least ``min_frames`` inside it, in order, consecutive
  repeats merged, written as a sentence with paraphrase variety: subject ("a person", "someone", ...), one of
  several verb phrases per primitive and connectors ("then", "and then", "after that", ...), e.g.
  ``"a person walks, then jumps"`` or ``"someone strolls forward and then hops"``. The phrase choice is drawn
  from a ``numpy`` generator seeded per window, so captions are reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError
from skeleton_diffusion.data.builders.synthetic import FPS, FRAME_LABELS_FILE, PRIMITIVES, SyntheticConfig, generate_clip

__all__ = [
    "ACTION_NAMES",
    "VERB_PHRASES",
    "primitive_runs",
    "window_action",
    "caption_from_runs",
    "window_caption",
    "load_frame_labels",
]

#: Action classes of the synthetic dataset (label index = position), the 8 primitives.
ACTION_NAMES: tuple[str, ...] = PRIMITIVES

#: Paraphrases per primitive (third person singular, present tense).
VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "idle": ("stands still", "stands in place", "waits", "stays idle", "stands around"),
    "walk": ("walks", "walks forward", "strolls", "walks ahead", "takes a few steps"),
    "run": ("runs", "jogs", "runs forward", "sprints", "runs ahead"),
    "turn_left": ("turns left", "turns to the left", "walks in a left turn", "makes a left turn"),
    "turn_right": ("turns right", "turns to the right", "walks in a right turn", "makes a right turn"),
    "crouch": ("crouches", "squats down", "crouches down", "bends the knees into a squat"),
    "wave": ("waves", "waves a hand", "waves with one arm", "raises an arm and waves"),
    "jump": ("jumps", "jumps in place", "hops", "jumps up"),
}
_SUBJECTS = ("a person", "someone", "a man", "a woman", "the person", "a figure")
_CONNECTORS = (", then ", " and then ", ", after that ", " then ", ", and ")


def primitive_runs(labels: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """Run-length encoding of per-frame labels -> ``[(label, num_frames), ...]`` in order."""
    lab = np.asarray(labels).reshape(-1)
    if lab.size == 0:
        return []
    cut = np.flatnonzero(np.diff(lab) != 0) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [lab.size]])
    return [(int(lab[s]), int(e - s)) for s, e in zip(starts, ends)]


def window_action(labels: Sequence[int] | np.ndarray, num_classes: int = len(PRIMITIVES)) -> int:
    """Label covering most frames of a window (ties -> the smaller label index)."""
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if lab.size == 0:
        raise DataFormatError("window_action: empty window.")
    return int(np.bincount(lab, minlength=num_classes).argmax())


def caption_from_runs(runs: Sequence[tuple[int, int]], rng: np.random.Generator, min_frames: int = 12) -> str:
    """Sentence for a sequence of ``(primitive index, frames)`` runs; runs shorter than ``min_frames`` are left
    out unless nothing else remains (then the longest is used); consecutive repeats are merged."""
    kept = [r for r in runs if r[1] >= min_frames] or [max(runs, key=lambda r: r[1])]
    names: list[str] = []
    for label, _ in kept:
        name = PRIMITIVES[label]
        if not names or names[-1] != name:
            names.append(name)
    subject = _SUBJECTS[rng.integers(len(_SUBJECTS))]
    text = subject + " " + VERB_PHRASES[names[0]][rng.integers(len(VERB_PHRASES[names[0]]))]
    for name in names[1:]:
        phrase = VERB_PHRASES[name][rng.integers(len(VERB_PHRASES[name]))]
        text += _CONNECTORS[rng.integers(len(_CONNECTORS))] + phrase
    return text


def window_caption(labels: Sequence[int] | np.ndarray, seed: int, min_frames: int = 12) -> str:
    """Reproducible caption of one window's per-frame labels (``seed`` picks the paraphrases)."""
    return caption_from_runs(primitive_runs(labels), np.random.default_rng(seed), min_frames)


def _replay_labels(folder: Path, positions: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    info_path = folder / "synthetic_info.json"
    if not info_path.is_file():
        raise DataFormatError(
            f"'{folder}' has neither {FRAME_LABELS_FILE} nor synthetic_info.json; rebuild it with "
            "`python -m skeleton_diffusion.apps.create_synthetic_dataset --force`."
        )
    info = json.loads(info_path.read_text())
    c = dict(info["config"])
    c["clip_seconds"] = tuple(c["clip_seconds"])
    cfg = SyntheticConfig(**c)
    rng = np.random.default_rng(int(info["seed"]))
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", cfg.n_train), ("valid", cfg.n_valid), ("test", cfg.n_test)):
        for k in range(n):
            n_frames = int(round(rng.uniform(*cfg.clip_seconds) * FPS))
            pos, labels = generate_clip(rng, n_frames)
            name = f"{split}_{k:04d}"
            stored = positions.get(split, {}).get(name)
            if stored is None or stored.shape != pos.shape or not np.allclose(stored, pos, atol=1e-4):
                raise DataFormatError(
                    f"replaying the synthetic generator (seed {info['seed']}) does not reproduce clip '{name}' of "
                    f"'{folder}'; rebuild the dataset with --force to get {FRAME_LABELS_FILE}."
                )
            out[f"{split}/{name}"] = np.array([PRIMITIVES.index(x) for x in labels], dtype=np.int8)
    return out


def load_frame_labels(
    folder: str | Path, positions: Mapping[str, Mapping[str, np.ndarray]] | None = None
) -> dict[str, np.ndarray]:
    """Per-frame primitive labels ``{"<split>/<clip>": int8 [T]}`` of a synthetic dataset folder.

    Reads ``frame_labels.npz``; when it is absent (older builds), replays the generator (needs ``positions``,
    the loaded ``positions_3d`` dict, to check that the replay reproduces the stored clips)."""
    folder = Path(folder)
    path = folder / FRAME_LABELS_FILE
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    if positions is None:
        raise DataFormatError(f"'{path}' is missing; pass the dataset positions to replay the generator.")
    return _replay_labels(folder, positions)
