"""The official T2M evaluator (Guo et al. 2022, as vendored by MDM): three modules with the official parameter
names, sized from the checkpoint's tensors.

* ``movement_encoder`` (``MovementConvEncoder(dim_pose - 4, hidden, latent)``): Conv1d(k4, s2, p1) + Dropout(0.2)
  + LeakyReLU(0.2), twice, then Linear: features ``[B, T, dim_pose - 4]`` -> movements ``[B, T//4, latent]``;
* ``motion_encoder`` (``MotionEncoderBiGRUCo(latent, hidden, out)``): Linear -> bidirectional GRU (learned
  initial state ``hidden [2, 1, H]``) over the first ``length // unit_length`` movements -> Linear, LayerNorm,
  LeakyReLU(0.2), Linear -> ``[B, out]``;
* ``text_encoder`` (``TextEncoderBiGRUCo(300, 15, hidden, out)``): word vectors + Linear(POS one-hot) -> the same
  GRU head over ``sent_len`` tokens -> ``[B, out]``.

Official sizes (HumanML3D ``t2m``): 259 -> 512 -> 512; text hidden 512; motion hidden 1024; embedding 512
(KIT: ``dim_pose`` 251). :func:`load_official_t2m_evaluator` reads every size from the tensors, so reduced
files load too. The official wrapper returns rows sorted by motion length; ours returns rows in input order
(packing with ``enforce_sorted=False``), the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from skeleton_diffusion.utils.errors import CheckpointError, InputError

__all__ = [
    "MovementConvEncoder",
    "TextEncoderBiGRUCo",
    "MotionEncoderBiGRUCo",
    "OfficialT2MEvaluator",
    "load_official_t2m_evaluator",
    "official_sizes_from_state",
    "T2M_MODULES",
]

#: The three state dicts of ``text_mot_match/model/finest.tar``.
T2M_MODULES: tuple[str, ...] = ("movement_encoder", "text_encoder", "motion_encoder")


def _official_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv1d, nn.Linear)):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class MovementConvEncoder(nn.Module):
    """``[B, T, input] -> [B, T//4, output]`` (official ``main.0``, ``main.3``, ``out_net``)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.out_net = nn.Linear(output_size, output_size)
        self.main.apply(_official_init)
        self.out_net.apply(_official_init)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(inputs.permute(0, 2, 1)).permute(0, 2, 1))


