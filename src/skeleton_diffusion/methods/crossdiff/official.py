"""Facade: every name of ``shared/fixtures/crossdiff/INTERFACE.md`` for CrossDiff as the authors built it.

``load_run(<converted run>).model`` has ``.net`` (the official network, ``net(x, t, text, domain_in=,
domains_out=, force_uncond=)``), ``.diff3d`` / ``.diff2d`` (official cosine 1000-step ``q_sample``).
"""

from __future__ import annotations

from skeleton_diffusion.methods.crossdiff.diffusion import OFFICIAL_STEPS, OfficialDiffusion, official_betas
from skeleton_diffusion.methods.crossdiff.loss import (crossdiff_finetune_loss, crossdiff_loss, crossdiff_terms,
                                                       loss_for_mode, masked_l2)
from skeleton_diffusion.methods.crossdiff.network import OfficialCrossDiffNet
from skeleton_diffusion.methods.crossdiff.projection import (CAM_T, OFFICIAL_VIEWS, T2M_KINEMATIC_CHAIN, TAN_FOV,
                                                             motion2d_features, official_project)
from skeleton_diffusion.methods.crossdiff.run import (OfficialCrossDiff, arch_from_state, build_official, convert,
                                                      load_official_model, read_official_config)
from skeleton_diffusion.methods.crossdiff.sampling import (CrossDiffOfficialGenerator, load_run,
                                                           official_guidance_param, sample_official)

#: the INTERFACE's fallback loader name, for a converted official run
load_crossdiff = load_run

__all__ = [
    "OFFICIAL_STEPS", "OfficialDiffusion", "official_betas",
    "crossdiff_loss", "crossdiff_terms", "crossdiff_finetune_loss", "loss_for_mode", "masked_l2",
    "OfficialCrossDiffNet",
    "CAM_T", "OFFICIAL_VIEWS", "T2M_KINEMATIC_CHAIN", "TAN_FOV", "motion2d_features", "official_project",
    "OfficialCrossDiff", "arch_from_state", "build_official", "convert", "load_official_model",
    "read_official_config",
    "CrossDiffOfficialGenerator", "load_run", "load_crossdiff", "official_guidance_param", "sample_official",
]
