"""Markdown table of the README CrossDiff results (run scripts/results/crossdiff_synthetic.sh first).

Usage: python scripts/results/crossdiff_table.py [RUNS_DIR]"""
import json, sys
from pathlib import Path
R = Path(sys.argv[1] if len(sys.argv) > 1 else 'output/crossdiff_results')
rows = [("Real test motions (oracle)", "eval_real"), ("MDM text (H16b's run: debug=mdm, all 3D windows, 1,000 it.)", "eval_mdm"),
        ("CrossDiff pre (300 it.), 3D start", "eval_pre_3d"), ("CrossDiff pre (300 it.), 2D start (mixed)", "eval_pre_2d"),
        ("CrossDiff pre + finetune 150 it., no 2D-only data, 3D start", "eval_ft_no2d_3d"),
        ("CrossDiff pre + finetune 150 it., no 2D-only data, 2D start", "eval_ft_no2d_2d"),
        ("CrossDiff pre + finetune 150 it. + 449 2D-only clips, 3D start", "eval_ft_2d_3d"),
        ("CrossDiff pre + finetune 150 it. + 449 2D-only clips, 2D start", "eval_ft_2d_2d")]
names = ["R_precision_top1", "R_precision_top2", "R_precision_top3", "FID", "MM_Dist", "Diversity", "MultiModality"]
print("| generator | R-prec top-1 ↑ | top-2 ↑ | top-3 ↑ | FID ↓ | MM-Dist ↓ | Diversity → | MultiModality ↑ |")
print("|---|---|---|---|---|---|---|---|")
for label, d in rows:
    f = R / d / "results.json"
    if not f.is_file():
        print(f"| {label} | not measured |"); continue
    m = json.loads(f.read_text())["metrics"]
    cells = [f"{m[n]['mean']:.3f} ± {m[n]['std']:.3f}" if n in m else "–" for n in names]
    print(f"| {label} | " + " | ".join(cells) + " |")
