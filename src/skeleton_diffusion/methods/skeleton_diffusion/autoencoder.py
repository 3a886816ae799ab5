"""Recurrent static-graph autoencoder of the future motion (stage 1 of SkeletonDiffusion).

Encoder ``x [B, T, N, 3] -> z [B, N, latent]`` (ends in tanh); decoder ``(last two observed poses, z, ph) ->
ŷ [B, ph, N, 3]`` unrolled ``ph`` steps with a *constant* input ``[x_{T-1}, z]``. Module and parameter names
follow the official ``src.core.network.nn.autoencoder.AutoEncoder`` so its checkpoints load unchanged
(``encoder.rnn.layers.<i>.*``, ``encoder.fc``, ``encoder.initial_hidden1``, ``decoder.rnn.layers.0.*``,
``decoder.initial_hidden_h``, ``decoder.fc``).

Speed. The recurrences run node-major (``[N, B, F]``): per-type weights are gathered once per sequence, input
projections of all time steps are one batched product, and in the decoder the constant input is projected once;
the per-step mixing matrices ``g_i`` (data independent) are computed up front. Only the hidden path is in the loop.
Without gradients (the frozen autoencoder of the diffusion stage, sampling, evaluation) the recurrences take the
no-grad forms of :mod:`._gru_sequence` (encoder layers step-major; decoder in cache-sized batch chunks with the
output projection inside the loop); values agree with the gradient path to float rounding (``test_fast_paths``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from skeleton_diffusion.nn.graph import kernels as cpu_kernels
from skeleton_diffusion.nn.graph.layers import StaticGraphLinear, as_node_types
from skeleton_diffusion.nn.graph.recurrent import StaticGraphGRU, StaticGraphLSTM
from skeleton_diffusion.utils.errors import ConfigError, InputError

__all__ = ["Encoder", "Decoder", "AutoEncoder", "pose_loss"]

NodeTypes = Union[Tensor, Sequence[int], None]
_RECURRENT = {"StaticGraphGRU": StaticGraphGRU, "StaticGraphLSTM": StaticGraphLSTM}


def _recurrent_class(name: str, what: str) -> type:
    if name not in _RECURRENT:
        raise ConfigError(f"{what}={name!r} is not supported; choose one of {sorted(_RECURRENT)}")
    return _RECURRENT[name]


def _activation(name: str, what: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "identity":
        return nn.Identity()
    raise ConfigError(f"{what} must be 'tanh' or 'identity', got {name!r}")


def pose_loss(y_pred: Tensor, y: Tensor, loss_type: str = "l1", reduction: str = "mean") -> Tensor:
    """Official pose loss: ``|ŷ - y|`` (``l1``) or squared (``mse``), summed over xyz, averaged over joints, then time.

    ``y_pred, y [..., T, N, 3]``; ``reduction='none'`` returns ``[...]`` (e.g. ``[B]`` or ``[B, k]``), ``'mean'``
    the mean of that.
    """
    if y_pred.shape != y.shape:
        raise InputError(f"pose loss: prediction {tuple(y_pred.shape)} and target {tuple(y.shape)} differ")
    if loss_type in ("l1", "L1"):
        err = (y_pred - y).abs()
    elif loss_type == "mse":
        err = (y_pred - y).square()
    else:
        raise ConfigError(f"loss_pose_type must be 'l1' or 'mse', got {loss_type!r}")
    per = err.sum(-1).mean(-1).mean(-1)
    if reduction == "mean":
        return per.mean()
    if reduction == "none":
        return per
    raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")


class Encoder(nn.Module):
    """``x [B, T, N, input_size] -> (h [B, N, output_size], final states)``.

    ``h0 = initial_hidden1(x[:, 0])`` starts every layer; the GRU stack runs over all T frames and the top layer's
    last output goes through ``activation(fc(.))`` (tanh by default).
    """

    def __init__(self, num_nodes: int, input_size: int, hidden_size: int, output_size: int,
                 node_types: NodeTypes = None, enc_num_layers: int = 1, dropout: float = 0.0,
                 encoder_act: str = "tanh", recurrent_arch: str = "StaticGraphGRU") -> None:
        super().__init__()
        self.activation_fn = _activation(encoder_act, "encoder_act")
        self.num_layers = int(enc_num_layers)
        self.recurrent_arch = recurrent_arch
        cls = _recurrent_class(recurrent_arch, "recurrent_arch_enc")
        gl = dict(num_nodes=num_nodes, node_types=node_types, learn_influence=True)
        self.rnn = cls(input_size, hidden_size, num_layers=self.num_layers, bias=True, clockwork=False, **gl)
        self.fc = StaticGraphLinear(hidden_size, output_size, bias=True, **gl)
        self.initial_hidden1 = StaticGraphLinear(input_size, hidden_size, bias=True, **gl)
        if recurrent_arch == "StaticGraphLSTM":
            self.initial_hidden_c = StaticGraphLinear(input_size, hidden_size, bias=True, **gl)
        self.dropout = nn.Dropout(dropout)
        self.num_nodes = num_nodes
        self.input_size = input_size

    def forward(self, x: Tensor) -> Tuple[Tensor, list]:
        if x.ndim != 4 or x.shape[2] != self.num_nodes or x.shape[3] != self.input_size:
            raise InputError(f"Encoder expected x [B, T, {self.num_nodes}, {self.input_size}], got {tuple(x.shape)}")
        if self.recurrent_arch == "StaticGraphLSTM":
            h0 = self.initial_hidden1(x[:, 0])
            c0 = self.initial_hidden_c(x[:, 0])
            y, states = self.rnn(x, [(h0, c0, None)] * self.num_layers)
            return self.activation_fn(self.fc(self.dropout(y[:, -1]))), states
        x_nm = x.permute(2, 1, 0, 3)  # [N, T, B, in]
        h0 = self.initial_hidden1.forward_node_major(x_nm[:, 0])  # [N, B, H]
        _, finals = self.rnn.forward_node_major(x_nm, [(h0, None)] * self.num_layers, keep_top_outputs=False)
        h_last = finals[-1][0]  # [N, B, H]
        out = self.fc.forward_node_major(self.dropout(h_last))  # [N, B, out]
        states = [(h.transpose(0, 1), g) for h, g in finals]
        return self.activation_fn(out.transpose(0, 1)), states


class Decoder(nn.Module):
    """``(x [B, >=2, N, 3] (last two observed frames used), h [B, N, latent], ph) -> ŷ [B, ph, N, 3]``.

    Initial state ``initial_hidden_h([x_{-2}, h])``; constant recurrent input ``u = [x_{-1}, h]``; each step one
    GRU step (mixing ``g_i``, then ``g_{i+1} = normalise(g_i + G_add)``) and ``ŷ_i = tanh(fc(h_i))``.
    """

    #: without gradients, decode in time chunks holding at most this many hidden-state floats (None: 2**22 on
    #: CPU, i.e. 16 MB that the allocator reuses, 2**27 elsewhere)
    inference_chunk_elements: Optional[int] = None
    #: without gradients on CPU, decode at most this many sequences at a time (a cache-sized working set; on
    #: accelerators all sequences run together)
    inference_batch_chunk_cpu: int = 64
    #: without gradients (single-layer GRU), apply the output layer's projection to each state inside the
    #: recurrence instead of storing all states and projecting them afterwards
    project_in_recurrence: bool = True

    def __init__(self, num_nodes: int, feature_size: int, input_size: int, hidden_size: int, output_size: int,
                 node_types: NodeTypes = None, dec_num_layers: int = 1, dropout: float = 0.0,
                 recurrent_arch_decoder: str = "StaticGraphGRU") -> None:
        super().__init__()
        self.num_layers = int(dec_num_layers)
        self.activation_fn = nn.Tanh()
        self.recurrent_arch = recurrent_arch_decoder
        cls = _recurrent_class(recurrent_arch_decoder, "recurrent_arch_decoder")
        gl = dict(num_nodes=num_nodes, node_types=node_types, learn_influence=True)
        self.rnn = cls(feature_size + input_size, hidden_size, num_layers=self.num_layers, recurrent_dropout=dropout,
                       learn_additive_graph_influence=True, clockwork=False, **gl)
        self.initial_hidden_h = StaticGraphLinear(feature_size + input_size, hidden_size, **gl)
        if recurrent_arch_decoder == "StaticGraphLSTM":
            self.initial_hidden_c = StaticGraphLinear(feature_size + input_size, hidden_size, **gl)
        self.fc = StaticGraphLinear(hidden_size, output_size, **gl)
        self.dropout = nn.Dropout(dropout)
        self.num_nodes = num_nodes
        self.feature_size = feature_size
        self.input_size = input_size

    def _check(self, x: Tensor, h: Tensor, ph: int) -> None:
        if x.ndim != 4 or x.shape[1] < 2 or x.shape[2] != self.num_nodes or x.shape[3] != self.feature_size:
            raise InputError(f"Decoder expected past x [B, >=2, {self.num_nodes}, {self.feature_size}], "
                             f"got {tuple(x.shape)}")
        if h.shape != (x.shape[0], self.num_nodes, self.input_size):
            raise InputError(f"Decoder expected latent [B={x.shape[0]}, {self.num_nodes}, {self.input_size}], "
                             f"got {tuple(h.shape)}")
        if int(ph) < 1:
            raise InputError(f"prediction horizon ph must be >= 1, got {ph}")

    def forward(self, x: Tensor, h: Tensor, z: Optional[Tensor] = None, ph: int = 1) -> Tensor:
        """Decode ``ph`` frames. ``z`` (past embedding) is accepted for API compatibility and unused."""
        self._check(x, h, ph)
        if self.recurrent_arch == "StaticGraphLSTM":
            return self._forward_lstm(x, h, ph)
        ph = int(ph)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (x, h, *self.parameters())):
            return self._decode_span(x, h, ph, ph, inference=False)
        # inference: chunks of sequences (CPU cache) and of time steps (bounded memory, reused allocations)
        on_cpu = h.device.type == "cpu"
        budget = self.inference_chunk_elements or (2 ** 22 if on_cpu else 2 ** 27)
        bchunk = max(1, self.inference_batch_chunk_cpu) if on_cpu else x.shape[0]
        if bchunk >= x.shape[0]:
            tchunk = max(1, min(ph, budget // max(1, self.num_nodes * x.shape[0] * self.rnn.hidden_size)))
            return self._decode_span(x, h, ph, tchunk, inference=True)
        out = h.new_empty(x.shape[0], ph, self.num_nodes, self.fc.out_features)
        tchunk = max(1, min(ph, budget // max(1, self.num_nodes * bchunk * self.rnn.hidden_size)))
        starts = range(0, x.shape[0], bchunk)

        def decode_chunk(i: int) -> None:
            b0 = starts[i]
            out[b0:b0 + bchunk] = self._decode_span(x[b0:b0 + bchunk], h[b0:b0 + bchunk], ph, tchunk, inference=True)

        cpu_kernels.run_chunks(decode_chunk, len(starts))  # (CPU only here) parallel threads when torch has k > 1
        return out

    def _decode_span(self, x: Tensor, h: Tensor, ph: int, chunk: int, inference: bool) -> Tensor:
        """GRU decoding of ``ph`` steps, ``chunk`` steps at a time (``x`` already checked). ``[B, ph, N, out]``.
        ``inference``: no gradient is needed (the recurrences then hand back time-major states, which the output
        layer reads as they are)."""
        init_in = torch.cat([x[:, -2], h], dim=-1).transpose(0, 1)  # [N, B, F+L]
        u = torch.cat([x[:, -1], h], dim=-1).transpose(0, 1)  # [N, B, F+L], constant over the ph steps
        h0 = self.initial_hidden_h.forward_node_major(init_in)  # [N, B, H], starts every layer
        cells = list(self.rnn.layers)
        n, bsz, hs = h0.shape
        states: list = [(h0, None)] * self.num_layers
        outs = []
        time_major = inference and not (self.dropout.training and self.dropout.p > 0)
        project_in_loop = time_major and self.project_in_recurrence and self.num_layers == 1 and all(
            c._can_fuse() and c._inference_path(u) for c in cells)
        for start in range(0, ph, chunk):
            steps = min(chunk, ph - start)
            if project_in_loop:
                proj, h_new, g_new = cells[0].run_constant_input_projected(
                    u, states[0][0], steps, self.fc.node_weight().transpose(1, 2), states[0][1])
                states = [(h_new, g_new)]
                outs.append(self.activation_fn(self.fc.mix_time_major(proj)))  # [T, N, B, out]
                continue
            # Layer l at step i depends only on layer l-1 at step i and its own past, so the stack runs layer by
            # layer over the chunk (identical to the official step-major order).
            y_nm, h_new, g_new = cells[0].run_constant_input(u, states[0][0], steps, states[0][1])  # [N, T, B, H]
            new_states = [(h_new, g_new)]
            for li, cell in enumerate(cells[1:], start=1):
                y_nm, h_new, g_new = cell.run_node_major(self.rnn.dropout(y_nm), states[li][0], states[li][1])
                new_states.append((h_new, g_new))
            states = new_states
            if time_major:
                outs.append(self.activation_fn(self.fc.forward_time_major(y_nm.transpose(0, 1))))  # [T, N, B, out]
                continue
            y_nm = self.dropout(y_nm)
            y = self.fc.forward_node_major(y_nm.reshape(n, steps * bsz, hs))  # [N, T*B, out]
            outs.append(self.activation_fn(y).view(n, steps, bsz, -1))
        if time_major:
            return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)).permute(2, 0, 1, 3)
        y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return y.permute(2, 1, 0, 3)

    def _forward_lstm(self, x: Tensor, h: Tensor, ph: int) -> Tensor:
        init_in = torch.cat([x[:, -2], h], dim=-1)
        rnn_h = self.initial_hidden_h(init_in)
        rnn_c = self.initial_hidden_c(init_in)
        states = [(rnn_h, rnn_c, None)] * self.num_layers
        rec_input = torch.cat([x[:, -1], h], dim=-1).unsqueeze(1)
        outs = []
        for i in range(int(ph)):
            y, states = self.rnn(rec_input, states, t_i=i)
            outs.append(self.activation_fn(self.fc(self.dropout(y[:, 0]))))
        return torch.stack(outs, dim=1)


class AutoEncoder(nn.Module):
    """SkeletonDiffusion's recurrent static-graph autoencoder (official API semantics).

    Args (``model.autoenc_arch`` config keys and ``latent_size``, ``z_activation``, ``loss_pose_type``):
        num_nodes: N (root dropped), e.g. 21 for AMASS.
        node_types: length-N node type ids (left/right share a type), e.g. ``skeleton.node_types``.
        latent_size: per-node latent width D (96).
        output_size: per-node output width; must equal ``input_size`` (3, xyz).
        input_size: per-node input width (3).
        z_activation: ``'tanh'`` | ``'identity'``; applied once more to the *past* embedding (the condition).
        loss_pose_type: ``'l1'`` | ``'mse'`` (see :func:`pose_loss`).
        enc_num_layers, dec_num_layers: GRU layers of encoder / decoder (AMASS recipe: 2 / 1).
        encoder_hidden_size, decoder_hidden_size: GRU widths (96).
        recurrent_arch_enc, recurrent_arch_decoder: ``'StaticGraphGRU'`` (paper) or ``'StaticGraphLSTM'``.
        dropout: decoder recurrent/output dropout (official default 0).
        obs_length, pred_length: nominal sequence lengths (metadata only; any length works).
        arch: accepted for config compatibility (must be ``'AutoEncoder'`` when given).
        if_consider_hip: must be False (the root is never a node); accepted for config compatibility.
        use_compile: fuse each GRU step's elementwise gate math with ``torch.compile`` (off by default; helps on
            GPUs, costs a first-call compilation; falls back to eager ops with a warning if compilation fails).
    """

    def __init__(self, num_nodes: int, node_types: NodeTypes = None, latent_size: int = 96, output_size: int = 3,
                 z_activation: str = "tanh", loss_pose_type: str = "l1", enc_num_layers: int = 1,
                 dec_num_layers: int = 1, encoder_hidden_size: int = 96, decoder_hidden_size: int = 96,
                 recurrent_arch_enc: str = "StaticGraphGRU", recurrent_arch_decoder: str = "StaticGraphGRU",
                 obs_length: int = 30, pred_length: int = 120, input_size: int = 3, dropout: float = 0.0,
                 arch: Optional[str] = None, if_consider_hip: bool = False, use_compile: bool = False) -> None:
        super().__init__()
        if output_size != input_size:
            raise ConfigError(f"output_size ({output_size}) must equal input_size ({input_size})")
        if arch not in (None, "AutoEncoder"):
            raise ConfigError(f"autoenc_arch.arch={arch!r} is not supported; only 'AutoEncoder' exists")
        if if_consider_hip:
            raise ConfigError("if_consider_hip=True is not supported: the root joint is never a graph node")
        if loss_pose_type not in ("l1", "L1", "mse"):
            raise ConfigError(f"loss_pose_type must be 'l1' or 'mse', got {loss_pose_type!r}")
        types = as_node_types(node_types, num_nodes)
        self.num_nodes = int(num_nodes)
        self.latent_size = int(latent_size)
        self.loss_pose_type = loss_pose_type
        self.obs_length = int(obs_length)
        self.pred_length = int(pred_length)
        self.encoder = Encoder(num_nodes=num_nodes, input_size=input_size, hidden_size=encoder_hidden_size,
                               output_size=latent_size, node_types=types, enc_num_layers=enc_num_layers,
                               recurrent_arch=recurrent_arch_enc)
        self.decoder = Decoder(num_nodes=num_nodes, feature_size=input_size, input_size=latent_size,
                               hidden_size=decoder_hidden_size, output_size=output_size, node_types=types,
                               dec_num_layers=dec_num_layers, dropout=dropout,
                               recurrent_arch_decoder=recurrent_arch_decoder)
        self.z_activation = _activation(z_activation, "z_activation")
        self.set_compile(use_compile)

    def set_compile(self, enabled: bool) -> None:
        """Switch the ``torch.compile``-d GRU gate step on or off for every recurrent layer."""
        for module in self.modules():
            if hasattr(module, "compile_gates"):
                module.compile_gates = bool(enabled)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x [B, T, N, 3]`` -> ``[B, N, latent]`` (encoder output, one tanh)."""
        return self.encoder(x)[0]

    def get_past_embedding(self, past: Tensor) -> Tensor:
        """Diffusion condition ``z_past = z_activation(encoder(past))`` (double tanh); encoder run under no_grad."""
        with torch.no_grad():
            h = self(past)
        return self.z_activation(h)

    def get_embedding(self, future: Tensor) -> Tensor:
        """Diffusion target ``z = encoder(future)`` ``[B, N, latent]``."""
        return self(future)

    def get_train_embeddings(self, y: Tensor, past: Tensor) -> Tuple[Tensor, Tensor]:
        """``(z_past, z)`` as used by the diffusion trainer: condition from ``past``, target from ``y``."""
        return self.get_past_embedding(past), self.get_embedding(y)

    def decode(self, x: Tensor, h: Tensor, z: Optional[Tensor] = None, ph: int = 1) -> Tensor:
        """Decode ``ph`` frames ``[B, ph, N, 3]`` from the last two frames of ``x [B, T_obs, N, 3]`` and latent
        ``h [B, N, latent]``; ``z`` (past embedding) is unused, kept for the official call signature."""
        return self.decoder(x[:, -2:], h, z, ph=ph)

    def autoencode(self, y: Tensor, past: Tensor, ph: int = 1, compute_past_embedding: bool = True
                   ) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """Reconstruct the future: ``(ŷ [B, ph, N, 3], z_past, z)``.

        ``compute_past_embedding=False`` skips the (unused) past encoding and returns ``None`` for ``z_past``; the
        prediction is identical (the official trainer computes it and throws it away).
        """
        z_past = self.get_past_embedding(past) if compute_past_embedding else None
        z = self.get_embedding(y)
        return self.decode(past, z, z_past, ph), z_past, z

    def loss(self, y_pred: Tensor, y: Tensor, type: Optional[str] = None, reduction: str = "mean") -> Tensor:
        """Pose loss (:func:`pose_loss`) with this model's ``loss_pose_type`` unless ``type`` is given."""
        return pose_loss(y_pred, y, self.loss_pose_type if type is None else type, reduction)
