#!/bin/bash
# README eval_part measurements, sequential; run from anywhere. Needs the text-conditioned MDM run ($MDM_TEXT,
# README 'Motion generation') and the CrossDiff finetune run with 2D-only clips ($CROSSDIFF,
# scripts/results/crossdiff_synthetic.sh). Table: python scripts/results/generation_eval_part_table.py $R
cd "$(dirname "$0")/../.."
MDM_TEXT=${MDM_TEXT:-output/mdm_text}
CROSSDIFF=${CROSSDIFF:-output/crossdiff_results/ft_2d}
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore MPLBACKEND=Agg
R=${R:-output/generation_eval_part}
mkdir -p $R
for part in all upper lower; do
  nice -n 10 .venv/bin/python -m skeleton_diffusion.tasks.generation.train_evaluator dataset=synthetic \
      eval_part=$part task.evaluator.epochs=5 progress=false task.evaluator_path=$R/evaluator_$part.pt > $R/ev_$part.log 2>&1
done
for part in all upper lower; do
  EV="task=generation dataset=synthetic eval_part=$part task.evaluator_path=$R/evaluator_$part.pt task.max_test_windows=128 seeds=[0,1] task.mm_num_samples=16 task.mm_num_repeats=10 task.multimodality_times=5 task.diversity_times=100"
  nice -n 10 .venv/bin/python eval.py $EV task.generator=real results_path=$R/real_$part > $R/real_$part.log 2>&1
  nice -n 10 .venv/bin/python eval.py $EV checkpoint_path=$MDM_TEXT results_path=$R/mdm_$part > $R/mdm_$part.log 2>&1
  nice -n 10 .venv/bin/python eval.py $EV checkpoint_path=$CROSSDIFF +task.crossdiff_start=3d results_path=$R/crossdiff_$part > $R/crossdiff_$part.log 2>&1
done
echo done > $R/ALL_DONE
