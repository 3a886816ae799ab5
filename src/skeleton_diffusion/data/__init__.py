"""Data layer: processed-dataset files, coordinate spaces, window datasets, augmentation, MMGT, mean motion.

Quick use::

    from skeleton_diffusion.data import build_dataset, build_dataloader
    ds = build_dataset(cfg.dataset, "train", pose_box_size=1.5)        # cfg.dataset: a configs/dataset/*.yaml group
    loader = build_dataloader(ds, batch_size=64, seed=0)
    obs, fut, extra = next(iter(loader))                                # input space, see loaders.py
"""

from skeleton_diffusion.data.windows.hmp import MotionWindowDataset
from skeleton_diffusion.data.windows.hmp_sources import (
    DATASET_TYPES,
    AMASSDataset,
    D3PWZeroShotDataset,
    FreeManDataset,
    GenericMotionDataset,
    H36MDataset,
    ZeroShotAMASSDataset,
)
from skeleton_diffusion.data.registry import DEFAULT_DATASET_CFGS, build_dataset
from skeleton_diffusion.data.loaders import build_dataloader, collate_motion_batch, seed_worker
from skeleton_diffusion.data.mean_motion import read_mean_motion
from skeleton_diffusion.data.mmgt import read_mmgt
from skeleton_diffusion.data.processed import load_processed, save_processed
from skeleton_diffusion.data.side_files import build_side_files
from skeleton_diffusion.representations.hmp import input_to_metric, metric_to_input, to_input_space, to_metric_space

__all__ = [
    "DATASET_TYPES",
    "DEFAULT_DATASET_CFGS",
    "AMASSDataset",
    "D3PWZeroShotDataset",
    "FreeManDataset",
    "GenericMotionDataset",
    "H36MDataset",
    "MotionWindowDataset",
    "ZeroShotAMASSDataset",
    "build_dataset",
    "build_dataloader",
    "collate_motion_batch",
    "seed_worker",
    "load_processed",
    "build_side_files",
    "read_mmgt",
    "read_mean_motion",
    "save_processed",
    "to_metric_space",
    "to_input_space",
    "input_to_metric",
    "metric_to_input",
]
