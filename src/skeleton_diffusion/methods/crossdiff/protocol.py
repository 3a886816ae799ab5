"""CrossDiff's own evaluation protocol (``test.py`` + ``eval/eval_humanml.py`` + ``evaluator_wrapper.py``): the
switches where it differs from MDM's, for the generation task to apply on top of the official T2M evaluator.

* ``fid_reference = 'same_batches'``: FID and diversity-real use the GT motion embeddings of the SAME batches the
  generations were scored on (MDM: a second pass over the GT loader).
* ``test_limit = 20`` batches of 32 per replication, ``replications = 20`` (multimodality: 5 batches x 5
  replications, ``test_mm=True``), 95% interval ``1.96·std(ddof=0)/√R``.
* diversity: 300 pairs when more than 300 samples were scored, else 10 (:func:`diversity_times`); pairs drawn
  with ``np.random.choice(n, k, replace=False)`` twice (legacy global RNG).
* multimodality: 30 generations per caption, 10 pairs (``np.random.choice(30, 10, replace=False)`` twice).
* ``eval_part`` ('all' | 'upper' | 'lower'): the evaluator checkpoint ``t2m/<eval_part>.tar`` (the authors'
  body-part evaluators) reads only the 263-d feature columns of :func:`eval_feature_index`.
* ``eval_upper_lower``: the official loop reads ``args.eval_upper_lower``, which no config defines (defect: with
  OmegaConf >= 2.1 the evaluation stops with ``ConfigAttributeError``; the value 1/2 calls methods that the
  wrapper lacks). 0 (renormalise to the evaluator's statistics, then ``get_co_embeddings``) is the only value
  that runs, so it is the default; published numbers can only come from it.
* guidance: only with ``classifier_free=True`` (``configs/base.yaml``: False, i.e. unguided).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from skeleton_diffusion.utils.errors import ConfigError

__all__ = [
    "CrossDiffEvalProtocol",
    "confidence_interval",
    "crossdiff_diversity",
    "crossdiff_multimodality",
    "diversity_times",
    "eval_feature_index",
]

EvalPart = Literal["all", "upper", "lower"]


@dataclass(frozen=True)
class CrossDiffEvalProtocol:
    """The official CrossDiff test settings (module doc); the defaults are the official ones."""

    fid_reference: Literal["same_batches", "gt_second_pass"] = "same_batches"
    batch_size: int = 32
    test_limit: int = 20
    replications: int = 20
    mm_test_limit: int = 5
    mm_replications: int = 5
    mm_generations: int = 30
    mm_times: int = 10
    eval_part: EvalPart = "all"
    eval_upper_lower: int = 0
    classifier_free: bool = False
    start: Literal["3d", "2d"] = "3d"
    change_idx: int = 300

    def __post_init__(self) -> None:
        if self.eval_part not in ("all", "upper", "lower"):
            raise ConfigError(f"eval_part must be 'all', 'upper' or 'lower', got {self.eval_part!r}")
        if self.eval_upper_lower != 0:
            raise ConfigError("eval_upper_lower must be 0: the official values 1/2 call "
                              "get_co_embeddings_upper/lower, which the official EvaluatorWrapper does not have")


def diversity_times(num_samples: int) -> int:
    """Official CrossDiff: 300 pairs when more than 300 samples were scored, else 10."""
    return 300 if num_samples > 300 else 10


def eval_feature_index(part: EvalPart = "all", dim_pose: int = 263) -> list[int]:
    """Columns of the 263-d HumanML3D features the official evaluator of ``part`` reads (``build_evaluators``):
    'all' drops the 4 foot contacts; 'lower' keeps root (4), the lower-body joints' positions, 6D rotations and
    velocities (103); 'upper' keeps the rest (156); neither reads the 4 foot contacts."""
    if part == "all":
        return list(range(dim_pose - 4))
    if dim_pose != 263:
        raise ConfigError(f"eval_part={part!r} is defined for HumanML3D's 263-d features, got {dim_pose}")
    lower_joint = np.array([1, 2, 4, 5, 7, 8, 10, 11]) - 1  # non-root joints, 0-based in the 21-joint blocks
    lower_joint2 = np.array([0, 1, 2, 4, 5, 7, 8, 10, 11])  # velocity block includes the root
    idx = [np.arange(4),
           (4 + 3 * lower_joint[:, None] + np.arange(3)).reshape(-1),
           (67 + 6 * lower_joint[:, None] + np.arange(6)).reshape(-1),
           (193 + 3 * lower_joint2[:, None] + np.arange(3)).reshape(-1),
           np.arange(259, 263)]
    lower = np.concatenate(idx).tolist()
    upper = [i for i in range(263) if i not in lower]
    if part == "upper":
        return upper
    if part == "lower":
        return lower[:-4]
    raise ConfigError(f"eval_part must be 'all', 'upper' or 'lower', got {part!r}")


def crossdiff_diversity(activation: np.ndarray, rng: np.random.RandomState | None = None) -> float:
    """Official ``calculate_diversity(activation, diversity_times(n))`` with the legacy global RNG (or ``rng``)."""
    n = activation.shape[0]
    k = diversity_times(n)
    if n <= k:
        raise ConfigError(f"diversity needs more than {k} samples, got {n}")
    r = rng if rng is not None else np.random
    first, second = r.choice(n, k, replace=False), r.choice(n, k, replace=False)
    return float(np.linalg.norm(activation[first] - activation[second], axis=1).mean())


def crossdiff_multimodality(activation: np.ndarray, times: int = 10,
                            rng: np.random.RandomState | None = None) -> float:
    """Official ``calculate_multimodality``: ``activation [captions, generations, D]``; the same ``times``
    generation pairs for every caption."""
    if activation.ndim != 3 or activation.shape[1] <= times:
        raise ConfigError(f"multimodality needs [captions, > {times} generations, D], got {activation.shape}")
    r = rng if rng is not None else np.random
    first, second = r.choice(activation.shape[1], times, replace=False), r.choice(activation.shape[1], times,
                                                                                   replace=False)
    return float(np.linalg.norm(activation[:, first] - activation[:, second], axis=2).mean())


def confidence_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, 1.96·std(ddof=0)/√R)`` over replications (axis 0), as ``TrainLoop.multi_eval`` prints."""
    v = np.asarray(values, dtype=np.float64)
    return v.mean(axis=0), 1.96 * v.std(axis=0) / np.sqrt(v.shape[0])
