"""Evaluator encoders for generation metrics: motion encoder + text encoder (+ action head), trained
contrastively on the dataset at hand, and a loader for the official T2M evaluator checkpoint.

Why our own: the generation metrics (FID, R-precision, MM-Dist, Diversity, MultiModality) are computed in the
embedding space of an evaluator. The official one (T2M ``text_mot_match/model/finest.tar``, HumanML3D only)
cannot be downloaded here and does not know our datasets, so :mod:`.train_generation_evaluator` trains one.
Numbers from different evaluators are **not comparable**; the checkpoint's SHA-256 goes into the results.

Our evaluator (:class:`GenerationEvaluator`), same design as the official one, smaller:
motion ``[B, T, J, 3]`` (metres, canonical frame, see :mod:`skeleton_diffusion.data.windows.generation`) ->
per-frame features (:func:`motion_features`: root-relative joints, root trajectory from frame 0, joint
velocities; ``6 J`` numbers, normalised by training statistics) -> movement encoder (two stride-2 1-D
convolutions, LeakyReLU, dropout 0.2, linear: ``T/4`` steps) -> bidirectional GRU over the valid steps -> MLP ->
motion embedding ``[B, D]``. Text: a :class:`~skeleton_diffusion.nn.text_encoders.ScratchTextEncoder` -> ``[B, D]``. Action
head: linear ``D -> num_actions`` on the motion embedding. Distances are Euclidean, as in the metrics.

Body parts (``eval_part=all|upper|lower``, official CrossDiff): a part evaluator is built with the part's joint
indices (:func:`skeleton_diffusion.tasks.generation.body_parts.skeleton_part_joints`); it still takes the full motion
``[B, T, J, 3]`` and keeps only that part's features (:func:`part_feature_indices`: as the official split of the
263-d features, the root trajectory and the root velocity belong to the part that contains the root joint).
``config`` records ``eval_part`` and ``part_joints``; :func:`load_evaluator` (``eval_part=``) refuses another part.

Checkpoint (``torch.load(weights_only=True)``): ``{"format": "sd-generation-evaluator-v1", "config": {...},
"state_dict": {...}, "action_names": [...], "vocab": [...]}``.

Official evaluator (:func:`load_official_t2m_evaluator`): the three modules with the official parameter
names (``MovementConvEncoder(259, 512, 512)``, ``TextEncoderBiGRUCo(300, 15, 512, 512)``,
``MotionEncoderBiGRUCo(512, 1024, 512)``), state dicts under ``movement_encoder`` / ``text_encoder`` /
``motion_encoder`` of ``finest.tar``. Its motion input is HumanML3D's 263-d features without the 4 foot
contacts, normalised by the evaluator's own Mean/Std; its text input is GloVe word vectors (300-d) + one-hot
POS tags (15) from the ``texts/`` token field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from skeleton_diffusion.nn.text_encoders import ScratchTextEncoder
from skeleton_diffusion.utils.errors import CheckpointError, InputError
from skeleton_diffusion.utils.io import atomic_torch_save

__all__ = [
    "motion_features",
    "part_feature_indices",
    "MovementConvEncoder",
    "MotionEncoderBiGRUCo",
    "TextEncoderBiGRUCo",
    "GenerationEvaluator",
    "save_evaluator",
    "load_evaluator",
    "OfficialT2MEvaluator",
    "official_part_feature_indices",
    "load_official_t2m_evaluator",
    "EVALUATOR_FORMAT",
    "POS_TAGS",
]

EVALUATOR_FORMAT = "sd-generation-evaluator-v1"
#: The official evaluator's POS one-hot order (15 tags).
POS_TAGS = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV", "Loc_VIP", "Body_VIP", "Obj_VIP",
            "Act_VIP", "Desc_VIP", "OTHER")  # fmt: skip


def motion_features(motion: torch.Tensor) -> torch.Tensor:
    """``[B, T, J, 3]`` metres -> ``[B, T, 6 J]``: joints relative to the root ``(J-1)*3``, root position
    relative to the frame-0 root 3, per-frame velocities of all joints ``J*3`` (metres/frame, 0 at frame 0).
    Invariant to a translation of the whole window, so generators that place the frame-0 root at the origin
    (height dropped) and data that keep the height are embedded alike."""
    if motion.dim() != 4 or motion.shape[-1] != 3:
        raise InputError(f"evaluator motion must be [B, T, J, 3]; got {tuple(motion.shape)}.")
    b, t, j, _ = motion.shape
    rel = (motion[:, :, 1:] - motion[:, :, :1]).reshape(b, t, -1)
    vel = torch.zeros_like(motion)
    vel[:, 1:] = motion[:, 1:] - motion[:, :-1]
    return torch.cat([rel, motion[:, :, 0] - motion[:, :1, 0], vel.reshape(b, t, -1)], dim=-1)


def part_feature_indices(num_joints: int, joints: Sequence[int]) -> list[int]:
    """Indices into :func:`motion_features`' ``6 J`` numbers that belong to ``joints``: their root-relative
    positions (joint 0 has none), the root trajectory (only if 0 is in ``joints``) and their velocities."""
    j = int(num_joints)
    sel = sorted({int(k) for k in joints})
    if not sel or sel[0] < 0 or sel[-1] >= j:
        raise InputError(f"part joints must be a non-empty subset of 0..{j - 1}; got {list(joints)}.")
    rel = [(k - 1) * 3 + a for k in sel if k > 0 for a in range(3)]
    root = [(j - 1) * 3 + a for a in range(3)] if sel[0] == 0 else []
    vel = [j * 3 + k * 3 + a for k in sel for a in range(3)]
    return rel + root + vel


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv1d, nn.Linear)):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class MovementConvEncoder(nn.Module):
    """``[B, T, F] -> [B, T/4, out]``: Conv1d(4, stride 2) x 2 with dropout 0.2 + LeakyReLU(0.2), then linear.
    Parameter names as the official module (``main.0``, ``main.3``, ``out_net``)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(x.permute(0, 2, 1)).permute(0, 2, 1))


