#!/bin/bash
# README "CrossDiff" results on the synthetic captioned dataset: training + all evaluations, sequential.
# Run from anywhere; outputs under $R (default output/crossdiff_results); table: scripts/results/crossdiff_table.py $R
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore MPLBACKEND=Agg
R=${R:-output/crossdiff_results}
mkdir -p $R
# stage 1 (run first, by hand, in the measured session)
nice -n 10 .venv/bin/python train_diffusion.py experiment=crossdiff_pre debug=crossdiff dataset=synthetic progress=false \
    model.num_epochs=3 model.num_iter_perepoch=100 model.max_paired_windows=550 condition.text_encoder.name=scratch \
    output_log_path=$R/pre > $R/pre.log 2>&1
# 2D-only clips: the training windows 550.. (not used as paired data), one random view each
nice -n 10 .venv/bin/python -c "
from skeleton_diffusion.data.windows.generation import build_synthetic_generation_dataset
from skeleton_diffusion.data.windows.motion2d import project_generation_dataset
ds = build_synthetic_generation_dataset('datasets/processed/Synthetic/hmp', 'train')
project_generation_dataset(ds, '$R/clips2d', indices=range(550, len(ds)), seed=0)"
# the MDM row uses the text-conditioned MDM run and evaluator of the README 'Motion generation' section
COMMON="debug=crossdiff dataset=synthetic progress=false condition.text_encoder.name=scratch model.max_paired_windows=550 model.num_epochs=1 model.num_iter_perepoch=150 model.lr=1e-4"
nice -n 10 .venv/bin/python train_diffusion.py experiment=crossdiff_finetune $COMMON model.init_from=$R/pre output_log_path=$R/ft_no2d > $R/ft_no2d.log 2>&1
nice -n 10 .venv/bin/python train_diffusion.py experiment=crossdiff_finetune $COMMON model.init_from=$R/pre model.motion2d.path=$R/clips2d output_log_path=$R/ft_2d > $R/ft_2d.log 2>&1
EV="task=generation ${EVALUATOR:+task.evaluator_path=$EVALUATOR} dataset=synthetic task.max_test_windows=128 seeds=[0,1] task.mm_num_samples=16 task.mm_num_repeats=10 task.multimodality_times=5 task.diversity_times=100"
nice -n 10 .venv/bin/python eval.py $EV task.generator=real results_path=$R/eval_real > $R/eval_real.log 2>&1
nice -n 10 .venv/bin/python eval.py $EV checkpoint_path=${MDM_TEXT:-output/mdm_text} results_path=$R/eval_mdm > $R/eval_mdm.log 2>&1
for run in ft_no2d ft_2d pre; do
  for s in 3d 2d; do
    nice -n 10 .venv/bin/python eval.py $EV checkpoint_path=$R/$run +task.crossdiff_start=$s results_path=$R/eval_${run}_$s > $R/eval_${run}_$s.log 2>&1
  done
done
echo done > $R/ALL_DONE
