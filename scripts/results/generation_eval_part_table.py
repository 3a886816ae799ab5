"""Markdown table of the README eval_part measurements (scripts/results/generation_eval_part.sh) -> stdout.

Usage: python scripts/results/generation_eval_part_table.py [RESULTS_DIR]"""
import json
import sys
from pathlib import Path

R = Path(sys.argv[1] if len(sys.argv) > 1 else "output/generation_eval_part")
KEYS = ["R_precision_top1", "R_precision_top2", "R_precision_top3", "FID", "MM_Dist", "Diversity", "MultiModality"]
ROWS = [("real", "Real test motions (oracle)"), ("mdm", "MDM text (tiny, 1k it.)"),
        ("crossdiff", "CrossDiff 3D start (tiny, 300+150 it., with 2D-only clips)")]
print("| eval_part | generator | R-prec top-1 ↑ | top-2 ↑ | top-3 ↑ | FID ↓ | MM-Dist ↓ | Diversity → | MultiModality ↑ |")
print("|---|---|---|---|---|---|---|---|---|")
for part in ("all", "upper", "lower"):
    for key, label in ROWS:
        res = json.loads((R / f"{key}_{part}" / "results.json").read_text())
        assert res["extra"]["eval_part"] == part
        m = res["metrics"]
        cells = [f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" if k in m else "–" for k in KEYS]
        print(f"| {part} | {label} | " + " | ".join(cells) + " |")
