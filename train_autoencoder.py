#!/usr/bin/env python
"""Stage 1 — train the recurrent static-graph autoencoder.

    python train_autoencoder.py dataset=amass model.num_epochs=300 task.pose_box_size=1.2 model.autoenc_arch.enc_num_layers=2
    python train_autoencoder.py resume=output/hmp/amass/autoencoder/<run>       # resume a run
    python train_autoencoder.py dataset=amass --cfg job                          # print the composed config
"""

import hydra
from omegaconf import DictConfig

import skeleton_diffusion.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base=None, config_path="configs", config_name="train_autoencoder")
def main(cfg: DictConfig) -> None:
    from skeleton_diffusion.apps.train import train_from_config

    train_from_config(cfg, hook="train_autoencoder")


if __name__ == "__main__":
    main()
