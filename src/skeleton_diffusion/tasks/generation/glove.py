"""The official T2M GloVe vocabulary and the caption-token encoding of the HumanML3D evaluation loader.

Files (``<folder>/<prefix>_*``, prefix ``our_vab`` officially, from the T2M/MDM ``glove`` download):

* ``<prefix>_data.npy``: word vectors ``[V, 300]`` (float32);
* ``<prefix>_words.pkl``: a pickled ``list`` of the V words (str);
* ``<prefix>_idx.pkl``: a pickled ``dict`` word (str) -> row (int).

The two pickles are read by :class:`RestrictedUnpickler`, which builds only ``list``, ``dict``, ``str`` and
``int`` (plus the ``tuple``/``bool``/``None`` opcodes that cannot execute code) and refuses every global
reference, so a crafted file cannot run code; the result's types are checked afterwards.

Caption encoding (:meth:`GloVe.encode_tokens`, as the official ``Text2MotionDatasetV2.__getitem__`` and
``WordVectorizer.__getitem__``): tokens are ``word/POS`` (the second ``#`` field of a ``texts/*.txt`` line split
on ``' '``). Fewer than ``max_text_len`` tokens: ``sos/OTHER`` + tokens + ``eos/OTHER``, then ``unk/OTHER``
padding to ``max_text_len + 2``; otherwise the tokens are cropped to ``max_text_len`` first. Each token becomes
its word vector and a one-hot POS over :data:`POS_TAGS` (15). A word on one of the VIP lists gets that list's
tag instead of its POS; a POS that is not one of the 15 tags becomes ``OTHER``; a word not in the vocabulary
becomes the ``unk`` vector with ``OTHER``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from skeleton_diffusion.utils.errors import DataFormatError, FileAccessError

__all__ = ["POS_TAGS", "VIP_WORDS", "RestrictedUnpickler", "safe_load_pickle", "GloVe", "load_glove", "pad_tokens"]

#: The official POS one-hot order (15 tags); index = position.
POS_TAGS: tuple[str, ...] = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV", "Loc_VIP",
                             "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER")  # fmt: skip
_POS_INDEX = {t: i for i, t in enumerate(POS_TAGS)}

#: The official VIP word lists, checked in this order (the first list holding the word wins).
VIP_WORDS: dict[str, tuple[str, ...]] = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back", "backward",
                "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder",
                 "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball",
                "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance", "jump",
                "turn", "stumble", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel", "stroll",
                "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin", "spread", "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad", "happily",
                 "angrily", "sadly"),
}  # fmt: skip
_VIP_OF: dict[str, str] = {}
for _tag, _words in VIP_WORDS.items():
    for _w in _words:
        _VIP_OF.setdefault(_w, _tag)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global (class or function) reference: only the builtin containers and
    scalars that pickle encodes with plain opcodes (list, dict, str, int, and tuple/bool/None/float) can be
    built, so loading cannot execute code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed (only list, dict, str and int)")


def safe_load_pickle(path: str | Path) -> Any:
    """Read a pickle of builtin lists/dicts/str/int with :class:`RestrictedUnpickler` (no code execution)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileAccessError.from_os_error(exc) from exc
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except Exception as exc:
        raise DataFormatError(f"'{path}' is not a safe pickle of lists/dicts of str and int (the official GloVe "
                              f"format); refused: {exc}") from exc  # fmt: skip


def pad_tokens(tokens: Sequence[str], max_text_len: int = 20) -> tuple[list[str], int]:
    """Official sos/eos/crop/unk padding: ``(padded tokens [max_text_len + 2], sent_len)``."""
    tokens = list(tokens)
    if len(tokens) < max_text_len:
        tokens = ["sos/OTHER", *tokens, "eos/OTHER"]
        sent_len = len(tokens)
        tokens += ["unk/OTHER"] * (max_text_len + 2 - sent_len)
    else:
        tokens = ["sos/OTHER", *tokens[:max_text_len], "eos/OTHER"]
        sent_len = len(tokens)
    return tokens, sent_len


