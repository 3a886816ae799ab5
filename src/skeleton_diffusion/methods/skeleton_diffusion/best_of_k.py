"""Best-of-k relaxed diffusion loss with fast selection (spec §6.2, §9.1).

Each latent is copied k times with one shared timestep and independent noise; the candidate whose one-step x̂₀
is closest to the ground truth (in ``input_space``, ``metric_space`` or ``latent_space``) is selected and only
its diffusion loss is back-propagated.

:func:`best_of_k_loss` (ours): all k·B candidates are denoised, decoded and scored with autograd OFF, in
chunks of bounded size; then only the B winners are recomputed with gradients, reusing their stored noise.
Loss value and gradient equal the official computation (the network is deterministic).
:func:`naive_best_of_k_loss`: the official way (all candidates with autograd; decoding with autograd too
unless ``decode_with_grad=False``) for tests and benchmarks.

Random draws follow the official order: ``t = randint(0, T, [B])`` then ``noise = randn([B·k, N, D])``.
Shapes: ``z_future, z_past [B, N, D]``; ``obs [B, T_obs, N, 3]``; ``fut [B, T_pred, N, 3]`` (input space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Union

import torch
from torch import Tensor, nn

from skeleton_diffusion.diffusion.samplers import white_noise
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["SIMILARITY_SPACES", "BestOfKOutput", "best_of_k_loss", "naive_best_of_k_loss", "auto_chunk_size"]

SIMILARITY_SPACES = ("input_space", "latent_space", "metric_space")


class _AutoEncoderLike(Protocol):
    def decode(self, x: Tensor, h: Tensor, z: Optional[Tensor] = None, ph: int = 1) -> Tensor: ...
    def loss(self, y_pred: Tensor, y: Tensor, type: Optional[str] = None, reduction: str = "mean") -> Tensor: ...


@dataclass
class BestOfKOutput:
    """``loss`` scalar (with grad) = mean_b(selected_loss · loss_weight); ``selected_idx [B]`` in 0..k-1;
    ``selected_loss [B]`` (with grad); ``loss_weight [B]``; ``similarity [B, k]`` and ``candidate_loss [B, k]``
    (no grad); ``t [B]``; ``noise [B·k, N, D]``."""

    loss: Tensor
    selected_idx: Tensor
    selected_loss: Tensor
    loss_weight: Tensor
    similarity: Tensor
    candidate_loss: Tensor
    t: Tensor
    noise: Tensor


def auto_chunk_size(device: torch.device, k: int) -> int:
    """Candidates per no-grad chunk: 1024 on CPU, 4096 on accelerators, at least k."""
    base = 1024 if torch.device(device).type == "cpu" else 4096
    return max(int(k), base)


def _check_inputs(diffusion: nn.Module, z_future: Tensor, z_past: Optional[Tensor], obs: Optional[Tensor],
                  fut: Optional[Tensor], k: int, space: str, pose_box_size: Optional[float]) -> None:
    if space not in SIMILARITY_SPACES:
        raise ConfigError(f"similarity_space must be one of {SIMILARITY_SPACES}, got {space!r}")
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k (train_pick_best_sample_among_k) must be a positive int, got {k!r}")
    diffusion._check_x(z_future, "z_future")
    b = z_future.shape[0]
    if z_past is not None and z_past.shape[0] != b:
        raise InputError(f"z_past batch {z_past.shape[0]} != z_future batch {b}")
    if k > 1 and space != "latent_space":
        if obs is None or fut is None:
            raise InputError(f"similarity_space={space!r} needs obs and fut to decode the candidates")
        if obs.dim() != 4 or fut.dim() != 4 or obs.shape[0] != b or fut.shape[0] != b:
            raise InputError(f"obs/fut must be [B, T, N, 3] with B={b}, got {tuple(obs.shape)}/{tuple(fut.shape)}")
        if space == "metric_space" and pose_box_size is None:
            raise ConfigError("similarity_space='metric_space' needs pose_box_size")


def _draw(diffusion: nn.Module, z_future: Tensor, k: int, t: Optional[Tensor], noise: Optional[Tensor],
          generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor]:
    b = z_future.shape[0]
    if t is None:
        t = diffusion.sample_timesteps(b, z_future.device, generator)
    elif t.shape != (b,):
        raise InputError(f"t must be [{b}], got {tuple(t.shape)}")
    shape = (b * k, *z_future.shape[1:])
    if noise is None:
        noise = white_noise(shape, z_future, generator)
    elif tuple(noise.shape) != shape:
        raise InputError(f"noise must be {shape}, got {tuple(noise.shape)}")
    return t, noise


def _per_sample_loss(diffusion: nn.Module, model_out: Tensor, target: Tensor, t: Tensor) -> Tensor:
    elementwise = diffusion.loss_funct(model_out, target, t)
    return elementwise.mean(dim=tuple(range(1, elementwise.dim())))


def _similarity(space: str, autoencoder: _AutoEncoderLike, decoded: Tensor, fut: Tensor,
                pose_box_size: Optional[float]) -> Tensor:
    """Distance of decoded candidates ``[C, T, N, 3]`` to their ground truth ``[C, T, N, 3]`` -> ``[C]``."""
    if space == "input_space":
        return autoencoder.loss(decoded, fut, reduction="none")
    # metric space: L2 over the flattened N·3 pose per frame (metres), mean over frames (official ADE-like)
    diff = (decoded * pose_box_size).flatten(start_dim=2) - (fut * pose_box_size).flatten(start_dim=2)
    return torch.linalg.norm(diff, dim=-1).mean(dim=-1)


def _select(similarity: Tensor, b: int) -> Tensor:
    """Index of the closest candidate per sample (first one on ties, as the official ``min``)."""
    return similarity.view(b, -1).min(dim=-1).indices


def best_of_k_loss(
    diffusion: nn.Module,
    autoencoder: Optional[_AutoEncoderLike],
    z_future: Tensor,
    z_past: Optional[Tensor],
    obs: Optional[Tensor],
    fut: Optional[Tensor],
    k: int,
    similarity_space: str = "input_space",
    *,
    pose_box_size: Optional[float] = None,
    prediction_horizon: Optional[int] = None,
    chunk_size: Union[int, str, None] = "auto",
    t: Optional[Tensor] = None,
    noise: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> BestOfKOutput:
    """Fast best-of-k diffusion loss (see module docstring).

    ``prediction_horizon`` defaults to ``fut.shape[1]`` (official: ``prediction_horizon_eval`` = 120);
    ``chunk_size`` = candidates decoded per no-grad chunk (``'auto'``: :func:`auto_chunk_size`).
    ``autoencoder`` should be frozen and in eval mode (it is only run under no_grad here). k = 1 is the plain
    loss. Memory: one chunk of candidates at a time plus the ``[B·k, N, D]`` noise; nothing of the k·B
    candidates is kept for backward.
    """
    _check_inputs(diffusion, z_future, z_past, obs, fut, k, similarity_space, pose_box_size)
    b = z_future.shape[0]
    t, noise = _draw(diffusion, z_future, k, t, noise, generator)
    weight = diffusion.loss_weight.index_select(0, t)
    if k == 1:
        x_t = diffusion.q_sample(z_future, t, noise)
        loss_b = _per_sample_loss(diffusion, diffusion.feed_model(x_t, t, x_cond=z_past), z_future, t)
        zero = torch.zeros(b, dtype=torch.long, device=t.device)
        return BestOfKOutput((loss_b * weight).mean(), zero, loss_b, weight, loss_b.detach().view(b, 1),
                             loss_b.detach().view(b, 1), t, noise)

    ph = int(prediction_horizon or (fut.shape[1] if fut is not None else 0))
    n_cand = b * k
    chunk = auto_chunk_size(z_future.device, k) if chunk_size in (None, "auto") else int(chunk_size)
    if chunk < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size!r}")
    sims, cand_losses = [], []
    with torch.no_grad():
        for start in range(0, n_cand, chunk):
            rows = torch.arange(start, min(start + chunk, n_cand), device=z_future.device)
            src = torch.div(rows, k, rounding_mode="floor")           # original sample of each candidate
            x0 = z_future.index_select(0, src)
            tt = t.index_select(0, src)
            cond = z_past.index_select(0, src) if z_past is not None else None
            x_t = diffusion.q_sample(x0, tt, noise.index_select(0, rows))
            x0_hat = diffusion.feed_model(x_t, tt, x_cond=cond)
            cand_losses.append(_per_sample_loss(diffusion, x0_hat, x0, tt))
            if similarity_space != "latent_space":
                decoded = autoencoder.decode(obs.index_select(0, src)[:, -2:], x0_hat, cond, ph)
                sims.append(_similarity(similarity_space, autoencoder, decoded, fut.index_select(0, src)[:, :ph],
                                        pose_box_size))
        candidate_loss = torch.cat(cand_losses).view(b, k)
        similarity = candidate_loss if similarity_space == "latent_space" else torch.cat(sims).view(b, k)
        selected_idx = _select(similarity, b)
    # recompute only the winners, with gradients
    rows = torch.arange(b, device=t.device) * k + selected_idx
    x_t_sel = diffusion.q_sample(z_future, t, noise.index_select(0, rows))
    selected_loss = _per_sample_loss(diffusion, diffusion.feed_model(x_t_sel, t, x_cond=z_past), z_future, t)
    return BestOfKOutput((selected_loss * weight).mean(), selected_idx, selected_loss, weight, similarity,
                         candidate_loss, t, noise)


def naive_best_of_k_loss(
    diffusion: nn.Module,
    autoencoder: Optional[_AutoEncoderLike],
    z_future: Tensor,
    z_past: Optional[Tensor],
    obs: Optional[Tensor],
    fut: Optional[Tensor],
    k: int,
    similarity_space: str = "input_space",
    *,
    pose_box_size: Optional[float] = None,
    prediction_horizon: Optional[int] = None,
    decode_with_grad: bool = True,
    t: Optional[Tensor] = None,
    noise: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> BestOfKOutput:
    """The official computation: all B·k candidates through the network with autograd, all decoded in one
    batch (with autograd when ``decode_with_grad``, as the official trainer), argmin, gather."""
    _check_inputs(diffusion, z_future, z_past, obs, fut, k, similarity_space, pose_box_size)
    b = z_future.shape[0]
    t, noise = _draw(diffusion, z_future, k, t, noise, generator)
    out = diffusion.p_losses(z_future, t, noise=noise, x_cond=z_past, n_train_samples=k)
    if k == 1:
        zero = torch.zeros(b, dtype=torch.long, device=t.device)
        return BestOfKOutput((out.loss * out.weight).mean(), zero, out.loss, out.weight,
                             out.loss.detach().view(b, 1), out.loss.detach().view(b, 1), t, noise)
    if similarity_space == "latent_space":
        similarity = out.loss.detach().view(b, k)
    else:
        ph = int(prediction_horizon or fut.shape[1])
        cond = z_past.repeat_interleave(k, dim=0) if z_past is not None else None
        with torch.set_grad_enabled(decode_with_grad and torch.is_grad_enabled()):
            decoded = autoencoder.decode(obs.repeat_interleave(k, dim=0), out.model_out, cond, ph)
        with torch.no_grad():
            similarity = _similarity(similarity_space, autoencoder, decoded,
                                     fut[:, :ph].repeat_interleave(k, dim=0), pose_box_size).view(b, k)
        del decoded
    with torch.no_grad():
        selected_idx = _select(similarity, b)
    selected_loss = torch.gather(out.loss.view(b, k), 1, selected_idx.unsqueeze(1)).squeeze(1)
    return BestOfKOutput((selected_loss * out.weight).mean(), selected_idx, selected_loss, out.weight, similarity,
                         out.loss.detach().view(b, k), t, noise)
