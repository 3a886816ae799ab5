"""Facade: every name of the official T2M evaluation interface (``../shared/fixtures/t2m/INTERFACE.md``).

Evaluator: :func:`load_official_t2m_evaluator`, :class:`OfficialT2MEvaluator`. GloVe: :func:`load_glove`.
Data: :func:`renormalize_for_evaluator`, :func:`official_eval_length`. Metrics (official numerics):
:func:`r_precision`, :func:`matching_score`, :func:`generation_fid`, :func:`euclidean_distance_matrix`,
:func:`top_k_hits`, :func:`diversity`, :func:`multimodality`, :func:`activation_statistics`,
:func:`replication_statistics`. Replication summary with ``mean`` and ``conf95``: :func:`summarize`.
"""

from __future__ import annotations

from skeleton_diffusion.tasks.results import summarize
from skeleton_diffusion.tasks.generation.glove import (
    POS_TAGS,
    VIP_WORDS,
    GloVe,
    load_glove,
    pad_tokens,
    safe_load_pickle,
)
from skeleton_diffusion.tasks.generation.humanml_eval_data import (
    collate_order,
    length_sort_order,
    official_crop,
    official_eval_length,
    read_humanml3d_split,
    renormalize_for_evaluator,
)
from skeleton_diffusion.tasks.generation.official_metrics import (
    activation_statistics,
    diversity,
    euclidean_distance_matrix,
    frechet_distance,
    generation_fid,
    matching_score,
    multimodality,
    r_precision,
    replication_statistics,
    top_k_hits,
)
from skeleton_diffusion.tasks.generation.t2m_networks import (
    OfficialT2MEvaluator,
    load_official_t2m_evaluator,
)

__all__ = [
    "load_official_t2m_evaluator",
    "OfficialT2MEvaluator",
    "load_glove",
    "GloVe",
    "POS_TAGS",
    "VIP_WORDS",
    "pad_tokens",
    "safe_load_pickle",
    "renormalize_for_evaluator",
    "official_eval_length",
    "official_crop",
    "read_humanml3d_split",
    "collate_order",
    "length_sort_order",
    "r_precision",
    "matching_score",
    "generation_fid",
    "euclidean_distance_matrix",
    "top_k_hits",
    "diversity",
    "multimodality",
    "activation_statistics",
    "frechet_distance",
    "replication_statistics",
    "summarize",
]
