#!/bin/bash
# The small pre-trained demo model shipped in trained_models/demo_synthetic/ (README "Quickstart", `make demo`):
# both stages trained on the embedded synthetic dataset (deterministic: the same on every machine), then reduced to
# what eval.py / predict need (config.yaml + one weights-only checkpoint per stage), then evaluated.
# ~23 min (autoencoder, 5000 it) + ~47 min (diffusion, 2000 it, best-of-32) on a shared 2-core CPU box, 1 thread.
# Run from anywhere; training runs under $R (default output/demo_long), the model is written to $OUT.
# EXPORT_ONLY=1 skips the training (re-exports and re-evaluates the runs already under $R).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore MPLBACKEND=Agg
PY=${PY:-.venv/bin/python}
R=${R:-output/demo_long}
OUT=${OUT:-trained_models/demo_synthetic}
mkdir -p "$R"
$PY -m skeleton_diffusion.apps.create_synthetic_dataset
if [ -z "${EXPORT_ONLY:-}" ]; then
  $PY train_autoencoder.py dataset=synthetic debug=demo_pretrained_autoencoder output_log_path=$R/autoencoder \
      progress=false > $R/ae.log 2>&1
  $PY train_diffusion.py debug=demo_pretrained_diffusion model.pretrained_autoencoder_path=$R/autoencoder \
      output_log_path=$R/diffusion progress=false > $R/diffusion.log 2>&1
fi
# reduce each run folder to config.yaml + its final checkpoint: network weights (+ the frozen autoencoder inside the
# diffusion checkpoint, as eval.py/predict load it) and meta; no optimiser, EMA, engine or RNG state
$PY - "$R" "$OUT" <<'PYEOF'
import shutil, sys
from pathlib import Path

import torch

from skeleton_diffusion.checkpoints.format import resolve_checkpoint
from skeleton_diffusion.utils.io import safe_torch_load

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for stage, keep in (("autoencoder", ("model", "meta")), ("diffusion", ("model", "autoencoder", "meta"))):
    state = safe_torch_load(resolve_checkpoint(src / stage))
    folder = dst / stage / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.pt"):
        old.unlink()
    path = folder / f"checkpoint_{state['meta']['epoch']}.pt"
    torch.save({k: state[k] for k in keep}, path)
    shutil.copyfile(src / stage / "config.yaml", dst / stage / "config.yaml")
    print(f"{stage}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
PYEOF
$PY eval.py dataset=synthetic checkpoint_path=$OUT/diffusion stats_mode=probabilistic debug=eval \
    results_path=$R/eval_shipped > $R/eval_shipped.log 2>&1
cat $R/eval_shipped/results.md
