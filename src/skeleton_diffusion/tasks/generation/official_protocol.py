"""MDM's HumanML3D evaluation protocol (``eval/eval_humanml.py``) as one runner: :class:`OfficialGenerationProtocol`.

Per replication (``replication_times``; modes as MDM's ``--eval_mode``: ``debug`` 5, ``wo_mm`` 20, ``mm_short``
(alias ``mm``) 5 with MultiModality):

1. ``mm_idxs``: if MultiModality runs, ``mm_num_samples // 32 + 1`` of the generated batches are drawn with
   ``rng.choice(real_num_batches, ..., replace=False)`` (sorted); ``real_num_batches = min(limit // 32 + 1, all)``
   with ``num_samples_limit`` = 1000 (so 32 batches = 1024 generations).
2. Generation: the ``eval`` loader (shuffled, batches of 32, ``drop_last``) gives captions and crop lengths; the
   generator produces one motion per row (``mm_num_repeats`` for the ``mm_idxs`` batches; repeat 0 also serves the
   main set), normalised with the dataset's Mean/Std; :func:`renormalize_for_evaluator` maps them to the
   evaluator's statistics.
3. The GT loader (``gt`` mode: crops normalised with the evaluator's statistics) is read once for R-precision /
   MM-Dist / Diversity of the "ground truth" row and once more (new shuffle and crops) as the FID reference.
4. Metrics on full batches: R-precision top-1/2/3 and MM-Dist per batch of 32; FID against the second GT pass;
   Diversity (GT first, then generated) and MultiModality from ONE ``np.random.RandomState`` stream (the same
   stream that drew ``mm_idxs``), exactly the official call order of the global legacy RNG.

Rows are kept in the official order (per batch: collate by sentence length, then the wrapper's sort by motion
length), so the random pairs of Diversity/MultiModality pick the same rows as the official code would on the
same data. The data draws (shuffles, caption choice, 1-in-3 coin, crop offset) use their own seeded streams:
the official ones run inside DataLoader workers and cannot be replayed bit for bit; the metric stream can.

Caption length (``caption_length``): MDM fixed its evaluation in Jan 2024 (issue #182): the generated set's text
length is ``tokens.index('eos/OTHER') + 1`` (``"eos"``, default, the numbers MDM asks to cite); before, it was
``len(tokens)`` = 22 with the text GRU reading the ``unk`` padding (``"padded"``, the MDM paper's table: lower
R-precision, higher MM-Dist). The GT loader always uses the sentence length.

CrossDiff's evaluation (``fid_reference="same_batches"``, ``max_batches=20``, ``diversity_rule="crossdiff"``,
see :data:`PROTOCOLS`): FID and the real row's Diversity use the GT motions of the very batches that were
generated (renormalised to the evaluator's statistics), not a second GT pass; only the first 20 batches are
generated; Diversity takes 300 pairs above 300 rows, else 10; MultiModality 30 generations x 10 pairs.

Generator interface: ``generate(captions: list[str], lengths: LongTensor [B], num_samples: int, *,
generator=None) -> [B, num_samples, T, F]`` (or ``[B, T, F]`` for one sample) in the dataset's normalisation.
"""

from __future__ import annotations

import inspect
import random as _random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skeleton_diffusion.tasks.generation.glove import GloVe, pad_tokens
from skeleton_diffusion.tasks.generation.humanml_eval_data import (
    HumanML3DItem,
    collate_order,
    length_sort_order,
    official_crop,
    read_humanml3d_split,
    renormalize_for_evaluator,
)
from skeleton_diffusion.tasks.generation.official_metrics import (
    diversity,
    generation_fid,
    matching_score,
    multimodality,
    r_precision,
    replication_statistics,
)
from skeleton_diffusion.utils.errors import ConfigError, DataFormatError, InputError

__all__ = ["EVAL_MODES", "PROTOCOLS", "OfficialGenerationProtocol", "format_official_generation_table", "protocol_from_files"]

#: MDM's ``--eval_mode`` settings: (replications, run_mm, mm_num_samples, mm_num_repeats, mm_times).
EVAL_MODES: dict[str, tuple[int, bool, int, int, int]] = {
    "debug": (5, False, 0, 0, 0), "wo_mm": (20, False, 0, 0, 0), "mm_short": (5, True, 100, 30, 10),
}  # fmt: skip
EVAL_MODES["mm"] = EVAL_MODES["mm_short"]
#: protocol presets (``task.official_protocol``): keyword arguments of :class:`OfficialGenerationProtocol`.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "mdm": {},
    "crossdiff": {"fid_reference": "same_batches", "max_batches": 20, "diversity_rule": "crossdiff",
                  "mm_num_samples": 128, "mm_num_repeats": 30, "mm_times": 10},
}  # fmt: skip
_METRICS = ("Matching Score", "R_precision", "FID", "Diversity", "MultiModality")


