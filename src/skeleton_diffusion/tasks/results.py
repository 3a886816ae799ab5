"""Result files and tables: ``results.json``, ``results.csv``, ``results.md`` and a terminal table.

Metrics keep their official names (ADE, FDE, MMADE, MMFDE, APD, APDE, CMD, MAE, StretchMean, StretchRMSE,
JitterMean, JitterRMSE, FID). With several seeds each value is reported as mean and standard deviation
(ddof=1) over the runs; the per-seed values are kept in the JSON. Each metric also gets ``conf95`` =
``1.96 * std(ddof=0) / sqrt(R)``, the 95% interval ("CInterval") that text-to-motion tables print.

Files are written atomically (``skeleton_diffusion.utils.io.atomic_write``).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from skeleton_diffusion.utils.errors import ConfigError, DataFormatError
from skeleton_diffusion.utils.io import atomic_write
from skeleton_diffusion.tasks.hmp.evaluator import aggregate_seeds

__all__ = [
    "METRIC_UNITS",
    "summarize",
    "format_table",
    "format_official_table",
    "write_results",
    "load_results",
    "RESULT_FILES",
    "ResultsTarget",
    "results_target",
    "options_tag",
]

RESULT_FILES = ("results.json", "results.csv", "results.md")

METRIC_UNITS: dict[str, str] = {
    "ADE": "m", "FDE": "m", "MMADE": "m", "MMFDE": "m", "APD": "m", "APDE": "m",
    "CMD": "m*frames", "MAE": "deg", "StretchMean": "% limb", "StretchRMSE": "% limb",
    "JitterMean": "% limb", "JitterRMSE": "% limb", "FID": "",
}  # fmt: skip
# lifting (evaluation/lifting_protocol.py)
METRIC_UNITS.update({"MPJPE": "mm", "PMPJPE": "mm", "NMPJPE": "mm", "MPJPE_bestK": "mm", "MPJPE_meanK": "mm",
                     "MPJVE": "mm/frame", "BoneStd": "mm", "Asymmetry": "mm", "MeanPose_MPJPE": "mm",
                     "MPJPE_action_avg": "mm", "PMPJPE_action_avg": "mm", "Asymmetry_GT": "mm",
                     "BoneStd_GT": "mm"})
# generation (evaluation/generation_protocol.py): evaluator-embedding units
METRIC_UNITS.update({"R_precision_top1": "", "R_precision_top2": "", "R_precision_top3": "", "MM_Dist": "",
                     "Diversity": "", "MultiModality": "", "Accuracy": ""})
_DIRECTION = {"APD": "higher is more diverse"}


def _as_runs(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    runs = [results] if isinstance(results, Mapping) else list(results)
    if not runs:
        raise ConfigError("no evaluation result given.")
    for r in runs:
        if "metrics" not in r:
            raise DataFormatError("each result must be an evaluate() output with a 'metrics' dict.")
        if not r["metrics"]:
            raise DataFormatError("a result holds no metric values; refusing to write empty result files.")
    return runs


def summarize(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    checkpoint: str | None = None,
    seeds: Sequence[int | None] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One JSON-serialisable summary of one or several runs (one per seed) of the same evaluation."""
    runs = _as_runs(results)
    windows = {int(r.get("num_windows", -1)) for r in runs}
    if len(windows) > 1:
        raise DataFormatError(f"runs evaluated different numbers of windows {sorted(windows)}; not aggregating.")
    if seeds is None:
        seeds = [r.get("seed") for r in runs]
    if len(seeds) != len(runs):
        raise ConfigError(f"{len(seeds)} seeds given for {len(runs)} runs.")
    agg = aggregate_seeds(runs)
    summary: dict[str, Any] = {
        "dataset": dataset,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "seeds": list(seeds),
        "num_runs": len(runs),
        "num_windows": windows.pop(),
        "num_samples": runs[0].get("num_samples"),
        "stats_mode": runs[0].get("stats_mode"),
        "wall_time_s": float(sum(float(r.get("wall_time_s", 0.0)) for r in runs)),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {m: {**v, "conf95": _conf95(v["values"]), "unit": METRIC_UNITS.get(m, "")}
                    for m, v in agg.items()},
    }
    if extra:
        summary["extra"] = dict(extra)
    return summary


