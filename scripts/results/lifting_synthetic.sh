#!/bin/bash
# README "2D->3D pose lifting" results: 9 runs of our variants (method=*_ours) + 3 official runs, of 4 x 300 = 1,200 iterations each on the synthetic lifting set,
# evaluated under every occlusion; then `python scripts/results/lifting_table.py output/h18_lifting_long/eval`.
# The DiffHPE rows use the graph denoiser they were measured with (the default is now the CSDI-style one;
# scripts/results/lifting_diffhpe_denoisers.sh compares the two). Run from the repository root (one run at a time, nice 10). Needs the synthetic lifting dataset:
#   python -m skeleton_diffusion.apps.create_synthetic_lifting_dataset
set -e
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-.venv/bin/python}"
O=output/h18_lifting_long
mkdir -p $O
train() { name=$1; shift; [ -f $O/$name/checkpoints/last.pt ] || nice -n 10 $PY train_lifting.py "$@" output_log_path=$O/$name progress=false > $O/$name.train.log 2>&1; }
evalall() { name=$1; mw=$2; [ -f $O/eval/$name/noisy/results.json ] || nice -n 10 $PY eval.py task=lifting checkpoint_path=$O/$name occlusion=all task.max_windows=$mw progress=false results_path=$O/eval/$name > $O/eval_$name.log 2>&1; }
F="model.num_epochs=4 model.num_iter_perepoch=300 model.batch_size=128 model.train_occlusion=mixed"
V="model.num_epochs=4 model.num_iter_perepoch=300 model.batch_size=32"
train diffhpe_iso method=diffhpe_ours $V model.lifter.denoiser_type=graph model.lifter.denoiser.hidden=96 model.lifter.denoiser.layers=5 model.lifter.denoiser.heads=4; evalall diffhpe_iso 120
train supervised_v27 method=supervised model.lifter.frames=27 $V model.train_stride=4 model.train_occlusion=mixed; evalall supervised_v27 120
train diffhpe_refiner method=diffhpe_ours $V model.lifter.mode=refiner model.lifter.denoiser_type=graph model.lifter.denoiser.hidden=96 model.lifter.denoiser.layers=5 model.lifter.denoiser.heads=4; evalall diffhpe_refiner 120
train diffhpe_skel method=diffhpe_ours $V model.lifter.noise=skeleton model.lifter.denoiser_type=graph model.lifter.denoiser.hidden=96 model.lifter.denoiser.layers=5 model.lifter.denoiser.heads=4; evalall diffhpe_skel 120
train diffhpe_diag method=diffhpe_ours $V model.lifter.noise=diagonal model.lifter.denoiser_type=graph model.lifter.denoiser.hidden=96 model.lifter.denoiser.layers=5 model.lifter.denoiser.heads=4; evalall diffhpe_diag 120
train supervised method=supervised $F;                                evalall supervised 1000
train diffpose_iso method=diffpose_ours $F;                                evalall diffpose_iso 1000
train diffpose_skel method=diffpose_ours $F model.lifter.noise=skeleton;   evalall diffpose_skel 1000
train diffpose_diag method=diffpose_ours $F model.lifter.noise=diagonal;   evalall diffpose_diag 1000
# the official networks and losses (issue 26): GCNpose prior first, then DiffPose on it; DiffHPE-2D (LiftCTGCN)
train gcnpose method=gcnpose $F;                                                       evalall gcnpose 1000
train diffpose_official method=diffpose $F model.lifter.prior_checkpoint=$O/gcnpose;   evalall diffpose_official 1000
train diffhpe_official method=diffhpe $V model.train_stride=4;                         evalall diffhpe_official 120
echo ALLDONE