@dataclass
class _Batch:
    captions: list[str]
    padded: list[list[str]]
    sent_lens: list[int]
    motions: np.ndarray  # [B, max_len, F] normalised, zero padded
    lengths: list[int]


@dataclass
class _Replication:
    """Embeddings of one replication (official row order) and its metrics per loader."""

    text: dict[str, np.ndarray] = field(default_factory=dict)
    motion: dict[str, np.ndarray] = field(default_factory=dict)
    gt_fid: np.ndarray | None = None
    mm: np.ndarray | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


class OfficialGenerationProtocol:
    """The official table for a generator on a HumanML3D-format folder (see module doc).

    ``evaluator``: :class:`~skeleton_diffusion.tasks.generation.t2m_networks.OfficialT2MEvaluator`; ``glove``:
    :class:`~skeleton_diffusion.tasks.generation.glove.GloVe`; ``eval_mean``/``eval_std``: ``t2m_mean/std.npy``;
    ``data_root``: the folder with ``Mean.npy``/``Std.npy``. Sizes other than the official ones (batch 32, 1000
    samples, 300 diversity pairs) are for tests; their defaults come from ``mode``."""

    def __init__(
        self, evaluator: Any, glove: GloVe, data_root: str | Path, *, eval_mean: Any, eval_std: Any,
        split: str = "test", mode: str = "wo_mm", seed: int = 10, batch_size: int = 32,
        num_samples_limit: int | None = 1000, replication_times: int | None = None, diversity_times: int = 300,
        mm_num_samples: int | None = None, mm_num_repeats: int | None = None, mm_times: int | None = None,
        max_motion_length: int = 196, max_text_len: int = 20, min_len: int = 40, caption_length: str = "eos",
        fid_reference: str = "gt_second_pass", max_batches: int | None = None, diversity_rule: str = "fixed",
    ) -> None:  # fmt: skip
        if fid_reference not in ("gt_second_pass", "same_batches"):
            raise ConfigError(f"fid_reference must be 'gt_second_pass' (MDM) or 'same_batches' (CrossDiff); got "
                              f"{fid_reference!r}.")  # fmt: skip
        if diversity_rule not in ("fixed", "crossdiff"):
            raise ConfigError(f"diversity_rule must be 'fixed' or 'crossdiff'; got {diversity_rule!r}.")
        self.fid_reference, self.diversity_rule = fid_reference, diversity_rule
        self.max_batches = None if max_batches is None else int(max_batches)
        if mode not in EVAL_MODES:
            raise ConfigError(f"eval mode must be one of {sorted(EVAL_MODES)} (MDM's --eval_mode); got {mode!r}.")
        reps, run_mm, mm_n, mm_r, mm_t = EVAL_MODES[mode]
        if caption_length not in ("eos", "padded"):
            raise ConfigError(f"caption_length must be 'eos' (MDM after fix #182) or 'padded' (the MDM paper's "
                              f"numbers); got {caption_length!r}.")  # fmt: skip
        self.caption_length = caption_length
        self.mode, self.seed, self.batch_size = mode, int(seed), int(batch_size)
        self.replication_times = int(replication_times if replication_times is not None else reps)
        self.run_mm = run_mm
        self.mm_num_samples = int(mm_n if mm_num_samples is None else mm_num_samples) if run_mm else 0
        self.mm_num_repeats = int(mm_r if mm_num_repeats is None else mm_num_repeats) if run_mm else 0
        self.mm_times = int(mm_t if mm_times is None else mm_times) if run_mm else 0
        self.num_samples_limit, self.diversity_times = num_samples_limit, int(diversity_times)
        self.max_motion_length, self.max_text_len = int(max_motion_length), int(max_text_len)
        self.evaluator, self.glove = evaluator, glove
        root = Path(data_root)
        try:
            self.data_mean = np.load(root / "Mean.npy", allow_pickle=False)
            self.data_std = np.load(root / "Std.npy", allow_pickle=False)
        except OSError as exc:
            raise DataFormatError(f"'{root}' needs Mean.npy and Std.npy (the dataset statistics): {exc}") from exc
        self.eval_mean, self.eval_std = np.asarray(eval_mean), np.asarray(eval_std)
        self.unit_length = int(getattr(evaluator, "unit_length", 4))
        self.items: list[HumanML3DItem] = read_humanml3d_split(root, split, min_len=min_len,
                                                               max_len=max(200, self.max_motion_length + 1),
                                                               rng=_random.Random(self.seed))  # fmt: skip
        feat = self.items[0].motion.shape[1]
        for name, s in (("Mean.npy", self.data_mean), ("Std.npy", self.data_std), ("eval_mean", self.eval_mean),
                        ("eval_std", self.eval_std)):  # fmt: skip
            if s.shape != (feat,):
                raise DataFormatError(f"{name} must be [{feat}] like the motions of '{root}'; got {s.shape}.")
        if len(self.items) < self.batch_size:
            raise DataFormatError(f"'{root}' split {split!r} has {len(self.items)} usable motions; the protocol needs "
                                  f"at least one full batch of {self.batch_size}.")  # fmt: skip
        if self.run_mm and self.mm_num_samples >= len(self.items):
            raise ConfigError(f"mm_num_samples={self.mm_num_samples} must be below the {len(self.items)} items.")

    # ---------------------------------------------------------------- data
    def _batches(self, normalise: str, np_rng: np.random.RandomState, py_rng: _random.Random) -> list[_Batch]:
        """One epoch of a shuffled ``drop_last`` loader: official items (caption, crop, normalisation)."""
        mean, std = (self.eval_mean, self.eval_std) if normalise == "eval" else (self.data_mean, self.data_std)
        order = np_rng.permutation(len(self.items))
        out = []
        for b in range(len(order) // self.batch_size):
            rows = [self.items[i] for i in order[b * self.batch_size : (b + 1) * self.batch_size]]
            caps, padded, sl, mot, lens = [], [], [], [], []
            for item in rows:
                cap = py_rng.choice(item.captions)
                toks, n = pad_tokens(cap.tokens, self.max_text_len)
                crop, length, _, _ = official_crop(item.motion, np_rng, py_rng, unit_length=self.unit_length)
                m = np.zeros((self.max_motion_length, crop.shape[1]), dtype=np.float64)
                m[:length] = (crop - mean) / std
                caps.append(cap.caption), padded.append(toks), sl.append(n), mot.append(m), lens.append(length)
            out.append(_Batch(caps, padded, sl, np.stack(mot), lens))
        return out

    def _to_eval(self, motions: np.ndarray) -> np.ndarray:
        """Dataset-normalised rows -> the evaluator's normalisation (zero padding stays zero)."""
        out = renormalize_for_evaluator(motions, self.data_mean, self.data_std, self.eval_mean, self.eval_std)
        return np.where(np.any(motions != 0, axis=-1, keepdims=True), out, 0.0)

    def _embed(self, batch: _Batch, motions: np.ndarray | torch.Tensor, with_text: bool = True,
               padded_cap_len: bool = False) -> tuple[np.ndarray | None, np.ndarray]:  # fmt: skip
        """Official wrapper row order: collate by sentence length, then sort by motion length.
        ``padded_cap_len``: the text GRU reads all ``max_text_len + 2`` tokens (MDM before fix #182)."""
        cap_lens = [len(p) for p in batch.padded] if padded_cap_len else batch.sent_lens
        order = collate_order(cap_lens)
        lens = [batch.lengths[i] for i in order]
        rows = np.asarray(order)[length_sort_order(lens)]
        feats = torch.as_tensor(np.asarray(motions)[rows], dtype=torch.float32)
        motion = self.evaluator.motion_embedding(feats, torch.tensor([batch.lengths[i] for i in rows]))
        text = None
        if with_text:
            enc = [self.glove.encode_padded(batch.padded[i]) for i in rows]
            text = self.evaluator.text_embedding(torch.as_tensor(np.stack([e[0] for e in enc])),
                                                 torch.as_tensor(np.stack([e[1] for e in enc])),
                                                 torch.tensor([cap_lens[i] for i in rows]))
            text = text.cpu().numpy()
        return text, motion.cpu().numpy()

    def _generate(self, model: Any, batch: _Batch, num_samples: int, gen: torch.Generator | None) -> np.ndarray:
        lengths = torch.tensor(batch.lengths, dtype=torch.long)
        kw = {"generator": gen} if gen is not None and _accepts(model.generate, "generator") else {}
        with torch.no_grad():
            out = model.generate(list(batch.captions), lengths, num_samples, **kw)
        out = torch.as_tensor(out).detach().float().cpu()
        if out.dim() == 3 and num_samples == 1:
            out = out[:, None]
        b, f = len(batch.captions), batch.motions.shape[-1]
        if out.dim() != 4 or out.shape[0] != b or out.shape[1] != num_samples or out.shape[-1] != f:
            raise InputError(f"generator returned {tuple(out.shape)}; expected [{b}, {num_samples}, T, {f}] "
                             "(features normalised with the dataset's Mean/Std).")  # fmt: skip
        if out.shape[2] < self.max_motion_length:
            out = torch.cat([out, out.new_zeros(b, num_samples, self.max_motion_length - out.shape[2], f)], 2)
        x = out[:, :, : self.max_motion_length].numpy()
        return renormalize_for_evaluator(x, self.data_mean, self.data_std, self.eval_mean, self.eval_std)

    # ---------------------------------------------------------------- protocol
    def _replication(self, model: Any, r: int, rng: np.random.RandomState, torch_seed: int) -> _Replication:
        data_np = np.random.RandomState(self.seed * 1000 + r)
        data_py = _random.Random(self.seed * 1000 + r)
        gen_batches = self._batches("data", data_np, data_py)
        real = len(gen_batches)
        if self.num_samples_limit is not None:
            real = min(self.num_samples_limit // self.batch_size + 1, real)
        if self.max_batches is not None:
            real = min(self.max_batches, real)
        mm_idxs: set[int] = set()
        if self.mm_num_samples > 0:
            if self.mm_num_samples // self.batch_size + 1 > real:
                raise ConfigError(f"mm_num_samples={self.mm_num_samples} needs more than the {real} generated "
                                  "batches.")  # fmt: skip
            mm_idxs = set(np.sort(rng.choice(real, self.mm_num_samples // self.batch_size + 1, replace=False)))
        rep = _Replication()
        gen = torch.Generator().manual_seed(torch_seed)
        gen_text, gen_motion, mm = [], [], []
        for i, batch in enumerate(gen_batches[:real]):
            repeats = self.mm_num_repeats if i in mm_idxs else 1
            sample = self._generate(model, batch, repeats, gen)  # [B, S, T, F]
            t, m = self._embed(batch, sample[:, 0], padded_cap_len=self.caption_length == "padded")
            gen_text.append(t), gen_motion.append(m)
            if i in mm_idxs:
                for k in range(len(batch.captions)):
                    # MMGeneratedDataset and get_motion_embeddings both sort the (equal) lengths: same permutation
                    reps = np.full(repeats, batch.lengths[k])
                    first = length_sort_order(reps)
                    perm = first[length_sort_order(reps[first])]
                    feats = torch.as_tensor(sample[k][perm], dtype=torch.float32)
                    mm.append(self.evaluator.motion_embedding(feats, torch.as_tensor(reps)).cpu().numpy())
        gt_np, gt_py = np.random.RandomState(self.seed * 1000 + 500 + r), _random.Random(self.seed * 1000 + 500 + r)
        gt_text, gt_motion = zip(*(self._embed(b, b.motions) for b in self._batches("eval", gt_np, gt_py)))
        if self.fid_reference == "same_batches":  # CrossDiff: the GT of the generated batches
            fid_ref = np.concatenate([self._embed(b, self._to_eval(b.motions), with_text=False)[1]
                                      for b in gen_batches[:real]])  # fmt: skip
        else:
            fid_ref = np.concatenate([self._embed(b, b.motions, with_text=False)[1]
                                      for b in self._batches("eval", gt_np, gt_py)])  # fmt: skip
        rep.text = {"ground truth": np.concatenate(gt_text), "vald": np.concatenate(gen_text)}
        rep.motion = {"ground truth": np.concatenate(gt_motion), "vald": np.concatenate(gen_motion)}
        rep.gt_fid, rep.mm = fid_ref, (np.stack(mm) if mm else None)
        for name in ("ground truth", "vald"):
            rep.metrics[name] = {
                "Matching Score": matching_score(rep.text[name], rep.motion[name], self.batch_size),
                "R_precision": r_precision(rep.text[name], rep.motion[name], self.batch_size),
                "FID": generation_fid(fid_ref, rep.motion[name], self.batch_size),
            }
        div_rows = {"ground truth": fid_ref if self.fid_reference == "same_batches" else rep.motion["ground truth"],
                    "vald": rep.motion["vald"]}  # fmt: skip
        for name in ("ground truth", "vald"):
            times = self.diversity_times
            if self.diversity_rule == "crossdiff":
                times = 300 if len(div_rows[name]) > 300 else 10
            rep.metrics[name]["Diversity"] = diversity(div_rows[name], times, rng, self.batch_size)
        if self.run_mm:
            rep.metrics["vald"]["MultiModality"] = (multimodality(rep.mm, self.mm_times, rng)
                                                    if rep.mm is not None else 0.0)  # fmt: skip
        return rep

    def run(self, model: Any, *, keep_embeddings: bool = False) -> dict[str, Any]:
        """All replications -> ``{"replications": [{loader: {metric: value}}], "summary": {metric: {loader:
        {"mean", "conf95"}}}, "runs": {loader: [run dicts for results.summarize]}, "table": str}``."""
        rng = np.random.RandomState(self.seed)
        reps, kept = [], []
        wall = []
        for r in range(self.replication_times):
            t0 = time.time()
            rep = self._replication(model, r, rng, torch_seed=self.seed * 1000 + r)
            wall.append(time.time() - t0)
            reps.append(rep.metrics)
            if keep_embeddings:
                kept.append(rep)
        summary: dict[str, dict[str, dict[str, Any]]] = {}
        for metric in _METRICS:
            for loader in ("ground truth", "vald"):
                vals = [m[loader][metric] for m in reps if metric in m[loader]]
                if vals:
                    mean, conf = replication_statistics(vals)
                    summary.setdefault(metric, {})[loader] = {"mean": mean, "conf95": conf}
        runs = {loader: [self._run_dict(m[loader], r, wall[r]) for r, m in enumerate(reps)]
                for loader in ("ground truth", "vald")}  # fmt: skip
        out = {"replications": reps, "summary": summary, "runs": runs,
               "table": format_official_generation_table(summary)}  # fmt: skip
        if keep_embeddings:
            out["embeddings"] = kept
        return out

    def _run_dict(self, metrics: dict[str, Any], r: int, wall: float) -> dict[str, Any]:
        m = {f"R_precision_top{k + 1}": float(metrics["R_precision"][k]) for k in range(3)}
        m.update({"FID": float(metrics["FID"]), "MM_Dist": float(metrics["Matching Score"]),
                  "Diversity": float(metrics["Diversity"])})  # fmt: skip
        if "MultiModality" in metrics:
            m["MultiModality"] = float(metrics["MultiModality"])
        return {"metrics": m, "seed": self.seed, "replication": r, "num_windows": len(self.items),
                "num_samples": 1, "stats_mode": "generation/text", "wall_time_s": wall}  # fmt: skip


def format_official_generation_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The summary block that ``eval_humanml.py`` prints (``Mean: x CInterval: y``; R-precision per top-k)."""
    lines = []
    for metric, loaders in summary.items():
        lines.append(f"========== {metric} Summary ==========")
        for loader, v in loaders.items():
            mean, conf = np.atleast_1d(v["mean"]), np.atleast_1d(v["conf95"])
            if np.ndim(v["mean"]) == 0:
                lines.append(f"---> [{loader}] Mean: {float(mean[0]):.4f} CInterval: {float(conf[0]):.4f}")
            else:
                cells = "".join(f"(top {i + 1}) Mean: {mean[i]:.4f} CInt: {conf[i]:.4f};" for i in range(len(mean)))
                lines.append(f"---> [{loader}]{cells}")
    return "\n".join(lines)


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def protocol_from_files(checkpoint: str | Path, glove_dir: str | Path, meta_dir: str | Path, data_root: str | Path,
                        *, dataset: str = "t2m", device: str = "cpu", **options: Any) -> OfficialGenerationProtocol:
    """Build the runner from the official files: ``finest.tar``, the GloVe folder, ``<meta_dir>/<dataset>_mean.npy``
    / ``_std.npy`` (``t2m`` HumanML3D, ``kit`` KIT-ML) and the dataset folder."""
    from skeleton_diffusion.tasks.generation.glove import load_glove
    from skeleton_diffusion.tasks.generation.t2m_networks import (
        load_official_t2m_evaluator,
    )

    meta = Path(meta_dir)
    stats = [meta / f"{dataset}_mean.npy", meta / f"{dataset}_std.npy"]
    missing = [str(p) for p in stats if not p.is_file()]
    if missing:
        raise DataFormatError(f"evaluator statistics missing: {missing} (MDM's dataset/{dataset}_mean.npy, _std.npy).")
    if dataset == "kit":
        options.setdefault("min_len", 24)
    return OfficialGenerationProtocol(load_official_t2m_evaluator(checkpoint, device), load_glove(glove_dir), data_root,
                                      eval_mean=np.load(stats[0]), eval_std=np.load(stats[1]), **options)

