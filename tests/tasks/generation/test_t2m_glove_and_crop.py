"""GloVe reader, caption-token encoding, the official eval crop and the collate order against the fixtures."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from _t2m_fixture import close, t2m_dir

from skeleton_diffusion.tasks.generation.humanml_eval_data import (
    collate_order,
    official_crop,
    parse_caption_line,
)
from skeleton_diffusion.tasks.generation.official import (
    load_glove,
    official_eval_length,
    pad_tokens,
)
from skeleton_diffusion.utils.errors import DataFormatError, InputError


@pytest.fixture(scope="module")
def fx(shared_dir):
    root = t2m_dir(shared_dir)
    return root, torch.load(root / "evaluator.pt", weights_only=True)


def test_caption_encoding_matches_official_dataset(fx):
    root, data = fx
    glove = load_glove(root / "glove")
    text = data["text"]
    max_len = int(data["config"]["max_text_len"])
    assert len(text["lines"]) == text["word_embeddings"].shape[0]
    for i, line in enumerate(text["lines"]):
        tokens = list(parse_caption_line(line).tokens)
        word, pos, sent_len = glove.encode_tokens(tokens, max_text_len=max_len)
        padded, n = pad_tokens(tokens, max_len)
        assert "_".join(padded) == text["tokens_padded"][i]
        assert sent_len == n == int(text["sent_len"][i])
        assert np.array_equal(pos, text["pos_one_hots"][i].numpy()), f"POS one-hots of line {i}"
        close(word, text["word_embeddings"][i], f"word_embeddings[{i}]")


def test_vip_override_oov_and_crop(fx):
    root, _ = fx
    glove = load_glove(root / "glove")
    w, p, n = glove.encode_tokens(["walk/NOUN", "them/PRON", "a/CCONJ", "left/NOUN"], max_text_len=20)
    tags = p.argmax(1)
    assert n == 6 and w.shape == (22, glove.dim) and p.shape == (22, 15)
    assert tags[1:5].tolist() == [12, 14, 14, 9]  # Act_VIP, unknown -> OTHER, CCONJ -> OTHER, Loc_VIP
    assert np.array_equal(w[2], glove.vectors[glove.word_to_index["unk"]])
    assert np.array_equal(w[6:], np.repeat(glove.vectors[glove.word_to_index["unk"]][None], 16, 0))
    long = ["a/DET"] * 22
    padded, n = pad_tokens(long, 20)
    assert n == 22 and len(padded) == 22 and padded[0] == "sos/OTHER" and padded[-1] == "eos/OTHER"
    assert glove.encode_tokens(long)[2] == 22


def test_malicious_pickle_is_refused(fx, tmp_path):
    root, _ = fx
    for name in ("our_vab_data.npy", "our_vab_idx.pkl"):
        (tmp_path / name).write_bytes((root / "glove" / name).read_bytes())

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "our_vab_words.pkl").write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(DataFormatError, match="not allowed"):
        load_glove(tmp_path)
    (tmp_path / "our_vab_words.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DataFormatError, match="list of str"):
        load_glove(tmp_path)


def test_eval_crop_lengths_and_normalisation(fx):
    _, data = fx
    m, norm = data["motion"], data["normalisation"]
    unit, max_len = int(data["config"]["unit_length"]), int(data["config"]["max_motion_length"])
    for i, raw in enumerate(m["raw"]):
        assert raw.shape[0] == int(m["raw_length"][i])
        length = official_eval_length(int(m["raw_length"][i]), bool(m["double"][i]), unit)
        assert length == int(m["m_length"][i])
        off = int(m["offset"][i])
        crop = (raw[off : off + length] - norm["eval_mean"]) / norm["eval_std"]
        padded = torch.cat([crop, torch.zeros(max_len - length, raw.shape[1])])
        close(padded, m["normalised"][i], f"normalised[{i}]")
    with pytest.raises(InputError):
        official_eval_length(3, False, 4)


def test_official_crop_draws_coin_then_offset():
    motion = np.arange(101 * 2, dtype=np.float32).reshape(101, 2)
    np_rng, py_rng = np.random.RandomState(5), random.Random(5)
    crop, length, double, offset = official_crop(motion, np_rng, py_rng)
    coin = np.random.RandomState(5).choice(["single", "single", "double"]) == "double"
    assert double == coin and length == official_eval_length(101, coin)
    assert offset == random.Random(5).randint(0, 101 - length)
    assert np.array_equal(crop, motion[offset : offset + length])


def test_collate_order(fx):
    _, data = fx
    assert collate_order(data["text"]["sent_len"].tolist()) == data["batch"]["collate_order"].tolist()
