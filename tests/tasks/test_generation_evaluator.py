"""Generation evaluator (training, checkpoint, official layout) and the eval.py task=generation protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.data.builders.synthetic import build_synthetic_dataset
from skeleton_diffusion.data.windows.generation import build_synthetic_generation_dataset
from skeleton_diffusion.tasks.generation.evaluator_networks import (
    GenerationEvaluator,
    OfficialT2MEvaluator,
    load_evaluator,
    load_official_t2m_evaluator,
    motion_features,
    save_evaluator,
)
from skeleton_diffusion.tasks.generation.train_evaluator import compose_config, contrastive_loss
from skeleton_diffusion.utils.errors import CheckpointError

# Parameter names of the official T2M evaluator modules (GuyTevet/motion-diffusion-model,
# data_loaders/humanml/networks/modules.py), written out independently of our modules.
_GRU = [f"gru.{p}_{a}_l0{r}" for r in ("", "_reverse") for p in ("weight", "bias") for a in ("ih", "hh")]
_OUT = [f"output_net.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias")]
OFFICIAL_KEYS = {
    "movement_encoder": {"main.0.weight", "main.0.bias", "main.3.weight", "main.3.bias", "out_net.weight",
                         "out_net.bias"},
    "text_encoder": {"pos_emb.weight", "pos_emb.bias", "input_emb.weight", "input_emb.bias", "hidden", *_GRU, *_OUT},
    "motion_encoder": {"input_emb.weight", "input_emb.bias", "hidden", *_GRU, *_OUT},
}  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen_eval_data")
    build_synthetic_dataset(root / "processed" / "Synthetic" / "hmp", seed=1, small=True, verbose=False)
    return root


def test_motion_features_layout():
    m = torch.zeros(1, 3, 4, 3)
    m[0, :, 0] = torch.tensor([[0.0, 0, 1], [0.1, 0, 1], [0.3, 0, 1]])
    m[0, :, 2, 2] = 2.0
    f = motion_features(m)
    assert f.shape == (1, 3, 24)
    torch.testing.assert_close(f[0, 0, 3:6], torch.tensor([-0.0, 0.0, 1.0]))  # joint 2 relative to root
    torch.testing.assert_close(f[0, 2, 9:12], torch.tensor([0.3, 0.0, 0.0]))  # root relative to frame 0
    torch.testing.assert_close(motion_features(m + 5.0), f)  # invariant to a global translation
    torch.testing.assert_close(f[0, 2, 12:15], torch.tensor([0.2, 0.0, 0.0]))  # root velocity frame 2
    assert f[0, 0, 12:].abs().sum() == 0


def test_contrastive_loss_prefers_matched_pairs_and_masks_duplicates():
    t = torch.eye(4) * 5
    good = contrastive_loss(t, t.clone(), ["a", "b", "c", "d"], 0.1)
    bad = contrastive_loss(t, t.roll(1, 0), ["a", "b", "c", "d"], 0.1)
    assert good < 1e-3 < bad
    # captions 0 and 1 identical: motion 1 is not a negative for text 0 -> loss unaffected by their closeness
    m = t.clone()
    m[1] = m[0]
    assert contrastive_loss(t, m, ["a", "a", "c", "d"], 0.1) < contrastive_loss(t, m, ["a", "b", "c", "d"], 0.1)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    torch.manual_seed(0)
    ev = GenerationEvaluator(22, ["<pad>", "<unk>", "walks"], ["idle", "walk"], dim=16, movement_hidden=8,
                             movement_latent=8, motion_hidden=8, text_width=8, text_layers=1).eval()  # fmt: skip
    ev.set_feature_stats(torch.randn(132), torch.rand(132) + 0.5)
    path = save_evaluator(ev, tmp_path / "ev.pt", extra={"note": 1})
    assert torch.load(path, weights_only=True)["format"] == "sd-generation-evaluator-v1"
    ev2 = load_evaluator(path)
    motion = torch.randn(3, 16, 22, 3)
    length = torch.tensor([16, 9, 4])
    torch.testing.assert_close(ev2.motion_embedding(motion, length), ev.motion_embedding(motion, length))
    torch.testing.assert_close(ev2.text_embedding(["walks"]), ev.text_embedding(["walks"]))
    # padded frames beyond the length do not matter
    moved = motion.clone()
    moved[1, 12:] += 5.0
    torch.testing.assert_close(ev.motion_embedding(moved, length)[1], ev.motion_embedding(motion, length)[1])
    with pytest.raises(CheckpointError, match="train_generation_evaluator"):
        load_evaluator(tmp_path / "missing.pt")


def test_official_t2m_layout_loads(tmp_path):
    model = OfficialT2MEvaluator()
    for name, keys in OFFICIAL_KEYS.items():
        assert set(getattr(model, name).state_dict()) == keys, name
    torch.save({name: getattr(model, name).state_dict() for name in OFFICIAL_KEYS} | {"epoch": 7},
               tmp_path / "finest.tar")  # fmt: skip
    loaded = load_official_t2m_evaluator(tmp_path / "finest.tar")
    assert loaded.epoch == 7
    feats = torch.randn(2, 40, 263)
    emb = loaded.motion_embedding(feats, torch.tensor([40, 24]))
    torch.testing.assert_close(emb, model.eval().motion_embedding(feats, torch.tensor([40, 24])))
    assert emb.shape == (2, 512)
    txt = loaded.text_embedding(torch.randn(2, 5, 300), torch.zeros(2, 5, 15), torch.tensor([5, 3]))
    assert txt.shape == (2, 512)
    torch.save({"movement_encoder": {}}, tmp_path / "bad.tar")
    with pytest.raises(CheckpointError, match="lacks"):
        load_official_t2m_evaluator(tmp_path / "bad.tar")


class _ReplayGenerator:
    """Returns the real test motions window after window (+ optional noise): a perfect / a broken generator.
    The protocol asks for the conditions of all windows in order first (captions may repeat, so a cursor, not
    the caption, identifies the window)."""

    def __init__(self, ds, noise: float = 0.0, condition: str = "text"):
        self.ds, self.noise, self.condition, self.calls = ds, noise, condition, 0

    def generate(self, num_frames, *, texts=None, actions=None, num_samples=1, generator=None):
        n = len(texts) if texts is not None else len(actions)
        idx = [(self.calls + i) % len(self.ds) for i in range(n)]
        self.calls += n
        m = torch.stack([torch.from_numpy(self.ds.motion(i)) for i in idx])[:, None].repeat(1, num_samples, 1, 1, 1)
        return m + self.noise * torch.randn(m.shape, generator=generator)


@pytest.mark.slow
def test_train_evaluator_cli_and_generation_protocol(data_root, tmp_path):
    from skeleton_diffusion.tasks.generation import (
        protocol as generation_protocol,
        train_evaluator as train_generation_evaluator,
    )
    from skeleton_diffusion.apps.evaluate import main as eval_main

    ev_path = tmp_path / "ev.pt"
    common = [f"dataset_main_path={data_root}", f"task.evaluator_path={ev_path}", "task.num_frames=60",
              "task.train_stride=10", "task.test_stride=20", "device=cpu", "progress=false"]  # fmt: skip
    small = [f"task.evaluator.{k}=32" for k in ("dim", "movement_hidden", "motion_hidden", "movement_latent",
                                                 "text_width")]  # fmt: skip
    summary = train_generation_evaluator.main(common + small + ["task.evaluator.epochs=3",
                                                                "task.evaluator.text_layers=1"])  # fmt: skip
    assert ev_path.is_file() and summary["train_windows"] > 20
    # eval.py task=generation with the oracle row
    cfg = compose_config(common + ["task.generator=real", "task.replication_times=2", "task.r_precision_batch=8",
                                   "task.diversity_times=10", f"results_path={tmp_path / 'real'}",
                                   "silent=true"])  # fmt: skip
    out = eval_main(cfg)
    res = json.loads((tmp_path / "real" / "results.json").read_text())
    assert set(res["metrics"]) == {"R_precision_top1", "R_precision_top2", "R_precision_top3", "FID", "MM_Dist",
                                   "Diversity"}  # fmt: skip
    assert res["seeds"] == [0, 1] and res["extra"]["method"] == "Real (oracle)"
    assert out["metrics"]["FID"]["mean"] > 0  # against the valid split, not itself
    assert (tmp_path / "real" / "results.md").is_file()
    from skeleton_diffusion.tasks.results import load_results

    assert load_results(tmp_path / "real")["metrics"]["MM_Dist"]["mean"] == res["metrics"]["MM_Dist"]["mean"]
    # a perfect generator matches the real motions; a noisy one is worse on FID and R-precision
    ds = build_synthetic_generation_dataset(data_root / "processed" / "Synthetic" / "hmp", "test", num_frames=60,
                                            stride=20)  # fmt: skip
    ev = load_evaluator(ev_path)
    task = OmegaConf.create({"r_precision_batch": 8, "diversity_times": 10, "mm_num_repeats": 4,
                             "mm_num_samples": 5, "multimodality_times": 3, "gen_batch_size": 16})  # fmt: skip
    perfect = generation_protocol.evaluate_generator(_ReplayGenerator(ds), ds, ev, task, seeds=[0], condition="text")
    noisy = generation_protocol.evaluate_generator(_ReplayGenerator(ds, 0.3), ds, ev, task, seeds=[0], condition="text")
    pm, nm = perfect[0]["metrics"], noisy[0]["metrics"]
    assert abs(pm["FID"]) < 1e-3 and pm["MultiModality"] == pytest.approx(0.0, abs=1e-5)
    assert nm["FID"] > pm["FID"] + 1.0 and nm["MultiModality"] > 0.1
    real = generation_protocol.evaluate_real(ds, ds, ev, task, seeds=[0], condition="text")[0]["metrics"]
    assert pm["R_precision_top3"] == pytest.approx(real["R_precision_top3"])
    # action condition: accuracy of the evaluator's action head on generated motions
    act = generation_protocol.evaluate_generator(_ReplayGenerator(ds, condition="action"), ds, ev, task, seeds=[0],
                                                 condition="action")  # fmt: skip
    acc = act[0]["metrics"]["Accuracy"]
    emb = np.asarray(ev.motion_embedding(torch.stack([torch.from_numpy(ds.motion(i)) for i in range(len(ds))]),
                                         torch.full((len(ds),), 60)).detach())  # fmt: skip
    expected = (ev.action_logits_from_embedding(torch.from_numpy(emb)).argmax(1).numpy() == np.array(ds.actions)).mean()
    assert acc == pytest.approx(expected, abs=1e-6)
    assert "R_precision_top1" not in act[0]["metrics"]