def _conf95(values: Sequence[float]) -> float:
    """The official "CInterval" of published text-to-motion tables: ``1.96 * std(ddof=0) / sqrt(R)``."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    return float(1.96 * v.std() / np.sqrt(len(v)))


def _fmt(value: float, std: float | None, n: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.4f} ± {std:.4f}" if n > 1 and std is not None else f"{value:.4f}"


def format_table(summary: Mapping[str, Any]) -> str:
    """Readable fixed-width table (Metric | Value | Unit) of a :func:`summarize` output."""
    rows = [("Metric", "Value" + (" (mean ± std)" if summary.get("num_runs", 1) > 1 else ""), "Unit")]
    for m, v in summary["metrics"].items():
        rows.append((m, _fmt(v["mean"], v.get("std"), v.get("n", 1)), v.get("unit", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [sep]
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            lines.append(sep.replace("-", "="))
    lines.append(sep)
    head = (
        f"{summary['dataset']} | {summary.get('stats_mode')} | {summary['num_windows']} windows | "
        f"S={summary.get('num_samples')} | seeds {summary['seeds']}"
    )
    return head + "\n" + "\n".join(lines)


def format_official_table(metrics: Mapping[str, float]) -> str:
    """The official console layout: one grid row ``total`` with columns ADE | FDE | MAE | MMADE | MMFDE |
    APDE | APD | CMD | BodyR-mean | BodyR-RMSE (4 decimals; BodyR-* = "Stretch | Jitter" rounded to 3), followed
    by one ``Total <metric>: <value:.4f>`` line per metric. ``metrics``: ``{name: float}`` (one run)."""
    cols = ["ADE", "FDE", "MAE", "MMADE", "MMFDE", "APDE", "APD", "CMD", "BodyR-mean", "BodyR-RMSE"]
    cells = {c: f"{metrics[c]:.4f}" for c in cols if c in metrics}

    def pair(a: str, b: str) -> str:
        return f"{round(metrics[a], 3)}  |  {round(metrics[b], 3)}" if a in metrics and b in metrics else ""

    cells["BodyR-mean"] = pair("StretchMean", "JitterMean")
    cells["BodyR-RMSE"] = pair("StretchRMSE", "JitterRMSE")
    header, row = ["Metric"] + cols, ["total"] + [cells.get(c, "") for c in cols]
    widths = [max(len(h), len(r)) for h, r in zip(header, row)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    lines = [sep, line(header), sep.replace("-", "="), line(row), sep]
    lines += [f"Total {m}: {v:.4f}" for m, v in metrics.items()]
    return "\n".join(lines)


def _csv_text(summary: Mapping[str, Any]) -> str:
    header = ["dataset", "checkpoint", "seeds", "num_windows", "num_samples", "stats_mode", "wall_time_s"]
    row: list[Any] = [
        summary["dataset"], summary["checkpoint"] or "", ";".join(str(s) for s in summary["seeds"]),
        summary["num_windows"], summary["num_samples"], summary["stats_mode"], f"{summary['wall_time_s']:.3f}",
    ]  # fmt: skip
    for m, v in summary["metrics"].items():
        header += [m, f"{m}_std"]
        row += [repr(float(v["mean"])), repr(float(v["std"]))]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerow(row)
    return buf.getvalue()


def _md_text(summary: Mapping[str, Any]) -> str:
    multi = summary["num_runs"] > 1
    lines = [
        f"# Evaluation results: {summary['dataset']}",
        "",
        f"- checkpoint: `{summary['checkpoint']}`",
        f"- stats mode: {summary['stats_mode']}, samples per window: {summary['num_samples']}",
        f"- windows: {summary['num_windows']}",
        f"- seeds: {', '.join(str(s) for s in summary['seeds'])}",
        f"- wall time: {summary['wall_time_s']:.1f} s",
        f"- created: {summary['created_utc']}",
        "",
        f"| Metric | {'Mean ± std' if multi else 'Value'} | Unit |",
        "|---|---|---|",
    ]
    for m, v in summary["metrics"].items():
        note = f" ({_DIRECTION[m]})" if m in _DIRECTION else ""
        lines.append(f"| {m} | {_fmt(v['mean'], v['std'], v['n'])} | {v['unit']}{note} |")
    lines += ["", "ADE/FDE/MMADE/MMFDE/APD/APDE: metres (L2 of the flattened pose); MAE: degrees; "
              "Stretch*/Jitter*: percent of the GT limb length; CMD: metre-frames."]  # fmt: skip
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ResultsTarget:
    """Where one evaluation writes: ``folder`` (``results.json``, ``results.csv``, ``results.md``), or, when the user
    named a ``*.json`` file, exactly that one file (``json_file``)."""

    folder: Path
    json_file: Path | None = None

    def paths(self) -> dict[str, Path]:
        if self.json_file is not None:
            return {"json": self.json_file}
        return {"json": self.folder / RESULT_FILES[0], "csv": self.folder / RESULT_FILES[1],
                "md": self.folder / RESULT_FILES[2]}

    def sub(self, name: str) -> "ResultsTarget":
        """The target of one part (e.g. one occlusion type): ``<folder>/<name>/`` or ``<stem>_<name>.json``."""
        if self.json_file is not None:
            return ResultsTarget(self.folder, self.json_file.with_name(f"{self.json_file.stem}_{name}.json"))
        return ResultsTarget(self.folder / name)

    def check_free(self, overwrite: bool = False) -> None:
        """Refuse (:class:`ConfigError`) when a result already exists here and ``overwrite`` is false."""
        if overwrite:
            return
        taken = [p for p in self.paths().values() if p.exists()]
        if taken:
            raise ConfigError(
                f"'{taken[0]}' already holds an evaluation result; it is never replaced silently. Pass "
                "overwrite=true to replace it, or results_path=<another folder, or a file ending in .json>.")


def results_target(results_path: str | Path | None, default_folder: str | Path) -> ResultsTarget:
    """``results_path`` ending in ``.json``: that file (only it is written); any other ``results_path``: a folder;
    none: ``default_folder``."""
    if results_path in (None, "", "null", "None"):
        return ResultsTarget(Path(default_folder))
    p = Path(str(results_path)).expanduser()
    if p.suffix.lower() == ".json":
        return ResultsTarget(p.parent, p)
    return ResultsTarget(p)


def options_tag(options: Mapping[str, Any]) -> str:
    """8 hex digits identifying a set of evaluation options (part of default result folder names, so that
    evaluations with different options never share a folder)."""
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def write_results(
    out_dir: str | Path | ResultsTarget,
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    checkpoint: str | None = None,
    seeds: Sequence[int | None] | None = None,
    extra: Mapping[str, Any] | None = None,
    print_table: bool = False,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` into ``out_dir`` atomically (or, for a
    :class:`ResultsTarget` naming a ``*.json`` file, only that file).

    An existing result is never replaced unless ``overwrite`` (:class:`ConfigError` naming the file).
    Returns ``{'json': path, 'csv': path, 'md': path}`` (the files written). ``print_table`` also prints
    :func:`format_table`. A metric whose mean is NaN/inf is never written unflagged: ``results.json`` lists it
    under ``nonfinite_metrics`` with a ``warning``, ``results.csv`` gets a ``nonfinite_metrics`` column and
    ``results.md`` a warning line; the warning is also logged.
    """
    target = out_dir if isinstance(out_dir, ResultsTarget) else ResultsTarget(Path(out_dir))
    summary = summarize(results, dataset=dataset, checkpoint=checkpoint, seeds=seeds, extra=extra)
    target.check_free(overwrite)
    bad = [m for m, v in summary["metrics"].items() if not math.isfinite(float(v["mean"]))]
    warning = ""
    if bad:
        warning = (f"non-finite metric value(s) {bad}: the evaluation produced NaN/inf (a zero-length GT limb, or "
                   "NaN/inf in the data or predictions); these numbers are not results")
        summary["nonfinite_metrics"], summary["warning"] = bad, warning
        logging.getLogger("skeleton_diffusion.results").warning("%s: %s", out_dir, warning)
    paths = target.paths()
    texts = {
        "json": json.dumps(summary, indent=2, allow_nan=True, default=str) + "\n",
        "csv": _csv_text(summary),
        "md": _md_text(summary),
    }
    if bad:
        head, row = texts["csv"].rstrip("\n").split("\n")
        texts["csv"] = f"{head},nonfinite_metrics\n{row},{';'.join(bad)}\n"
        texts["md"] += f"\n**WARNING**: {warning}.\n"
    for key, path in paths.items():
        with atomic_write(path, "w") as fh:
            fh.write(texts[key])
    if print_table:
        print(format_table(summary))
    return paths


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` (file or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILES[0]
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no results file (results.json written by eval.py) here", str(path))
    data = json.loads(path.read_text())
    if "metrics" not in data:
        raise DataFormatError(f"'{path}' has no 'metrics' key; not a results.json written by write_results.")
    unknown = [m for m in data["metrics"] if m not in METRIC_UNITS]
    if unknown:
        raise DataFormatError(f"'{path}' holds unknown metric names {unknown}.")
    return data
