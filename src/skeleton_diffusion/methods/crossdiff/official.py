"""Facade: every name of ``shared/fixtures/crossdiff/INTERFACE.md`` for CrossDiff as the authors built it.

``load_run(<converted run>).model`` has ``.net`` (the official network, ``net(x, t, text, domain_in=,
domains_out=, force_uncond=)``), ``.diff3d`` / ``.diff2d`` (official cosine 1000-step ``q_sample``).
"""

from __future__ import annotations

from skeleton_diffusion.methods.crossdiff.diffusion import (
                                                       OFFICIAL_STEPS,
                                                       OfficialDiffusion,
                                                       official_betas,
)
from skeleton_diffusion.methods.crossdiff.loss import (
                                                       crossdiff_finetune_loss,
                                                       crossdiff_loss,
                                                       crossdiff_terms,
                                                       loss_for_mode,
                                                       masked_l2,
)
from skeleton_diffusion.methods.crossdiff.network import OfficialCrossDiffNet
from skeleton_diffusion.methods.crossdiff.projection import (
                                                       CAM_T,
                                                       OFFICIAL_VIEWS,
                                                       T2M_KINEMATIC_CHAIN,
                                                       TAN_FOV,
                                                       motion2d_features,
                                                       official_project,
)
from skeleton_diffusion.methods.crossdiff.run import (
                                                       OfficialCrossDiff,
                                                       arch_from_state,
                                                       build_official,
                                                       convert,
                                                       load_official_model,
                                                       read_official_config,
)
from skeleton_diffusion.methods.crossdiff.sampling import (
                                                       CrossDiffOfficialGenerator,
                                                       load_run,
                                                       official_guidance_param,
                                                       sample_official,
)

#: the INTERFACE's fallback loader name, for a converted official run
load_crossdiff = load_run

__all__ = [
                                                       "CAM_T",
                                                       "OFFICIAL_STEPS",
                                                       "OFFICIAL_VIEWS",
                                                       "T2M_KINEMATIC_CHAIN",
                                                       "TAN_FOV",
                                                       "CrossDiffOfficialGenerator",
                                                       "OfficialCrossDiff",
                                                       "OfficialCrossDiffNet",
                                                       "OfficialDiffusion",
                                                       "arch_from_state",
                                                       "build_official",
                                                       "convert",
                                                       "crossdiff_finetune_loss",
                                                       "crossdiff_loss",
                                                       "crossdiff_terms",
                                                       "load_crossdiff",
                                                       "load_official_model",
                                                       "load_run",
                                                       "loss_for_mode",
                                                       "masked_l2",
                                                       "motion2d_features",
                                                       "official_betas",
                                                       "official_guidance_param",
                                                       "official_project",
                                                       "read_official_config",
                                                       "sample_official",
]