class _GRUHead(nn.Module):
    """input_emb -> bidirectional GRU from the learned state ``hidden`` -> output_net (official layout)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size), nn.LayerNorm(hidden_size), nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )  # fmt: skip
        self.input_emb.apply(_official_init)
        self.output_net.apply(_official_init)
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lens = torch.as_tensor(lengths).detach().to("cpu", torch.int64).reshape(-1)
        if lens.numel() != x.shape[0]:
            raise InputError(f"{lens.numel()} lengths given for a batch of {x.shape[0]}.")
        if lens.numel() and (int(lens.min()) < 1 or int(lens.max()) > x.shape[1]):
            raise InputError(f"sequence lengths must lie in 1..{x.shape[1]} steps; got {lens.tolist()} "
                             "(motion lengths are in frames, >= unit_length).")  # fmt: skip
        packed = pack_padded_sequence(self.input_emb(x), lens, batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1).contiguous())
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoderBiGRUCo(_GRUHead):
    """Movements ``[B, L, input]`` + valid steps ``[B]`` -> ``[B, output]``."""

    def forward(self, inputs: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        return self._encode(inputs, m_lens)


class TextEncoderBiGRUCo(_GRUHead):
    """Word vectors ``[B, L, word]`` + POS one-hot ``[B, L, pos]`` + token counts ``[B]`` -> ``[B, output]``."""

    def __init__(self, word_size: int, pos_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)
        self.pos_emb.apply(_official_init)

    def forward(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, cap_lens: torch.Tensor) -> torch.Tensor:
        return self._encode(word_embs + self.pos_emb(pos_onehot), cap_lens)


class OfficialT2MEvaluator(nn.Module):
    """The official evaluator; defaults = the official HumanML3D sizes (key -> shape table of
    ``EvaluatorMDMWrapper``). ``feature_index``: which of the ``dim_pose`` features the movement encoder reads
    (default: all but the last 4 foot contacts, as officially)."""

    def __init__(
        self, dim_pose: int = 263, *, movement_hidden: int = 512, movement_latent: int = 512, word_size: int = 300,
        pos_size: int = 15, text_hidden: int = 512, motion_hidden: int = 1024, embedding: int = 512,
        unit_length: int = 4, feature_index: Sequence[int] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        index = list(range(dim_pose - 4)) if feature_index is None else [int(i) for i in feature_index]
        self.dim_pose, self.unit_length = int(dim_pose), int(unit_length)
        self.sizes = dict(dim_pose=self.dim_pose, movement_hidden=movement_hidden, movement_latent=movement_latent,
                          word_size=word_size, pos_size=pos_size, text_hidden=text_hidden,
                          motion_hidden=motion_hidden, embedding=embedding, unit_length=self.unit_length)
        self.register_buffer("feat_index", torch.tensor(index, dtype=torch.long), persistent=False)
        self.movement_encoder = MovementConvEncoder(len(index), movement_hidden, movement_latent)
        self.text_encoder = TextEncoderBiGRUCo(word_size, pos_size, text_hidden, embedding)
        self.motion_encoder = MotionEncoderBiGRUCo(movement_latent, motion_hidden, embedding)
        self.epoch = -1

    @property
    def device(self) -> torch.device:
        return self.feat_index.device

    @torch.no_grad()
    def movements(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, T, dim_pose]`` evaluator-normalised features -> movement codes ``[B, T//4, latent]``."""
        features = torch.as_tensor(features)
        if features.dim() != 3 or features.shape[-1] != self.dim_pose:
            raise InputError(f"evaluator motion features must be [B, T, {self.dim_pose}] (HumanML3D vectors "
                             f"normalised with the evaluator's mean/std); got {tuple(features.shape)}.")
        x = features.to(self.device, torch.float32)
        return self.movement_encoder(x[..., self.feat_index])

    @torch.no_grad()
    def motion_embedding(self, features: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """``features [B, T, dim_pose]`` (evaluator-normalised), ``length [B]`` frames -> ``[B, D]`` (input order)."""
        steps = torch.div(torch.as_tensor(length).to(torch.int64), self.unit_length, rounding_mode="floor")
        return self.motion_encoder(self.movements(features), steps)

    @torch.no_grad()
    def text_embedding(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """``word_embs [B, L, 300]``, ``pos_onehot [B, L, 15]``, ``length [B]`` tokens -> ``[B, D]`` (input order)."""
        w = torch.as_tensor(word_embs).to(self.device, torch.float32)
        p = torch.as_tensor(pos_onehot).to(self.device, torch.float32)
        return self.text_encoder(w, p, torch.as_tensor(length))


def official_sizes_from_state(state: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, int]:
    """Module sizes of an official ``finest.tar`` from its tensors (``KeyError`` names a missing key)."""
    mov, txt, mot = (state[k] for k in T2M_MODULES)
    return dict(
        movement_input=int(mov["main.0.weight"].shape[1]), movement_hidden=int(mov["main.0.weight"].shape[0]),
        movement_latent=int(mov["main.3.weight"].shape[0]), word_size=int(txt["pos_emb.weight"].shape[0]),
        pos_size=int(txt["pos_emb.weight"].shape[1]), text_hidden=int(txt["input_emb.weight"].shape[0]),
        motion_hidden=int(mot["input_emb.weight"].shape[0]), embedding=int(mot["output_net.3.weight"].shape[0]),
    )  # fmt: skip


def load_official_t2m_evaluator(path: str | Path, device: str | torch.device = "cpu", *, unit_length: int = 4,
                                feature_index: Sequence[int] | None = None) -> OfficialT2MEvaluator:  # fmt: skip
    """Load an official-layout ``text_mot_match/model/finest.tar`` (``weights_only=True``), eval mode.

    ``dim_pose`` = the movement encoder's input + 4 (263 HumanML3D, 251 KIT-ML) unless ``feature_index`` is given.
    The result has ``.epoch`` and ``.sizes``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"official T2M evaluator not found at '{path}' (expected "
                              "<checkpoints>/t2m/text_mot_match/model/finest.tar, or kit/... for KIT-ML).")
    try:
        ckpt: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"could not read '{path}' with weights_only=True: {exc}") from exc
    if not isinstance(ckpt, Mapping) or any(k not in ckpt for k in T2M_MODULES):
        found = sorted(ckpt) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"'{path}' is not a T2M text_mot_match checkpoint: it needs the state dicts "
                              f"{list(T2M_MODULES)}; found {found}.")  # fmt: skip
    try:
        sizes = official_sizes_from_state(ckpt)
    except (KeyError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"'{path}': a state dict lacks the official key {exc}; not the official layout.") from exc
    movement_input = sizes.pop("movement_input")
    dim_pose = movement_input + 4 if feature_index is None else None
    if feature_index is not None and len(feature_index) != movement_input:
        raise CheckpointError(f"'{path}': the movement encoder reads {movement_input} features, but "
                              f"feature_index has {len(feature_index)}.")  # fmt: skip
    model = OfficialT2MEvaluator(dim_pose if dim_pose is not None else max(feature_index) + 1,  # type: ignore[arg-type]
                                 unit_length=unit_length, feature_index=feature_index, **sizes)
    for name in T2M_MODULES:
        try:
            getattr(model, name).load_state_dict(ckpt[name])
        except RuntimeError as exc:
            raise CheckpointError(f"'{path}': '{name}' does not match the official layout: {exc}") from exc
    model.epoch = int(ckpt.get("epoch", -1))
    return model.to(device).eval()
