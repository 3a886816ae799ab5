#!/usr/bin/env python
"""Train a 2D->3D lifting model: supervised lifter, DiffPose or DiffHPE.

    python -m skeleton_diffusion.apps.create_synthetic_lifting_dataset          # CPU dataset, no download
    python train_lifting.py method=diffpose dataset=synthetic_lifting
    python train_lifting.py method=diffhpe_ours dataset=h36m_lifting model.lifter.noise=skeleton
    python train_lifting.py method=supervised dataset=synthetic_lifting debug=lifting
    python train_lifting.py resume=output/lifting/synthetic_lifting/diffpose/<run>      # resume a run
"""

import hydra
from omegaconf import DictConfig

import skeleton_diffusion.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base=None, config_path="configs", config_name="train_lifting")
def main(cfg: DictConfig) -> None:
    from skeleton_diffusion.apps.train import train_from_config

    train_from_config(cfg)


if __name__ == "__main__":
    main()
