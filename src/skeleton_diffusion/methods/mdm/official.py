"""Facade: every name the MDM acceptance check calls (``../shared/fixtures/mdm/INTERFACE.md``).

Layout of every motion tensor: ``x [B, J, T*C] = official[B, J, C, T].permute(0, 1, 3, 2).reshape(B, J, T*C)``.
"""

from __future__ import annotations

from skeleton_diffusion.representations.humanml3d import recover_from_ric, recover_root_rot_pos
from skeleton_diffusion.diffusion.schedules import cosine_beta_schedule, linear_beta_schedule
from skeleton_diffusion.methods.mdm.convert import OfficialMDMRun, convert, load_model, load_run
from skeleton_diffusion.methods.mdm.gaussian import OfficialMDMDiffusion, official_betas, respaced_betas, space_timesteps
from skeleton_diffusion.methods.mdm.losses import mdm_loss, official_training_losses
from skeleton_diffusion.methods.mdm.network import OfficialMDM
from skeleton_diffusion.methods.mdm.smpl_fk import SMPLJoints, rotation_6d_to_matrix
from skeleton_diffusion.methods.mdm.sampling import (ddim_sample, guided_x0, p_mean_variance, p_sample,
                                                     sample_loop_progressive, sample_motion)

__all__ = ["cosine_beta_schedule", "linear_beta_schedule", "space_timesteps", "respaced_betas", "official_betas",
           "guided_x0", "sample_motion", "sample_loop_progressive", "p_mean_variance", "p_sample", "ddim_sample",
           "recover_from_ric", "recover_root_rot_pos", "mdm_loss", "official_training_losses", "OfficialMDM",
           "OfficialMDMDiffusion", "OfficialMDMRun", "convert", "load_run", "load_model", "SMPLJoints",
           "rotation_6d_to_matrix"]
