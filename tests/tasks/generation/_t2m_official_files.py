"""Writers of tiny official-format files for the evaluator=official integration tests: a HumanML3D folder, the
GloVe folder, ``finest.tar``, a randomly initialised CLIP / DistilBERT saved with ``save_pretrained`` and an
official MDM run folder (``model000000004.pt`` + ``args.json``)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch

WORDS = [("person", "NOUN"), ("man", "NOUN"), ("walk", "VERB"), ("run", "VERB"), ("jump", "VERB"),
         ("forward", "ADV"), ("left", "ADV"), ("slowly", "ADV"), ("wave", "VERB"), ("hand", "NOUN")]


def write_humanml3d(root: Path, n: int = 20, feat: int = 263, seed: int = 0) -> Path:
    """``root`` with new_joint_vecs/, texts/, test.txt, Mean.npy, Std.npy; returns the evaluator-statistics folder
    (``t2m_mean.npy``, ``t2m_std.npy``)."""
    rng = np.random.RandomState(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    names = []
    for i in range(n):
        name = f"{i:06d}"
        np.save(root / "new_joint_vecs" / f"{name}.npy", rng.randn(int(rng.randint(40, 100)), feat).astype(np.float32))
        toks = [WORDS[j] for j in rng.randint(0, len(WORDS), int(rng.randint(2, 6)))]
        line = " ".join(w for w, _ in toks) + "#" + " ".join(f"{w}/{p}" for w, p in toks) + "#0.0#0.0"
        (root / "texts" / f"{name}.txt").write_text(line + "\n")
        names.append(name)
    (root / "test.txt").write_text("\n".join(names) + "\n")
    np.save(root / "Mean.npy", (rng.randn(feat) * 0.1).astype(np.float32))
    np.save(root / "Std.npy", (0.5 + rng.rand(feat)).astype(np.float32))
    meta = root.parent / "official" / "dataset"
    meta.mkdir(parents=True, exist_ok=True)
    np.save(meta / "t2m_mean.npy", (rng.randn(feat) * 0.1).astype(np.float32))
    np.save(meta / "t2m_std.npy", (0.5 + rng.rand(feat)).astype(np.float32))
    return meta


def write_glove(folder: Path, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    words = [w for w, _ in WORDS] + ["unk", "sos", "eos"]
    np.save(folder / "our_vab_data.npy", np.random.RandomState(seed).randn(len(words), 300).astype(np.float32))
    (folder / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))


def write_finest(path: Path, feat: int = 263, seed: int = 0) -> None:
    """An official-layout ``finest.tar`` of a reduced evaluator (sizes are read back from the tensors)."""
    from skeleton_diffusion.tasks.generation.t2m_networks import OfficialT2MEvaluator

    torch.manual_seed(seed)
    model = OfficialT2MEvaluator(feat, movement_hidden=16, movement_latent=16, text_hidden=16, motion_hidden=16,
                                 embedding=16)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: getattr(model, k).state_dict() for k in ("movement_encoder", "text_encoder", "motion_encoder")}
               | {"epoch": 1}, path)  # fmt: skip


def write_official_tree(root: Path) -> dict[str, Path]:
    """HumanML3D folder + MDM's official downloads (t2m/…/finest.tar, glove/, dataset/) under ``root``."""
    data = root / "HumanML3D"
    write_humanml3d(data)
    official = root / "official"
    write_glove(official / "glove")
    write_finest(official / "t2m" / "text_mot_match" / "model" / "finest.tar")
    return {"data": data, "official": official}


def _hide_broken_torchvision() -> None:
    from skeleton_diffusion.nn.text_encoders import _import_transformers_clip

    _import_transformers_clip()


def write_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised CLIP text tower (projection 512, as ViT-B/32) + a character-level BPE tokenizer."""
    _hide_broken_torchvision()
    from transformers import CLIPTextConfig, CLIPTokenizer
    from transformers.models.clip.modeling_clip import CLIPTextModelWithProjection

    folder.mkdir(parents=True, exist_ok=True)
    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")
    tok.save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, projection_dim=512, bos_token_id=0,
                         eos_token_id=1, pad_token_id=1)  # fmt: skip
    CLIPTextModelWithProjection(cfg).save_pretrained(str(folder))
    return folder


def write_tiny_distilbert(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised DistilBERT (dim 768, as distilbert-base) with a word-level vocabulary."""
    _hide_broken_torchvision()
    from transformers import DistilBertConfig, DistilBertTokenizer
    from transformers.models.distilbert.modeling_distilbert import DistilBertModel

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in WORDS] + ["a", "the"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    DistilBertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = DistilBertConfig(vocab_size=len(words), dim=768, n_layers=1, n_heads=2, hidden_dim=64,
                           max_position_embeddings=64)  # fmt: skip
    DistilBertModel(cfg).save_pretrained(str(folder))
    return folder


def write_official_mdm(folder: Path, *, text_encoder_type: str = "clip", seed: int = 0, steps: int = 4,
                       dataset: str = "humanml") -> Path:
    """``folder/model000000004.pt`` (flat state dict, as ``TrainLoop.save``) + ``args.json`` of a reduced MDM."""
    from skeleton_diffusion.methods.mdm.network import OfficialMDM

    args = {"dataset": dataset, "arch": "trans_dec" if text_encoder_type == "bert" else "trans_enc",
            "text_encoder_type": text_encoder_type, "latent_dim": 32, "layers": 1, "diffusion_steps": steps,
            "noise_schedule": "cosine", "cond_mask_prob": 0.1, "pos_embed_max_len": 400}  # fmt: skip
    torch.manual_seed(seed)
    net = OfficialMDM.from_official_args(args)
    with torch.no_grad():  # official init leaves the output layer random; spread the weights a little
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "args.json").write_text(json.dumps(args))
    path = folder / f"model{steps:09d}.pt"
    torch.save(net.state_dict(), path)
    return path
