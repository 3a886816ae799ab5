"""FID with BeLFusion's Human3.6M action classifier (spec data_eval §6.10; H36M only).

Classifier (``ClassifierForFID``, same module and parameter names as BeLFusion, so its state dict loads):
GRU(input 48 = 16 nodes x 3, hidden 128, 2 layers, sequence-first) -> last time step -> Linear(128, 30) + tanh
= the **feature** used for FID -> Linear(30, 15) action logits (unused for FID).

Weights: BeLFusion (github.com/BarqueroGerman/BeLFusion) ships them as ``auxiliar/h36m_classifier.pth``
(a ``torch.save`` dict, state dict under key ``"model"``, tensors saved on ``cuda:0``). The official
SkeletonDiffusion eval reads ``<precomputed_folder>/h36m_classifier.pth``; copy the file there (e.g.
``datasets/processed/Human36M/hmp/h36m_classifier.pth``) and pass its path to :func:`load_fid_classifier`.
They are not redistributed here. The file at BeLFusion's HEAD (689,435 bytes) has SHA-256
``f5fee4b0...9cbc1`` (:data:`BELFUSION_CLASSIFIER_SHA256`); it loads with ``torch.load(weights_only=True)``.
:func:`load_fid_classifier` warns when a file with another checksum is used.

The official classifier draws the initial GRU hidden state with ``torch.randn`` on **every call**, so FID
depends on the RNG state. ``hidden_init="random"`` (default, official) keeps that; ``"zeros"`` gives a
deterministic feature extractor. Report which one you used.

FID = ``||mu_gt - mu_pred||^2 + Tr(S_gt + S_pred - 2 (S_gt S_pred)^{1/2})`` with ``np.cov(rowvar=False)``
covariances and ``scipy.linalg.sqrtm``; 1e-6*I is added to both covariances if the square root is not finite;
an imaginary part is dropped when its diagonal is below 1e-3, else it is an error.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from skeleton_diffusion.utils.errors import CheckpointError, InputError

__all__ = [
    "ClassifierForFID",
    "load_fid_classifier",
    "fid_features",
    "activation_statistics",
    "frechet_distance",
    "fid",
    "FIDAccumulator",
    "BELFUSION_CLASSIFIER_SHA256",
]

FID_NUM_NODES = 16
BELFUSION_CLASSIFIER_SHA256 = "f5fee4b033d86c7809e65e90f75de1f2aeb1a7265f8c5958ae6fef3fd9b9cbc1"


class ClassifierForFID(nn.Module):
    """BeLFusion's H36M GRU action classifier (input ``[batch, 48, T]``; see module docstring)."""

    def __init__(
        self,
        input_size: int = 48,
        hidden_size: int = 128,
        hidden_layer: int = 2,
        output_size: int = 15,
        hidden_init: Literal["random", "zeros"] = "random",
    ) -> None:
        super().__init__()
        if hidden_init not in ("random", "zeros"):
            raise InputError(f"hidden_init must be 'random' or 'zeros'; got {hidden_init!r}.")
        self.input_size, self.hidden_size, self.hidden_layer = input_size, hidden_size, hidden_layer
        self.hidden_init = hidden_init
        self.recurrent = nn.GRU(input_size, hidden_size, hidden_layer)
        self.linear1 = nn.Linear(hidden_size, 30)
        self.linear2 = nn.Linear(30, output_size)

    def _initial_hidden(self, batch: int, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        shape = (self.hidden_layer, batch, self.hidden_size)
        if self.hidden_init == "zeros":
            return torch.zeros(shape, device=ref.device, dtype=ref.dtype)
        return torch.randn(shape, generator=generator, device=ref.device, dtype=ref.dtype)

    def get_fid_features(
        self, motion_sequence: torch.Tensor, hidden_unit: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``motion_sequence [batch, 48, T]`` -> features ``[batch, 30]`` (tanh of the first linear layer)."""
        if motion_sequence.dim() != 3 or motion_sequence.shape[1] != self.input_size:
            raise InputError(
                f"classifier input must be [batch, {self.input_size}, T]; got {tuple(motion_sequence.shape)}."
            )
        seq = motion_sequence.permute(2, 0, 1).contiguous().float()  # [T, batch, 48]
        if hidden_unit is None:
            hidden_unit = self._initial_hidden(seq.shape[1], seq, generator)
        out, _ = self.recurrent(seq, hidden_unit)
        return torch.tanh(self.linear1(out[-1]))

    def forward(self, motion_sequence: torch.Tensor, hidden_unit: torch.Tensor | None = None) -> torch.Tensor:
        """Action logits ``[batch, output_size]``."""
        return self.linear2(self.get_fid_features(motion_sequence, hidden_unit))


def load_fid_classifier(
    path: str | os.PathLike, device: str | torch.device = "cpu", hidden_init: Literal["random", "zeros"] = "random"
) -> ClassifierForFID:
    """Load BeLFusion's ``h36m_classifier.pth`` (state dict under ``"model"``, or a bare state dict); eval mode."""
    if not os.path.isfile(path):
        raise CheckpointError(
            f"FID classifier weights not found at '{path}'. Copy BeLFusion's auxiliar/h36m_classifier.pth "
            "there (see skeleton_diffusion.metrics.fid docstring)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"Could not read FID classifier '{path}' with weights_only=True: {exc}") from exc
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != BELFUSION_CLASSIFIER_SHA256:
        warnings.warn(
            f"FID classifier '{path}' (sha256 {digest[:12]}...) is not BeLFusion's h36m_classifier.pth; "
            "FID values will not be comparable with published ones.",
            stacklevel=2,
        )
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    model = ClassifierForFID(hidden_init=hidden_init)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"'{path}' is not a ClassifierForFID state dict: {exc}") from exc
    return model.to(device).eval()


@torch.no_grad()
def fid_features(
    classifier: ClassifierForFID, motion: torch.Tensor, generator: torch.Generator | None = None,
    chunk: int = 8192,
) -> torch.Tensor:
    """Features of motions ``[..., T, 16, 3]`` (metres, metric space) -> ``[prod(...), 30]``.

    Each frame is flattened joint-major (node0 xyz, node1 xyz, ...) into 48 numbers, as the official code.
    """
    if motion.dim() < 3 or motion.shape[-2:] != (FID_NUM_NODES, 3):
        raise InputError(f"FID expects H36M motion [..., T, {FID_NUM_NODES}, 3]; got {tuple(motion.shape)}.")
    dev = next(classifier.parameters()).device
    seqs = motion.reshape(-1, motion.shape[-3], FID_NUM_NODES * 3).permute(0, 2, 1)  # [n, 48, T]
    feats = [
        classifier.get_fid_features(seqs[i : i + chunk].to(dev), generator=generator).cpu()
        for i in range(0, seqs.shape[0], chunk)
    ]
    return torch.cat(feats, dim=0)


def activation_statistics(act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (``np.cov(rowvar=False)``, N-1) of activations ``[n, D]``."""
    act = np.asarray(act, dtype=np.float64)
    if act.ndim != 2 or act.shape[0] < 2:
        raise InputError(f"FID needs activations [n >= 2, D]; got {act.shape}.")
    return act.mean(axis=0), np.cov(act, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (unitless): ``|mu1 - mu2|^2 + Tr(S1 + S2 -
    2 (S1 S2)^(1/2))`` as the official T2M function (``eps`` on the diagonals when the square root is not finite;
    an imaginary part above 1e-3 on the diagonal is an :class:`InputError`)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise InputError(f"FID statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}.")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise InputError(f"FID: the matrix square root has an imaginary part {np.max(np.abs(covmean.imag))}.")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(act_gt: np.ndarray, act_pred: np.ndarray) -> float:
    """FID between two activation sets ``[n1, D]`` and ``[n2, D]``."""
    return frechet_distance(*activation_statistics(act_gt), *activation_statistics(act_pred))


class FIDAccumulator:
    """Collects classifier features of GT ``[B, T, 16, 3]`` and predictions ``[B, S, T, 16, 3]`` over a set."""

    def __init__(self, classifier: ClassifierForFID, generator: torch.Generator | None = None) -> None:
        self.classifier, self.generator = classifier, generator
        self.gt: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        # order as the official storer: predictions first, then GT (matters for the random hidden state)
        self.pred.append(fid_features(self.classifier, pred, self.generator).numpy())
        self.gt.append(fid_features(self.classifier, target, self.generator).numpy())

    def compute(self) -> float:
        if not self.gt:
            raise ValueError("FIDAccumulator.compute() called before any update().")
        return fid(np.concatenate(self.gt), np.concatenate(self.pred))
