#!/bin/bash
# Real-motion track (README "Real-motion track"): SkeletonDiffusion trained on real motion capture with the
# presets of the shipped demo model (debug=demo_pretrained_autoencoder: 5000 iterations; then
# debug=demo_pretrained_diffusion: 2000 iterations) but best-of-K with K=4 candidates (default; the demo's 32
# spreads the samples of these small real sets too far: DeepMimic APD 8.9, ADE above zero velocity), evaluated
# beside zero velocity (50 samples), plus GIFs of the most moving test window (5 futures; and beside the ground
# truth). K=32 bash ... reproduces the comparison run.
#   bash scripts/results/train_real_motion.sh deepmimic   # 15 DeepMimic clips (pip install pybullet), 1 s horizon
#   bash scripts/results/train_real_motion.sh cmu         # CMU 01_01 + 01_03 (apt-get install assimp-testmodels),
#                                                         # each clip split in time (train / valid / test), 2 s
# One CPU thread (two tracks can run side by side on 2 cores). Runs under $R (default output/real_motion/<which>);
# re-running resumes the training stages (resume=auto) and rewrites the evaluations and GIFs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore MPLBACKEND=Agg
PY=${PY:-.venv/bin/python}
WHICH=${1:-deepmimic}
K=${K:-4}
R=${R:-output/real_motion/$WHICH}
case "$WHICH" in
  deepmimic)
    DS=deepmimic; FOLDER=datasets/processed/DeepMimic/hmp; NPZ=data_3d_deepmimic.npz; OBS=15; PRED=30
    H=(task.prediction_horizon_sec=1.0)
    [ -f "$FOLDER/$NPZ" ] || $PY -m skeleton_diffusion.apps.create_deepmimic_dataset ;;
  cmu)
    DS=cmutime; FOLDER=datasets/processed/CMUTime/hmp; NPZ=data_3d_cmutime.npz; OBS=30; PRED=120
    H=()
    [ -f "$FOLDER/$NPZ" ] || $PY -m skeleton_diffusion.apps.create_bvh_dataset \
        --input "${CMU_BVH_DIR:-/usr/share/assimp/models/BVH}" --name CMUTime --split-mode time ;;
  *) echo "usage: $0 deepmimic|cmu" >&2; exit 2 ;;
esac
mkdir -p "$R"
SECONDS=0
$PY train_autoencoder.py dataset=$DS debug=demo_pretrained_autoencoder "${H[@]}" output_log_path=$R/autoencoder \
    resume=auto progress=false > $R/ae.log 2>&1
echo "autoencoder: $SECONDS s"; T_AE=$SECONDS; SECONDS=0
$PY train_diffusion.py debug=demo_pretrained_diffusion model.train_pick_best_sample_among_k=$K \
    model.pretrained_autoencoder_path=$R/autoencoder output_log_path=$R/diffusion resume=auto progress=false \
    > $R/diffusion.log 2>&1
echo "diffusion: $SECONDS s"; SECONDS=0
$PY eval.py dataset=$DS checkpoint_path=$R/diffusion stats_mode=probabilistic num_samples=50 "${H[@]}" \
    results_path=$R/eval overwrite=true progress=false > $R/eval.log 2>&1
$PY eval.py dataset=$DS method_specs=zero_velocity stats_mode=probabilistic "${H[@]}" \
    results_path=$R/eval_zero_velocity overwrite=true progress=false > $R/eval_zero_velocity.log 2>&1
echo "evaluations: $SECONDS s"
$PY -m skeleton_diffusion.apps.demo --write-example-obs $R/obs.npy --example-from $FOLDER $NPZ \
    --example-frames $OBS $PRED
$PY -m skeleton_diffusion.apps.predict checkpoint_path=$R/diffusion input=$R/obs.npy output=$R/pred.npz \
    gif=$R/pred.gif num_samples=5 > $R/predict.log 2>&1
$PY - "$R" "$FOLDER" <<'PYEOF'
import sys
from pathlib import Path

from skeleton_diffusion.apps.demo import write_comparison_gif

r, folder = Path(sys.argv[1]), Path(sys.argv[2])
native = folder / "skeleton.json"   # a native-skeleton build (DeepMimic): its own skeleton file
print(write_comparison_gif(r / "pred.npz", r / "obs_gt_future.npy", r / "pred_vs_gt.gif",
                           skeleton=str(native) if native.is_file() else None))
PYEOF
grep -h "^| \(ADE\|FDE\|MMADE\|MMFDE\|APD\|MAE\|StretchMean\) " $R/eval/results.md $R/eval_zero_velocity/results.md
