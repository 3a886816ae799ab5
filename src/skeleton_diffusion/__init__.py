"""SkeletonDiffusion: probabilistic 3D human motion prediction with nonisotropic Gaussian diffusion.

Subpackages are layered and usable on their own:

* :mod:`skeleton_diffusion.skeletons`  joint sets, limbs, node types, adjacency / reachability
* :mod:`skeleton_diffusion.data`       processed datasets, windows, transforms, MMGT, builders
* :mod:`skeleton_diffusion.nn`         static-graph layers, autoencoder, denoiser
* :mod:`skeleton_diffusion.diffusion`  covariance, schedules, (non)isotropic Gaussian diffusion
* :mod:`skeleton_diffusion.training`   Ignite engines, checkpoints, EMA, LR schedules
* :mod:`skeleton_diffusion.evaluation` metrics and the evaluation protocol
* :mod:`skeleton_diffusion.viz`        animations and plots
"""

__version__ = "0.1.0"
