#!/bin/bash
# README: DiffHPE with the CSDI denoiser vs the previous graph denoiser on the synthetic lifting set.
# Usage: bash scripts/results/lifting_diffhpe_denoisers.sh [iters_per_epoch=300]  (4 epochs; README budget = 300 -> 1,200 steps).
# One run at a time, nice 10, 1 thread. Tables: python scripts/results/lifting_table.py output/h18b_lifting_<iters>/eval
set -e
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-.venv/bin/python}"
IT=${1:-300}; OCC=${OCC:-all}
O=output/h18b_lifting_$IT
mkdir -p $O
train() { name=$1; shift; [ -f $O/$name/checkpoints/last.pt ] || nice -n 10 $PY train_lifting.py "$@" output_log_path=$O/$name progress=false > $O/$name.train.log 2>&1; }
evalall() { name=$1; [ -f $O/eval/$name/done ] || { nice -n 10 $PY eval.py task=lifting checkpoint_path=$O/$name occlusion=$OCC task.max_windows=120 progress=false results_path=$O/eval/$name > $O/eval_$name.log 2>&1 && touch $O/eval/$name/done; }; }
V="model.num_epochs=4 model.num_iter_perepoch=$IT model.batch_size=32"
for run in ${RUNS:-csdi_iso graph_iso csdi_refiner graph_refiner csdi_diag csdi_skel}; do
  case $run in
    csdi_iso)      train $run method=diffhpe_ours $V ;;
    graph_iso)     train $run method=diffhpe_ours $V model.lifter.denoiser_type=graph model.lifter.denoiser.hidden=96 model.lifter.denoiser.layers=5 model.lifter.denoiser.heads=4 ;;
    csdi_refiner)  train $run method=diffhpe_ours $V model.lifter.mode=refiner ;;
    graph_refiner) train $run method=diffhpe_ours $V model.lifter.mode=refiner model.lifter.denoiser_type=graph model.lifter.denoiser.hidden=96 model.lifter.denoiser.layers=5 model.lifter.denoiser.heads=4 ;;
    csdi_diag)     train $run method=diffhpe_ours $V model.lifter.noise=diagonal ;;
    csdi_skel)     train $run method=diffhpe_ours $V model.lifter.noise=skeleton ;;
  esac
  evalall $run
done
echo ALLDONE