class _BiGRUCo(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size), nn.LayerNorm(hidden_size), nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )  # fmt: skip
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))
        self.input_emb.apply(_init)
        self.output_net.apply(_init)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.detach().to("cpu").clamp(min=1, max=x.shape[1])
        packed = pack_padded_sequence(self.input_emb(x), lengths, batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1).contiguous())
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoderBiGRUCo(_BiGRUCo):
    """Movement sequence ``[B, L, input]`` + valid lengths ``[B]`` -> ``[B, output]`` (official names)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self._run(x, lengths)


class TextEncoderBiGRUCo(_BiGRUCo):
    """Official text encoder: word vectors ``[B, L, word]`` + POS one-hot ``[B, L, pos]`` + lengths -> ``[B, out]``."""

    def __init__(self, word_size: int, pos_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)
        self.pos_emb.apply(_init)

    def forward(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self._run(word_embs + self.pos_emb(pos_onehot), lengths)


class GenerationEvaluator(nn.Module):
    """Our evaluator (see module doc). ``motion_embedding(motion [B,T,J,3], length [B]) -> [B, D]``,
    ``text_embedding(list[str]) -> [B, D]``, ``action_logits(motion, length) -> [B, A]``."""

    def __init__(
        self, num_joints: int, vocab: Sequence[str], action_names: Sequence[str], *, dim: int = 256,
        movement_hidden: int = 256, movement_latent: int = 256, motion_hidden: int = 256,
        text_width: int = 128, text_layers: int = 2, unit_length: int = 4, eval_part: str = "all",
        part_joints: Sequence[int] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        joints = list(range(int(num_joints))) if part_joints is None else sorted(int(k) for k in part_joints)
        self.config = dict(num_joints=int(num_joints), dim=int(dim), movement_hidden=int(movement_hidden),
                           movement_latent=int(movement_latent), motion_hidden=int(motion_hidden),
                           text_width=int(text_width), text_layers=int(text_layers),
                           unit_length=int(unit_length), eval_part=str(eval_part),
                           part_joints=joints)  # fmt: skip
        self.action_names = tuple(action_names)
        self.register_buffer("feat_index", torch.tensor(part_feature_indices(num_joints, joints)), persistent=False)
        feat = int(self.feat_index.numel())
        self.register_buffer("feat_mean", torch.zeros(feat))
        self.register_buffer("feat_std", torch.ones(feat))
        self.movement_encoder = MovementConvEncoder(feat, movement_hidden, movement_latent)
        self.motion_encoder = MotionEncoderBiGRUCo(movement_latent, motion_hidden, dim)
        self.text_encoder = ScratchTextEncoder(vocab, dim=dim, width=text_width, num_layers=text_layers,
                                               num_heads=4, dropout=0.1)  # fmt: skip
        self.action_head = nn.Linear(dim, max(1, len(self.action_names)))
        self.dim = int(dim)

    @property
    def vocab(self) -> list[str]:
        return self.text_encoder.vocab

    @property
    def eval_part(self) -> str:
        return str(self.config["eval_part"])

    def part_features(self, motion: torch.Tensor) -> torch.Tensor:
        """``[B, T, J, 3]`` (all joints) -> un-normalised features of this evaluator's part ``[B, T, F]``."""
        if motion.dim() != 4 or motion.shape[2] != self.config["num_joints"]:
            raise InputError(f"the evaluator was trained on {self.config['num_joints']} joints (all of them, "
                             f"eval_part={self.eval_part} selects its own); got motion {tuple(motion.shape)}.")
        return motion_features(motion.float())[..., self.feat_index.to(motion.device)]

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp(min=1e-4))

    def motion_embedding(self, motion: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        dev = self.feat_mean.device
        feats = (self.part_features(motion.to(dev)) - self.feat_mean) / self.feat_std
        movements = self.movement_encoder(feats)
        steps = torch.div(length.to(dev), self.config["unit_length"], rounding_mode="floor")
        return self.motion_encoder(movements, steps.clamp(min=1, max=movements.shape[1]))

    def text_embedding(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text_encoder(list(texts))

    def action_logits_from_embedding(self, emb: torch.Tensor) -> torch.Tensor:
        return self.action_head(emb)

    def action_logits(self, motion: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        return self.action_head(self.motion_embedding(motion, length))


def save_evaluator(model: GenerationEvaluator, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the evaluator checkpoint atomically (loadable with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"format": EVALUATOR_FORMAT, "config": dict(model.config), "vocab": list(model.vocab),
                       "action_names": list(model.action_names),
                       "state_dict": {k: v.detach().cpu() if torch.is_tensor(v) else v
                                      for k, v in model.state_dict().items()},
                       "extra": dict(extra or {})}, path)  # fmt: skip
    return path


def load_evaluator(path: str | Path, device: str | torch.device = "cpu", eval_part: str | None = None,
                   ) -> GenerationEvaluator:  # fmt: skip
    """Load a checkpoint written by :func:`save_evaluator` (eval mode, on ``device``). Attribute ``sha256``.
    ``eval_part``: if given, the checkpoint must have been trained for that part (else :class:`CheckpointError`)."""
    path = Path(path)
    train_cmd = ("python -m skeleton_diffusion.apps.train_generation_evaluator dataset=<name>"
                 + (f" eval_part={eval_part}" if eval_part not in (None, "all") else ""))  # fmt: skip
    if not path.is_file():
        raise CheckpointError(f"generation evaluator not found at '{path}'. Train one with `{train_cmd}` or set "
                              "task.evaluator_path.")  # fmt: skip
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"could not read '{path}' with weights_only=True: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != EVALUATOR_FORMAT:
        raise CheckpointError(f"'{path}' is not a generation evaluator checkpoint (format {EVALUATOR_FORMAT}); "
                              "for the official T2M evaluator use load_official_t2m_evaluator.")  # fmt: skip
    cfg = dict(ckpt["config"])
    trained_part = str(cfg.get("eval_part", "all"))  # checkpoints before eval_part: all joints
    if eval_part is not None and trained_part != str(eval_part):
        raise CheckpointError(f"'{path}' is a generation evaluator for eval_part={trained_part}, but "
                              f"eval_part={eval_part} was asked; train one with `{train_cmd}` or point "
                              "task.evaluator_path at the matching checkpoint.")  # fmt: skip
    model = GenerationEvaluator(cfg.pop("num_joints"), ckpt["vocab"], ckpt["action_names"], **cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()  # type: ignore[attr-defined]
    return model.to(device).eval()


#: Lower-body joints of SMPL-22 without the root (official CrossDiff split; the root's data count as lower body).
_OFFICIAL_LOWER = (1, 2, 4, 5, 7, 8, 10, 11)


def official_part_feature_indices(part: str = "all") -> list[int]:
    """Indices into HumanML3D's 263-d features that the official CrossDiff evaluator of ``part`` reads.
    Layout: root (4) | ric joints 1-21 (63) | rot6d joints 1-21 (126) | velocities joints 0-21 (66) | contacts (4).
    ``all``: the first 259; ``lower``: root + the lower joints' ric/rot/velocity (+ root velocity), 103;
    ``upper``: the rest without the foot contacts, 156."""
    if part == "all":
        return list(range(259))
    lower = list(range(4))
    lower += [4 + (k - 1) * 3 + a for k in _OFFICIAL_LOWER for a in range(3)]
    lower += [67 + (k - 1) * 6 + a for k in _OFFICIAL_LOWER for a in range(6)]
    lower += [193 + k * 3 + a for k in (0, *_OFFICIAL_LOWER) for a in range(3)]
    if part == "lower":
        return sorted(lower)
    if part == "upper":
        return [i for i in range(259) if i not in set(lower)]
    raise InputError(f"eval_part must be all, upper or lower; got {part!r}.")


class OfficialT2MEvaluator(nn.Module):
    """The official T2M evaluator's three modules (HumanML3D ``t2m``: ``dim_pose=263``, unit length 4);
    ``eval_part`` (official CrossDiff ``t2m/<part>.tar``) sets which features the movement encoder reads."""

    def __init__(self, dim_pose: int = 263, unit_length: int = 4, eval_part: str = "all") -> None:
        super().__init__()
        self.unit_length = unit_length
        self.eval_part = eval_part
        index = list(range(dim_pose - 4)) if eval_part == "all" else official_part_feature_indices(eval_part)
        self.register_buffer("feat_index", torch.tensor(index), persistent=False)
        self.movement_encoder = MovementConvEncoder(len(index), 512, 512)
        self.text_encoder = TextEncoderBiGRUCo(300, len(POS_TAGS), 512, 512)
        self.motion_encoder = MotionEncoderBiGRUCo(512, 1024, 512)

    @torch.no_grad()
    def motion_embedding(self, features: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """``features [B, T, dim_pose]`` normalised with the evaluator's Mean/Std, ``length [B]`` frames."""
        movements = self.movement_encoder(features[..., self.feat_index.to(features.device)])
        steps = torch.div(length.to(features.device), self.unit_length, rounding_mode="floor")
        return self.motion_encoder(movements, steps.clamp(min=1, max=movements.shape[1]))

    @torch.no_grad()
    def text_embedding(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """``word_embs [B, L, 300]`` (GloVe), ``pos_onehot [B, L, 15]`` (:data:`POS_TAGS`), ``length [B]``."""
        return self.text_encoder(word_embs, pos_onehot, length)


def load_official_t2m_evaluator(
    path: str | Path, device: str | torch.device = "cpu", dim_pose: int = 263, eval_part: str = "all"
) -> OfficialT2MEvaluator:
    """Load the official ``text_mot_match/model/finest.tar`` (or CrossDiff's ``t2m/<eval_part>.tar``; state dicts
    under ``movement_encoder``, ``text_encoder``, ``motion_encoder``) with ``weights_only=True``; eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"official T2M evaluator not found at '{path}' (expected "
                              "<checkpoints>/t2m/text_mot_match/model/finest.tar).")  # fmt: skip
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"could not read '{path}' with weights_only=True: {exc}") from exc
    missing = [k for k in ("movement_encoder", "text_encoder", "motion_encoder") if k not in ckpt]
    if missing:
        raise CheckpointError(f"'{path}' lacks {missing}; not a T2M text_mot_match checkpoint.")
    model = OfficialT2MEvaluator(dim_pose, eval_part=eval_part)
    for name in ("movement_encoder", "text_encoder", "motion_encoder"):
        try:
            getattr(model, name).load_state_dict(ckpt[name])
        except RuntimeError as exc:
            raise CheckpointError(f"'{path}': {name} does not match the official layout: {exc}") from exc
    model.epoch = int(ckpt.get("epoch", -1))  # type: ignore[attr-defined]
    return model.to(device).eval()
