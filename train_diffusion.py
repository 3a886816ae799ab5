#!/usr/bin/env python
"""Train a diffusion model; the method comes from the config (``model=...``) through the method registry.

    python train_diffusion.py model=skeleton_diffusion model.pretrained_autoencoder_path=<AE checkpoint or run dir> dataset_folder_log_path=amass model.num_epochs=150 model.lr_scheduler_kwargs.warmup_duration=75
    python train_diffusion.py model.train_pick_best_sample_among_k=1 ...          # ablation: no best-of-k
    python train_diffusion.py model=mdm condition=text dataset=synthetic          # MDM (text-to-motion)
    python train_diffusion.py model=crossdiff dataset=synthetic                   # CrossDiff
    python train_diffusion.py resume=output/hmp/amass/diffusion/<run>             # resume a run (any method)
"""

import hydra
from omegaconf import DictConfig

import skeleton_diffusion.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base=None, config_path="configs", config_name="train_diffusion")
def main(cfg: DictConfig) -> None:
    from skeleton_diffusion.apps.train import train_from_config

    train_from_config(cfg)


if __name__ == "__main__":
    main()
