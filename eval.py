#!/usr/bin/env python
"""Evaluate a trained model (or a baseline) with the official protocol and write result tables.

    python eval.py dataset=amass checkpoint_path=./trained_models/hmp/amass/diffusion/checkpoints/cvpr_release.pt stats_mode=probabilistic
    python eval.py dataset=3dpw checkpoint_path=<AMASS model> stats_mode=probabilistic       # zero-shot
    python eval.py dataset=h36m method_specs=zero_velocity                                  # baseline
    python eval.py dataset=synthetic checkpoint_path=<run dir> seeds=[0,1,2] results_path=out.json
"""

import hydra
from omegaconf import DictConfig

import skeleton_diffusion.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base=None, config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    from skeleton_diffusion.apps.evaluate import main as evaluate
    from skeleton_diffusion.config.cli import run_cli

    run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()
