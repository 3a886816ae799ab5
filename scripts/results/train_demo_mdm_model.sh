#!/bin/bash
# The small pre-trained MDM shipped in trained_models/demo_mdm_synthetic/ (`make demo-mdm`): MDM (condition=past,
# MDM-50, latent 64, 2 layers, pose_box_size 0.4) trained on the embedded synthetic dataset with
# debug=demo_pretrained_mdm (120 x 50 iterations; ~14 min on one quiet CPU core), reduced to config.yaml + one
# weights-only checkpoint, then evaluated beside zero velocity (configs/debug/demo_pretrained_mdm.yaml).
# Run from anywhere; training runs under $R (default output/demo_mdm_long), the model is written to $OUT.
# EXPORT_ONLY=1 skips the training (re-exports and re-evaluates the run already under $R).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore MPLBACKEND=Agg
PY=${PY:-.venv/bin/python}
R=${R:-output/demo_mdm_long}
OUT=${OUT:-trained_models/demo_mdm_synthetic}
mkdir -p "$R"
$PY -m skeleton_diffusion.apps.create_synthetic_dataset
if [ -z "${EXPORT_ONLY:-}" ]; then
  $PY train_diffusion.py model=mdm debug=demo_pretrained_mdm dataset=synthetic output_log_path=$R/mdm_past \
      progress=false > $R/mdm.log 2>&1
fi
# network weights + meta only: no optimiser, EMA, engine or RNG state
$PY - "$R" "$OUT" <<'PYEOF'
import shutil, sys
from pathlib import Path

import torch

from skeleton_diffusion.checkpoints.format import resolve_checkpoint
from skeleton_diffusion.utils.io import safe_torch_load

src, dst = Path(sys.argv[1]) / "mdm_past", Path(sys.argv[2]) / "mdm_past"
state = safe_torch_load(resolve_checkpoint(src))
(dst / "checkpoints").mkdir(parents=True, exist_ok=True)
for old in (dst / "checkpoints").glob("*.pt"):
    old.unlink()
path = dst / "checkpoints" / f"checkpoint_{state['meta']['epoch']}.pt"
torch.save({k: state[k] for k in ("model", "meta")}, path)
shutil.copyfile(src / "config.yaml", dst / "config.yaml")
print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
PYEOF
$PY eval.py dataset=synthetic checkpoint_path=$OUT/mdm_past stats_mode=probabilistic debug=eval \
    results_path=$R/eval_shipped overwrite=true > $R/eval_shipped.log 2>&1
$PY eval.py dataset=synthetic method_specs=zero_velocity stats_mode=probabilistic debug=eval \
    results_path=$R/eval_zero_velocity overwrite=true > $R/eval_zero_velocity.log 2>&1
cat $R/eval_shipped/results.md $R/eval_zero_velocity/results.md
