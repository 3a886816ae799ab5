"""The official protocol runner on a tiny HumanML3D-format folder written by the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _t2m_fixture import t2m_dir

from skeleton_diffusion.tasks.generation.official import (
    diversity,
    generation_fid,
    matching_score,
    multimodality,
    r_precision,
    summarize,
)
from skeleton_diffusion.tasks.generation.official_protocol import (
    EVAL_MODES,
    protocol_from_files,
)
from skeleton_diffusion.utils.errors import ConfigError, InputError

WORDS = [("person", "NOUN"), ("man", "NOUN"), ("walk", "VERB"), ("run", "VERB"), ("jump", "VERB"),
         ("forward", "ADV"), ("left", "ADV"), ("slowly", "ADV"), ("wave", "VERB"), ("hand", "NOUN"),
         ("sit", "VERB"), ("chair", "NOUN"), ("zzz", "NOUN")]


def _write_folder(root, n=36, feat=263, seed=0):
    rng = np.random.RandomState(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    names = []
    for i in range(n):
        name = f"{i:06d}"
        length = int(rng.randint(40, 120)) if i != 3 else 30  # one too short: filtered out officially
        np.save(root / "new_joint_vecs" / f"{name}.npy", rng.randn(length, feat).astype(np.float32))
        lines = []
        for _ in range(int(rng.randint(1, 3))):
            toks = [WORDS[j] for j in rng.randint(0, len(WORDS), int(rng.randint(2, 8)))]
            lines.append(" ".join(w for w, _ in toks) + "#" + " ".join(f"{w}/{p}" for w, p in toks) + "#0.0#0.0")
        (root / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        names.append(name)
    (root / "test.txt").write_text("\n".join(names) + "\n")
    np.save(root / "Mean.npy", (rng.randn(feat) * 0.1).astype(np.float32))
    np.save(root / "Std.npy", (0.5 + rng.rand(feat)).astype(np.float32))
    meta = root / "meta"
    meta.mkdir()
    np.save(meta / "t2m_mean.npy", (rng.randn(feat) * 0.1).astype(np.float32))
    np.save(meta / "t2m_std.npy", (0.5 + rng.rand(feat)).astype(np.float32))
    return meta


class NoisyGenerator:
    """Stand-in text-to-motion model: features from the caption's length and the passed generator."""

    def __init__(self):
        self.calls = []

    def generate(self, captions, lengths, num_samples, *, generator=None):
        self.calls.append((len(captions), int(num_samples)))
        b = len(captions)
        base = torch.tensor([len(c) / 10.0 for c in captions])[:, None, None, None]
        return base + 0.5 * torch.randn(b, num_samples, 196, 263, generator=generator)


@pytest.fixture(scope="module")
def proto(shared_dir, tmp_path_factory):
    fx = t2m_dir(shared_dir)
    root = tmp_path_factory.mktemp("humanml3d")
    meta = _write_folder(root)
    return protocol_from_files(fx / "checkpoints/t2m/text_mot_match/model/finest.tar", fx / "glove", meta, root,
                               mode="mm", replication_times=2, diversity_times=20, mm_num_samples=10,
                               mm_num_repeats=4, mm_times=3, seed=3, batch_size=16)


