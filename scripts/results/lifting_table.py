"""Markdown tables of the README lifting results (<eval dir>/<run>/<occlusion>/results.json, written by
scripts/results/lifting_synthetic.sh). Usage: python scripts/results/lifting_table.py output/h18_lifting_long/eval"""
import json
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "output/h18_lifting/eval")
RUNS = [("supervised", "supervised (FC residual), 1 frame"), ("supervised_v27", "supervised (FC residual), 27 frames"), ("diffpose_iso", "DiffPose, isotropic"),
        ("diffpose_diag", "DiffPose, diagonal"), ("diffpose_skel", "DiffPose, skeleton (ours)"),
        ("diffhpe_iso", "DiffHPE standalone, isotropic"), ("diffhpe_diag", "DiffHPE standalone, diagonal"),
        ("diffhpe_skel", "DiffHPE standalone, skeleton (ours)"), ("diffhpe_refiner", "DiffHPE refiner, isotropic")]
OCC = ["none", "rand_joints", "struct_joints", "frames", "arms_legs", "noisy"]


def get(run, occ):
    p = ROOT / run / occ / "results.json"
    return json.loads(p.read_text())["metrics"] if p.is_file() else None


def v(m, k):
    return f"{m[k]['mean']:.1f}" if m and k in m else "–"


print("MPJPE / P-MPJPE (mm) of the mean of K=5 hypotheses, per occlusion:\n")
print("| method | " + " | ".join(OCC) + " |")
print("|---|" + "---|" * len(OCC))
for run, name in RUNS:
    cells = [f"{v(get(run, o), 'MPJPE')} / {v(get(run, o), 'PMPJPE')}" for o in OCC]
    print(f"| {name} | " + " | ".join(cells) + " |")
print("\nClean inputs (occlusion=none), all metrics:\n")
keys = ["MPJPE", "PMPJPE", "NMPJPE", "MPJPE_bestK", "MPJPE_meanK", "MPJVE", "BoneStd", "Asymmetry", "MeanPose_MPJPE"]
print("| method | " + " | ".join(keys) + " |")
print("|---|" + "---|" * len(keys))
for run, name in RUNS:
    m = get(run, "none")
    print(f"| {name} | " + " | ".join(v(m, k) for k in keys) + " |")
