"""methods.skeleton_diffusion."""
