"""Cross-skeleton evaluation: a model trained on skeleton A predicts motion recorded on skeleton B (joint map).

    python -m skeleton_diffusion.apps.cross_skeleton --checkpoint RUN --dataset-config DS.yaml --joint-map NAME|FILE
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from skeleton_diffusion.tasks.hmp.cross_skeleton import evaluate_cross_skeleton, load_joint_map


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m skeleton_diffusion.apps.cross_skeleton --checkpoint RUN --dataset-config DS.yaml
    --joint-map NAME|FILE [--data-root datasets] [--num-samples 10] [--max-windows N] [--out results.json]``"""
    import argparse
    import json

    import yaml

    from skeleton_diffusion.data.registry import build_dataset
    from skeleton_diffusion.methods.registry import load_model

    p = argparse.ArgumentParser(description="evaluate a model on motion of another skeleton via a joint map")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset-config", required=True, help="configs/dataset yaml or a built dataset_config.yaml")
    p.add_argument("--joint-map", required=True, help="file or name in configs/joint_maps")
    p.add_argument("--data-root", default="datasets")
    p.add_argument("--num-samples", type=int, default=10)
    p.add_argument("--max-windows", type=int, default=None)
    p.add_argument("--horizon-sec", type=float, default=None, help="data window horizon (default: the model's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    predictor = load_model(a.checkpoint, device=a.device)
    raw = Path(a.dataset_config).read_text()
    cfg = yaml.safe_load(raw.replace("${dataset_main_path}", str(a.data_root)))
    horizon = a.horizon_sec if a.horizon_sec is not None else predictor.pred_length / predictor.fps
    ds = build_dataset(cfg, "test", pose_box_size=1.0, dataset_main_path=a.data_root, augmentation=0,
                       prediction_horizon_sec=horizon)
    jmap = load_joint_map(a.joint_map, predictor.skeleton, ds.skeleton)
    res = evaluate_cross_skeleton(predictor, ds, jmap, data_fps=float(cfg["fps"]), num_samples=a.num_samples,
                                  max_windows=a.max_windows)
    print(json.dumps(res["metrics"], indent=1))
    if a.out:
        from skeleton_diffusion.utils.io import atomic_write

        with atomic_write(Path(a.out), "w") as fh:
            json.dump(res, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