@pytest.mark.slow
def test_protocol_replays_one_legacy_stream(proto):
    model = NoisyGenerator()
    out = proto.run(model, keep_embeddings=True)
    assert len(proto.items) == 35  # the 30-frame motion is filtered
    assert sorted(model.calls) == [(16, 1), (16, 1), (16, 4), (16, 4)]
    rng = np.random.RandomState(3)
    for rep, metrics in zip(out["embeddings"], out["replications"]):
        assert rep.motion["vald"].shape == (32, 32) and rep.gt_fid.shape == rep.motion["ground truth"].shape
        assert not np.allclose(rep.gt_fid, rep.motion["ground truth"])  # second GT pass: new crops
        rng.choice(2, 1, replace=False)  # mm_idxs
        for name in ("ground truth", "vald"):
            got = metrics[name]
            assert np.array_equal(got["R_precision"], r_precision(rep.text[name], rep.motion[name], 16))
            assert got["Matching Score"] == matching_score(rep.text[name], rep.motion[name], 16)
            assert got["FID"] == generation_fid(rep.gt_fid, rep.motion[name], 16)
        assert metrics["ground truth"]["Diversity"] == diversity(rep.motion["ground truth"], 20, rng, 16)
        assert metrics["vald"]["Diversity"] == diversity(rep.motion["vald"], 20, rng, 16)
        assert rep.mm.shape == (16, 4, 32)
        assert metrics["vald"]["MultiModality"] == multimodality(rep.mm, 3, rng)
    s = out["summary"]
    vals = [m["vald"]["FID"] for m in out["replications"]]
    assert s["FID"]["vald"]["mean"] == pytest.approx(np.mean(vals))
    assert s["FID"]["vald"]["conf95"] == pytest.approx(1.96 * np.std(vals) / np.sqrt(2))
    assert "---> [vald](top 1) Mean:" in out["table"] and "MultiModality Summary" in out["table"]
    summary = summarize(out["runs"]["vald"], dataset="humanml3d")["metrics"]
    assert summary["MultiModality"]["conf95"] == pytest.approx(s["MultiModality"]["vald"]["conf95"])
    proto.replication_times = 1
    try:
        again = proto.run(NoisyGenerator())
    finally:
        proto.replication_times = 2
    assert again["replications"][0]["vald"]["FID"] == out["replications"][0]["vald"]["FID"]  # seeded
    assert again["replications"][0]["ground truth"]["Diversity"] == out["replications"][0]["ground truth"]["Diversity"]


def test_protocol_rejects_bad_inputs(proto):
    class Bad:
        def generate(self, captions, lengths, num_samples):
            return torch.zeros(len(captions), num_samples, 196, 10)

    with pytest.raises(InputError, match="normalised"):
        proto.run(Bad())
    assert set(EVAL_MODES) >= {"debug", "wo_mm", "mm_short", "mm"}
    with pytest.raises(ConfigError):
        type(proto)(proto.evaluator, proto.glove, "/nonexistent", eval_mean=proto.eval_mean,
                    eval_std=proto.eval_std, mode="full")


def test_caption_length_switch(proto):
    """MDM's fix #182: 'eos' (default) vs the paper's 'padded' text length (22 tokens) for the generated set."""
    batch = proto._batches("data", np.random.RandomState(0), __import__("random").Random(0))[0]
    motions = batch.motions
    t_eos, _ = proto._embed(batch, motions)
    t_pad, _ = proto._embed(batch, motions, padded_cap_len=True)
    assert not np.allclose(t_eos, t_pad)
    assert proto.caption_length == "eos"
    with pytest.raises(ConfigError, match="caption_length"):
        type(proto)(proto.evaluator, proto.glove, "/nonexistent", eval_mean=proto.eval_mean,
                    eval_std=proto.eval_std, caption_length="22")


def test_official_paths_from_config(tmp_path):
    from omegaconf import OmegaConf

    from skeleton_diffusion.tasks.generation.official_eval import official_paths

    task = OmegaConf.create({"evaluator": "official", "official_root": str(tmp_path)})
    p = official_paths(task, "humanml3d")
    assert p["checkpoint"] == tmp_path / "t2m/text_mot_match/model/finest.tar"
    assert p["glove"] == tmp_path / "glove" and p["meta"] == tmp_path / "dataset"
    assert official_paths(task, "kit")["checkpoint"] == tmp_path / "kit/text_mot_match/model/finest.tar"
    with pytest.raises(ConfigError, match="official_root"):
        official_paths(OmegaConf.create({"evaluator": "official"}))
