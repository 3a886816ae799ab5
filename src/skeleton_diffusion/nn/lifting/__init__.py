"""2D->3D lifting models: supervised lifter (baseline and prior), graph denoiser, DiffPose / DiffHPE wrappers."""
