"""Synthetic captions / action labels and the generation dataset (data/builders/synthetic_captions.py,
data/generation.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from skeleton_diffusion.data.builders.synthetic import FRAME_LABELS_FILE, PRIMITIVES, build_synthetic_dataset
from skeleton_diffusion.data.builders.synthetic_captions import (
    VERB_PHRASES,
    caption_from_runs,
    load_frame_labels,
    primitive_runs,
    window_action,
    window_caption,
)
from skeleton_diffusion.data.windows.generation import (
    build_synthetic_generation_dataset,
    canonicalize_motion,
    collate_generation,
)
from skeleton_diffusion.data.processed import load_processed


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_gen")
    build_synthetic_dataset(out, seed=3, small=True, verbose=False)
    return out


def test_runs_action_and_caption():
    lab = [1] * 30 + [7] * 5 + [7] * 40 + [0] * 5
    assert primitive_runs(lab) == [(1, 30), (7, 45), (0, 5)]
    assert window_action(lab) == 7
    assert window_action([2, 2, 3, 3]) == 2  # tie -> smaller index
    cap = caption_from_runs(primitive_runs(lab), np.random.default_rng(0), min_frames=12)
    walk = [p for p in VERB_PHRASES["walk"] if p in cap]
    jump = [p for p in VERB_PHRASES["jump"] if p in cap]
    assert walk and jump, cap
    assert cap.index(walk[0]) < cap.index(jump[0])  # order of the primitives kept
    assert not any(p in cap for p in VERB_PHRASES["idle"])  # 5-frame idle is left out
    # paraphrase variety, reproducible per seed
    caps = {window_caption(lab, s) for s in range(30)}
    assert len(caps) > 5
    assert window_caption(lab, 4) == window_caption(lab, 4)
    # only short runs -> the longest is described
    assert any(p in caption_from_runs([(6, 3), (2, 5)], np.random.default_rng(0)) for p in VERB_PHRASES["run"])


def test_frame_labels_written_and_replay_matches(synth_dir, tmp_path):
    labels = load_frame_labels(synth_dir)
    pos = load_processed(synth_dir / "data_3d_synthetic.npz")
    assert set(labels) == {f"{s}/{n}" for s in pos for n in pos[s]}
    for key, lab in labels.items():
        s, n = key.split("/")
        assert lab.shape == (len(pos[s][n]),) and lab.min() >= 0 and lab.max() < len(PRIMITIVES)
    # an older build without the labels file: the generator replay gives the same labels
    (tmp_path / "data_3d_synthetic.npz").write_bytes((synth_dir / "data_3d_synthetic.npz").read_bytes())
    (tmp_path / "synthetic_info.json").write_text((synth_dir / "synthetic_info.json").read_text())
    replay = load_frame_labels(tmp_path, pos)
    assert set(replay) == set(labels)
    for k in labels:
        np.testing.assert_array_equal(replay[k], labels[k])
    # replay refuses data that the generator did not make
    bad = {s: {n: a + 1.0 for n, a in d.items()} for s, d in pos.items()}
    with pytest.raises(Exception, match="does not reproduce"):
        load_frame_labels(tmp_path, bad)
    assert not os.path.exists(tmp_path / FRAME_LABELS_FILE)


def test_canonicalize_motion_faces_plus_y_and_keeps_shape():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(10, 22, 3)).astype(np.float32)
    # body facing +x: left hip at +y, right hip at -y (right - left = -y -> forward = z x (-y) = +x)
    m[0, 1], m[0, 2], m[0, 16], m[0, 17] = [0, 0.1, 1], [0, -0.1, 1], [0, 0.2, 1.5], [0, -0.2, 1.5]
    m[0, 0] = [3.0, -2.0, 0.9]
    out = canonicalize_motion(m)
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.9], atol=1e-5)  # ground-plane origin, height kept
    across = (out[0, 2] - out[0, 1]) + (out[0, 17] - out[0, 16])
    fwd = np.cross([0, 0, 1], across)
    assert fwd[1] > 0 and abs(fwd[0]) < 1e-5
    # rigid: pairwise distances and heights unchanged
    np.testing.assert_allclose(np.linalg.norm(out[3, 4] - out[7, 9]), np.linalg.norm(m[3, 4] - m[7, 9]), rtol=1e-5)
    np.testing.assert_allclose(out[..., 2], m[..., 2], atol=1e-6)


def test_synthetic_generation_dataset_batches(synth_dir):
    ds = build_synthetic_generation_dataset(synth_dir, "train", num_frames=90, stride=45)
    assert len(ds) > 4 and ds.action_names == PRIMITIVES
    labels = load_frame_labels(synth_dir)
    names = sorted(load_processed(synth_dir / "data_3d_synthetic.npz")["train"])
    for i in (0, len(ds) - 1):
        c, s, n = ds.windows[i]
        win = labels[f"train/{names[c]}"][s : s + n]
        assert ds.actions[i] == np.bincount(win).argmax()
        assert any(p in ds.texts[i][0] for p in VERB_PHRASES[PRIMITIVES[ds.actions[i]]])
    batch = collate_generation([ds[i] for i in range(3)])
    assert batch["motion"].shape == (3, 90, 22, 3) and batch["motion"].dtype == torch.float32
    assert batch["mask"].all() and batch["length"].tolist() == [90] * 3
    assert batch["action"].dtype == torch.long and len(batch["text"]) == 3
    # root trajectory kept: the pelvis moves in walking windows, starts at the ground-plane origin
    assert torch.allclose(batch["motion"][:, 0, 0, :2], torch.zeros(3, 2), atol=1e-5)
    mean, std = ds.mean_std()
    assert mean.shape == (22, 3) and (std > 0).all()


def test_padding_and_mask():
    clip = np.cumsum(np.ones((50, 22, 3), dtype=np.float32), axis=0)
    clip[:, 1, 1] += 0.1
    clip[:, 2, 1] -= 0.1
    from skeleton_diffusion.data.windows.generation import GenerationDataset

    ds = GenerationDataset([clip], [(0, 5, 20)], [3], [["a", "b"]], 32, action_names=PRIMITIVES, fps=60,
                           skeleton_name="amass")  # fmt: skip
    b = collate_generation([ds[0]])
    assert b["length"].tolist() == [20] and b["mask"][0, :20].all() and not b["mask"][0, 20:].any()
    assert torch.equal(b["motion"][0, 20:], b["motion"][0, 19:20].expand(12, -1, -1))
    assert b["text"] == ["a"]
