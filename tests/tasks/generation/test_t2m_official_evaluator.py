"""The official T2M evaluator (MDM ``evaluator_wrapper.py`` / ``modules.py``) against the public fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _t2m_fixture import close, t2m_dir

from skeleton_diffusion.tasks.generation.official import (
    OfficialT2MEvaluator,
    load_official_t2m_evaluator,
    renormalize_for_evaluator,
)
from skeleton_diffusion.utils.errors import CheckpointError

FINEST = "checkpoints/t2m/text_mot_match/model/finest.tar"


@pytest.fixture(scope="module")
def fx(shared_dir):
    root = t2m_dir(shared_dir)
    return root, torch.load(root / "evaluator.pt", weights_only=True)


def _check_batch(model, fx_data) -> None:
    ref = fx_data["batch"]
    order = ref["collate_order"]
    feats = fx_data["motion"]["normalised"][order]
    assert torch.equal(fx_data["motion"]["m_length"][order], ref["m_lens"])
    assert torch.equal(fx_data["text"]["sent_len"][order], ref["sent_lens"])
    align = ref["align_idx"]
    motion = model.motion_embedding(feats, ref["m_lens"])
    text = model.text_embedding(fx_data["text"]["word_embeddings"][order], fx_data["text"]["pos_one_hots"][order],
                                ref["sent_lens"])
    close(motion[align], ref["motion_embedding"], "motion_embedding")
    close(text[align], ref["text_embedding"], "text_embedding")
    close(text, ref["text_embedding_unaligned"], "text_embedding_unaligned")
    close(model.movements(feats)[align], ref["movements_aligned"], "movements_aligned")


def test_fixture_finest_loads_with_sizes_from_tensors(fx):
    root, data = fx
    model = load_official_t2m_evaluator(root / FINEST, device="cpu")
    cfg = data["config"]
    assert model.epoch == 7
    assert model.sizes["dim_pose"] == cfg["dim_pose"]
    assert (model.sizes["movement_hidden"], model.sizes["movement_latent"]) == (cfg["dim_movement_enc_hidden"],
                                                                                cfg["dim_movement_latent"])
    assert (model.sizes["text_hidden"], model.sizes["motion_hidden"], model.sizes["embedding"]) == (
        cfg["dim_text_hidden"], cfg["dim_motion_hidden"], cfg["dim_coemb_hidden"])
    _check_batch(model, data)


def test_motion_embedding_is_in_input_order(fx):
    root, data = fx
    model = load_official_t2m_evaluator(root / FINEST)
    feats, lens = data["motion"]["normalised"], data["motion"]["m_length"]
    perm = torch.randperm(len(lens), generator=torch.Generator().manual_seed(3))
    close(model.motion_embedding(feats[perm], lens[perm]), model.motion_embedding(feats, lens)[perm], "order")


def test_generated_batch_renormalised_and_embedded(fx):
    root, data = fx
    model = load_official_t2m_evaluator(root / FINEST)
    norm, gen = data["normalisation"], data["generated"]
    renormed = renormalize_for_evaluator(gen["normed_with_data_stats"], norm["data_mean"], norm["data_std"],
                                         norm["eval_mean"], norm["eval_std"])
    close(renormed, gen["renormed_for_evaluator"], "renormed_for_evaluator")
    n = renormed.shape[0]
    sent = data["text"]["sent_len"][:n]
    order = sorted(range(n), key=lambda i: int(sent[i]), reverse=True)  # official collate_fn
    m_lens = data["motion"]["m_length"][:n][order]
    assert torch.equal(m_lens, gen["m_lens"])
    assert np.array_equal(np.argsort(m_lens.tolist())[::-1], gen["align_idx"].numpy())
    motion = model.motion_embedding(renormed[order], m_lens)
    text = model.text_embedding(data["text"]["word_embeddings"][:n][order], data["text"]["pos_one_hots"][:n][order],
                                sent[order])
    close(motion[gen["align_idx"]], gen["motion_embedding"], "generated motion_embedding")
    close(text[gen["align_idx"]], gen["text_embedding"], "generated text_embedding")


def test_official_layout_finest_written_by_test_reproduces_fixture(fx, tmp_path):
    """Write a finest.tar as TextMotionMatchTrainer.save does (state dicts, Adam states, epoch, iter) from
    modules of the official layout, then load it and reproduce the fixture embeddings."""
    root, data = fx
    src = torch.load(root / FINEST, weights_only=True)
    cfg = data["config"]
    model = OfficialT2MEvaluator(cfg["dim_pose"], movement_hidden=cfg["dim_movement_enc_hidden"],
                                 movement_latent=cfg["dim_movement_latent"], text_hidden=cfg["dim_text_hidden"],
                                 motion_hidden=cfg["dim_motion_hidden"], embedding=cfg["dim_coemb_hidden"])
    for name in ("movement_encoder", "text_encoder", "motion_encoder"):
        getattr(model, name).load_state_dict(src[name])
    opt_text = torch.optim.Adam(model.text_encoder.parameters(), lr=1e-4)
    opt_motion = torch.optim.Adam(list(model.motion_encoder.parameters()) + list(model.movement_encoder.parameters()),
                                  lr=1e-4)
    path = tmp_path / "t2m" / "text_mot_match" / "model" / "finest.tar"
    path.parent.mkdir(parents=True)
    torch.save({"text_encoder": model.text_encoder.state_dict(), "motion_encoder": model.motion_encoder.state_dict(),
                "movement_encoder": model.movement_encoder.state_dict(), "opt_text_encoder": opt_text.state_dict(),
                "opt_motion_encoder": opt_motion.state_dict(), "epoch": 12, "iter": 99}, path)
    loaded = load_official_t2m_evaluator(path)
    assert loaded.epoch == 12
    _check_batch(loaded, data)


def test_full_size_key_shape_table(fx, tmp_path):
    _, data = fx
    model = OfficialT2MEvaluator()
    table = {f"{name}.{k}": list(v.shape) for name in ("movement_encoder", "text_encoder", "motion_encoder")
             for k, v in getattr(model, name).state_dict().items()}
    ref = {f"{name}.{k}": list(v) for name, sd in data["full_size_shapes"].items() for k, v in sd.items()}
    assert table == ref
    path = tmp_path / "finest.tar"
    torch.save({k: getattr(model, k).state_dict() for k in ("movement_encoder", "text_encoder", "motion_encoder")}
               | {"epoch": 3}, path)
    loaded = load_official_t2m_evaluator(path)
    assert loaded.sizes == model.sizes and loaded.epoch == 3


def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_official_t2m_evaluator(tmp_path / "missing.tar")
    torch.save({"text_encoder": {}}, tmp_path / "partial.tar")
    with pytest.raises(CheckpointError, match="movement_encoder"):
        load_official_t2m_evaluator(tmp_path / "partial.tar")
    torch.save({"movement_encoder": {}, "text_encoder": {}, "motion_encoder": {}}, tmp_path / "empty.tar")
    with pytest.raises(CheckpointError, match="official key"):
        load_official_t2m_evaluator(tmp_path / "empty.tar")