class GloVe:
    """The official word vectors: ``vectors [V, dim]``, ``words`` and ``word_to_index``."""

    def __init__(self, vectors: np.ndarray, words: Sequence[str], word_to_index: dict[str, int],
                 source: str = "<memory>") -> None:  # fmt: skip
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise DataFormatError(f"GloVe vectors of '{source}' must be [V, dim]; got {vectors.shape}.")
        bad = [w for w in words if w not in word_to_index or not 0 <= word_to_index[w] < vectors.shape[0]]
        if bad:
            raise DataFormatError(f"GloVe '{source}': words {bad[:5]} have no row in the {vectors.shape[0]} "
                                  "vectors (words.pkl and idx.pkl disagree).")  # fmt: skip
        if "unk" not in word_to_index:
            raise DataFormatError(f"GloVe '{source}' has no 'unk' word (needed for padding and unknown words).")
        self.vectors = vectors
        self.words = list(words)
        self.word_to_index = dict(word_to_index)
        self._vocab = set(self.words)  # official: only words listed in words.pkl count as known
        self.dim = int(vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def token(self, token: str) -> tuple[np.ndarray, int]:
        """``word/POS`` -> (word vector ``[dim]``, POS index into :data:`POS_TAGS`)."""
        word, sep, pos = token.partition("/")
        if not sep or "/" in pos:
            raise DataFormatError(f"caption token {token!r} is not 'word/POS' (one '/').")
        if word not in self._vocab:
            return self.vectors[self.word_to_index["unk"]], _POS_INDEX["OTHER"]
        tag = _VIP_OF.get(word, pos)
        return self.vectors[self.word_to_index[word]], _POS_INDEX.get(tag, _POS_INDEX["OTHER"])

    def encode_padded(self, padded: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Already padded tokens -> (word_embs ``[L, dim]``, pos_onehot ``[L, 15]`` float64 as officially)."""
        vecs, pos = zip(*(self.token(t) for t in padded))
        onehot = np.zeros((len(padded), len(POS_TAGS)))
        onehot[np.arange(len(padded)), list(pos)] = 1.0
        return np.stack(vecs), onehot

    def encode_tokens(self, tokens: list[str], max_text_len: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
        """``word/POS`` tokens -> (word_embs ``[max_text_len+2, dim]``, pos_onehot ``[max_text_len+2, 15]``,
        sent_len incl. sos/eos)."""
        padded, sent_len = pad_tokens(tokens, max_text_len)
        word_embs, pos_onehot = self.encode_padded(padded)
        return word_embs, pos_onehot, sent_len


def load_glove(folder: str | Path, prefix: str = "our_vab") -> GloVe:
    """Read the official ``<prefix>_data.npy`` / ``_words.pkl`` / ``_idx.pkl`` from ``folder`` (safe loaders)."""
    folder = Path(folder)
    paths = [folder / f"{prefix}_{s}" for s in ("data.npy", "words.pkl", "idx.pkl")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileAccessError(f"GloVe files missing: {missing}; expected the official folder with "
                              f"{prefix}_data.npy, {prefix}_words.pkl and {prefix}_idx.pkl (MDM's ./glove).")
    try:
        vectors = np.load(paths[0], allow_pickle=False)
    except ValueError as exc:
        raise DataFormatError(f"'{paths[0]}' is not a plain .npy array: {exc}") from exc
    words = safe_load_pickle(paths[1])
    index = safe_load_pickle(paths[2])
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise DataFormatError(f"'{paths[1]}' must hold a list of str; got {type(words).__name__}.")
    if not isinstance(index, dict) or not all(isinstance(k, str) and type(v) is int for k, v in index.items()):
        raise DataFormatError(f"'{paths[2]}' must hold a dict str -> int; got {type(index).__name__}.")
    return GloVe(vectors, words, index, source=str(folder / prefix))
