"""One side-by-side table from several ``eval.py`` results (same dataset, split, windows and seeds).

    python -m skeleton_diffusion.apps.compare output/eval/zero/results.json <sd run>/eval/... <mdm>/eval/... \\
        --out output/compare.md

Each input is a ``results.json`` (or its folder) written by ``eval.py``; the method name is the one stored in the
results (``extra.method``: ``SkeletonDiffusion``, ``ZeroVelocityBaseline``, ``MDM-isotropic``, ...) unless given
as ``NAME=path``. The inputs must agree on dataset, split, stats mode, window count and seeds (checked), so the
rows are comparable. Values are mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from skeleton_diffusion.config.cli import run_cli
from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.tasks.results import load_results

__all__ = ["compare_table", "main"]


def _label(res: dict[str, Any], given: str | None) -> str:
    return given or str((res.get("extra") or {}).get("method") or Path(str(res.get("checkpoint") or "?")).stem)


def compare_table(inputs: Sequence[tuple[str | None, str | Path]], metrics: Sequence[str] | None = None) -> str:
    """Markdown table (rows = methods, columns = metrics) of ``[(name or None, results path)]``."""
    loaded = [(name, load_results(path), path) for name, path in inputs]
    if not loaded:
        raise InputError("compare needs at least one results.json")
    ref = loaded[0][1]
    keys = ("dataset", "num_windows", "seeds", "stats_mode")
    fix = {"dataset": "evaluate every method on the same dataset (dataset=...)",
           "num_windows": "evaluate every method on the same windows (same dataset, split and options)",
           "seeds": "evaluate every method with the same seeds (seed=... or seeds=[...])",
           "stats_mode": "evaluate every method with the same stats_mode=deterministic|probabilistic"}
    for _, res, path in loaded[1:]:
        for k in keys:
            if res.get(k) != ref.get(k):
                raise InputError(f"'{path}' has {k}={res.get(k)!r} but '{loaded[0][2]}' has {ref.get(k)!r}, so "
                                 f"their rows are not comparable: {fix[k]}")
    names = list(metrics) if metrics else [m for m in ref["metrics"]]
    unknown = [m for m in names if m not in ref["metrics"]]
    if unknown:
        raise InputError(f"--metrics {unknown} not in '{loaded[0][2]}'; it holds: {', '.join(ref['metrics'])}")
    header = "| method | " + " | ".join(f"{m} ({ref['metrics'][m].get('unit', '')})" for m in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for given, res, _ in loaded:
        cells = []
        for m in names:
            v = res["metrics"].get(m)
            if v is None:
                cells.append("—")
            elif int(v.get("n", 1)) > 1:
                cells.append(f"{v['mean']:.4f} ± {v['std']:.4f}")
            else:
                cells.append(f"{v['mean']:.4f}")
        lines.append(f"| {_label(res, given)} | " + " | ".join(cells) + " |")
    samples = ", ".join(f"{_label(res, given)} {res.get('num_samples')}" for given, res, _ in loaded)
    foot = (f"\n{ref['dataset']} · {ref.get('stats_mode')} · {ref.get('num_windows')} windows · "
            f"seeds {ref.get('seeds')} · samples per window: {samples}\n")
    return "\n".join(lines) + "\n" + foot


def main(argv: Sequence[str] | None = None) -> str:
    """The CLI: user errors (missing file, results that do not match) as one paragraph, exit status 2."""
    return run_cli(_main, argv)


def _main(argv: Sequence[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results.json files or folders, optionally NAME=path")
    ap.add_argument("--metrics", nargs="*", default=None, help="metric columns (default: all of the first file)")
    ap.add_argument("--out", default=None, help="write the markdown table here too (an existing file is kept)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = ap.parse_args(argv)
    inputs = []
    for item in args.results:
        name, sep, path = item.partition("=")
        inputs.append((name, path) if sep and not Path(item).exists() else (None, item))
    table = compare_table(inputs, args.metrics)
    print(table)
    if args.out:
        if Path(args.out).exists() and not args.overwrite:
            raise InputError(f"--out '{args.out}' already exists; it is never replaced silently: pass --overwrite, "
                             "or another --out")
        from skeleton_diffusion.utils.io import atomic_write

        with atomic_write(Path(args.out), "w") as fh:
            fh.write(table)
    return table


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
