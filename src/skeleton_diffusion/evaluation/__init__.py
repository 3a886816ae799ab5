"""Evaluation: metrics (pure batched functions), FID, the chunked evaluator, baselines and result files.

Typical use::

    from skeleton_diffusion.evaluation import evaluate, write_results
    res = evaluate(predict_fn, test_loader, skeleton, pose_box_size, stats_mode="probabilistic",
                   mean_motion_per_class=refs, mmapd_gt=gt_apd, seed=0)
    write_results(out_dir, res, dataset="amass", checkpoint=ckpt, print_table=True)
"""

from skeleton_diffusion.evaluation.baselines import GroundTruthOracle, ZeroVelocityBaseline, zero_velocity
from skeleton_diffusion.evaluation.evaluator import PredictionWriter, aggregate_seeds, evaluate, load_mmapd_gt, resolve_metric_names
from skeleton_diffusion.evaluation.metrics import METRIC_ORDER, PER_ITEM_METRICS, STATS_MODES, metrics_for_mode, per_item_metrics
from skeleton_diffusion.evaluation.results import METRIC_UNITS, format_official_table, format_table, load_results, summarize, write_results

__all__ = [
    "evaluate",
    "aggregate_seeds",
    "load_mmapd_gt",
    "resolve_metric_names",
    "PredictionWriter",
    "ZeroVelocityBaseline",
    "GroundTruthOracle",
    "zero_velocity",
    "METRIC_ORDER",
    "PER_ITEM_METRICS",
    "STATS_MODES",
    "metrics_for_mode",
    "per_item_metrics",
    "METRIC_UNITS",
    "summarize",
    "format_table",
    "format_official_table",
    "write_results",
    "load_results",
]
