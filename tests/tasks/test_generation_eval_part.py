"""eval_part=all|upper|lower (CrossDiff): part-wise generation evaluators and eval.py task=generation on a part."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from skeleton_diffusion.tasks.generation.body_parts import skeleton_part_joints
from skeleton_diffusion.tasks.generation.evaluator_networks import (
    GenerationEvaluator,
    load_evaluator,
    part_feature_indices,
    save_evaluator,
)
from skeleton_diffusion.tasks.generation.train_evaluator import compose_config, default_evaluator_path
from skeleton_diffusion.utils.errors import CheckpointError, ConfigError, InputError

# official CrossDiff lower body on SMPL-22 (evaluator_wrapper.py: root + hips, knees, ankles, feet)
LOWER = [0, 1, 2, 4, 5, 7, 8, 10, 11]
UPPER = [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]


def _tiny(part: str, joints) -> GenerationEvaluator:
    torch.manual_seed(0)
    return GenerationEvaluator(22, ["<pad>", "<unk>", "walks"], ["idle", "walk"], dim=16, movement_hidden=8,
                               movement_latent=8, motion_hidden=8, text_width=8, text_layers=1, eval_part=part,
                               part_joints=joints).eval()  # fmt: skip


def test_part_selection_takes_the_part_joints():
    assert skeleton_part_joints("amass", 22, "lower") == LOWER
    assert skeleton_part_joints("amass", 22, "upper") == UPPER
    assert skeleton_part_joints("amass", 22, "all") == list(range(22))
    with pytest.raises(ConfigError, match="joints"):
        skeleton_part_joints("amass", 17, "upper")
    # features of joints {0, 2} of a 4-joint motion, computed by hand
    m = torch.randn(2, 5, 4, 3)
    ev = GenerationEvaluator(4, ["<pad>", "<unk>"], ["a"], dim=8, movement_hidden=8, movement_latent=8,
                             motion_hidden=8, text_width=8, text_layers=1, eval_part="lower", part_joints=[2, 0])
    vel = torch.zeros_like(m)
    vel[:, 1:] = m[:, 1:] - m[:, :-1]
    expected = torch.cat([m[:, :, 2] - m[:, :, 0], m[:, :, 0] - m[:, :1, 0], vel[:, :, 0], vel[:, :, 2]], -1)
    torch.testing.assert_close(ev.part_features(m), expected)
    assert ev.feat_mean.shape == (12,)
    # without the root: no root trajectory, positions still relative to the root
    assert part_feature_indices(4, [3]) == [6, 7, 8, 21, 22, 23]
    with pytest.raises(InputError, match="subset"):
        part_feature_indices(4, [4])


def test_upper_evaluator_ignores_the_lower_body_and_refuses_lower(tmp_path):
    ev = _tiny("upper", UPPER)
    motion, length = torch.randn(3, 16, 22, 3), torch.tensor([16, 12, 8])
    legs = motion.clone()
    legs[:, :, LOWER[1:]] += torch.randn(3, 16, 8, 3)  # lower joints other than the root
    torch.testing.assert_close(ev.motion_embedding(legs, length), ev.motion_embedding(motion, length))
    arms = motion.clone()
    arms[:, :, [16, 20]] += 0.5
    assert not torch.allclose(ev.motion_embedding(arms, length), ev.motion_embedding(motion, length))
    lower = _tiny("lower", LOWER)
    assert not torch.allclose(lower.motion_embedding(legs, length), lower.motion_embedding(motion, length))

    path = save_evaluator(ev, tmp_path / "ev_upper.pt")
    loaded = load_evaluator(path, eval_part="upper")
    assert loaded.eval_part == "upper" and loaded.config["part_joints"] == UPPER
    torch.testing.assert_close(loaded.motion_embedding(motion, length), ev.motion_embedding(motion, length))
    with pytest.raises(CheckpointError, match=r"eval_part=upper.*train_generation_evaluator.*eval_part=lower"):
        load_evaluator(path, eval_part="lower")
    with pytest.raises(CheckpointError, match="eval_part=all"):
        load_evaluator(path, eval_part="all")
    # a checkpoint written before eval_part existed counts as `all`
    old = torch.load(save_evaluator(_tiny("all", None), tmp_path / "old.pt"), weights_only=True)
    for k in ("eval_part", "part_joints"):
        old["config"].pop(k)
    torch.save(old, tmp_path / "old.pt")
    assert load_evaluator(tmp_path / "old.pt", eval_part="all").config["part_joints"] == list(range(22))
    with pytest.raises(CheckpointError, match="eval_part=upper"):
        load_evaluator(tmp_path / "old.pt", eval_part="upper")


def test_eval_part_config_and_default_evaluator_paths(tmp_path):
    cfg = compose_config([f"dataset_main_path={tmp_path}", "eval_part=lower"])
    assert default_evaluator_path(cfg).name == "generation_evaluator_lower.pt"
    assert default_evaluator_path(compose_config([f"dataset_main_path={tmp_path}"])).name == "generation_evaluator.pt"
    with pytest.raises(ConfigError, match="eval_part"):
        default_evaluator_path(compose_config([f"dataset_main_path={tmp_path}", "eval_part=left"]))


class _LegScrambler:
    """Replays the real test windows in order with the lower-body joints (not the root) moved at random."""

    condition = "text"

    def __init__(self, ds, legs):
        self.ds, self.legs, self.calls = ds, legs, 0

    def generate(self, num_frames, *, texts=None, actions=None, num_samples=1, generator=None):
        n = len(texts)
        idx = [(self.calls + i) % len(self.ds) for i in range(n)]
        self.calls += n
        m = torch.stack([torch.from_numpy(self.ds.motion(i)) for i in idx])[:, None].repeat(1, num_samples, 1, 1, 1)
        m[..., self.legs, :] += 0.3 * torch.randn(m[..., self.legs, :].shape, generator=generator)
        return m


@pytest.mark.slow
def test_eval_part_upper_end_to_end(tmp_path):
    from skeleton_diffusion.data.builders.synthetic import build_synthetic_dataset
    from skeleton_diffusion.data.windows.generation import build_synthetic_generation_dataset
    from skeleton_diffusion.tasks.generation import (
        protocol as generation_protocol,
        train_evaluator as train_generation_evaluator,
    )
    from skeleton_diffusion.apps.evaluate import main as eval_main

    root = tmp_path / "data"
    build_synthetic_dataset(root / "processed" / "Synthetic" / "hmp", seed=1, small=True, verbose=False)
    common = [f"dataset_main_path={root}", "task.num_frames=60", "task.train_stride=20", "task.test_stride=20",
              "device=cpu", "progress=false"]  # fmt: skip
    small = [f"task.evaluator.{k}=16" for k in ("dim", "movement_hidden", "motion_hidden", "movement_latent",
                                                 "text_width")]  # fmt: skip
    summary = train_generation_evaluator.main(common + small + ["eval_part=upper", "task.evaluator.epochs=1",
                                                                "task.evaluator.text_layers=1"])  # fmt: skip
    ev_path = root / "processed" / "Synthetic" / "hmp" / "generation_evaluator_upper.pt"
    assert summary["path"] == str(ev_path) and summary["eval_part"] == "upper" and summary["part_joints"] == UPPER
    ev = load_evaluator(ev_path, eval_part="upper")
    assert ev.feat_mean.shape == (6 * len(UPPER),)
    # oracle row on the upper body: results record the part
    out = tmp_path / "real_upper"
    eval_main(compose_config(common + ["eval_part=upper", "task.generator=real", "task.replication_times=1",
                                       "task.r_precision_batch=8", "task.diversity_times=5",
                                       f"results_path={out}", "silent=true"]))  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["extra"]["eval_part"] == "upper" and res["extra"]["part_joints"] == UPPER
    assert res["extra"]["evaluator"] == str(ev_path) and np.isfinite(res["metrics"]["FID"]["mean"])
    # no lower-body evaluator yet: the error names the command that trains it
    with pytest.raises(CheckpointError, match="train_generation_evaluator dataset=<name> eval_part=lower"):
        eval_main(compose_config(common + ["eval_part=lower", "task.generator=real", "silent=true"]))
    # scored on the upper body, a generator that only breaks the legs is perfect; MultiModality with test_mm
    ds = build_synthetic_generation_dataset(root / "processed" / "Synthetic" / "hmp", "test", num_frames=60,
                                            stride=20)  # fmt: skip
    task = OmegaConf.create({"r_precision_batch": 8, "diversity_times": 5, "mm_num_repeats": 3, "mm_num_samples": 4,
                             "multimodality_times": 2, "gen_batch_size": 16, "test_mm": True})  # fmt: skip
    m = generation_protocol.evaluate_generator(_LegScrambler(ds, LOWER[1:]), ds, ev, task, seeds=[0],
                                               condition="text")[0]["metrics"]  # fmt: skip
    assert abs(m["FID"]) < 1e-3 and m["MultiModality"] == pytest.approx(0.0, abs=1e-4)
    arms = [j for j in UPPER if j not in (3, 6, 9)]
    m2 = generation_protocol.evaluate_generator(_LegScrambler(ds, arms), ds, ev, task, seeds=[0],
                                                condition="text")[0]["metrics"]  # fmt: skip
    assert m2["FID"] > 1e-2 and m2["MultiModality"] > 1e-3
    task.test_mm = False
    m3 = generation_protocol.evaluate_generator(_LegScrambler(ds, arms), ds, ev, task, seeds=[0],
                                                condition="text")[0]["metrics"]  # fmt: skip
    assert "MultiModality" not in m3


def test_official_part_feature_split_and_loader(tmp_path):
    from skeleton_diffusion.tasks.generation.evaluator_networks import (
        OfficialT2MEvaluator,
        load_official_t2m_evaluator,
        official_part_feature_indices,
    )

    lower, upper = official_part_feature_indices("lower"), official_part_feature_indices("upper")
    assert (len(lower), len(upper), len(official_part_feature_indices("all"))) == (103, 156, 259)  # official sizes
    assert sorted(lower + upper) == list(range(259))  # disjoint, foot contacts 259-262 in neither
    assert set(range(10)) <= set(lower) and not {10, 11, 12} & set(lower)  # root 0-3, ric of joints 1, 2; not 3
    assert set(range(67, 79)) <= set(lower) and 79 in upper  # rot6d of joints 1, 2 | joint 3
    assert set(range(193, 202)) <= set(lower) and 202 in upper  # velocities of joints 0, 1, 2 | joint 3
    model = OfficialT2MEvaluator(eval_part="upper").eval()
    assert model.movement_encoder.main[0].weight.shape[1] == 156
    path = tmp_path / "upper.tar"
    torch.save({n: getattr(model, n).state_dict() for n in ("movement_encoder", "text_encoder", "motion_encoder")},
               path)  # fmt: skip
    loaded = load_official_t2m_evaluator(path, eval_part="upper")
    feats, length = torch.randn(2, 40, 263), torch.tensor([40, 24])
    moved = feats.clone()
    moved[..., lower] += 1.0
    torch.testing.assert_close(loaded.motion_embedding(moved, length), model.motion_embedding(feats, length))
    with pytest.raises(CheckpointError, match="official layout"):
        load_official_t2m_evaluator(path, eval_part="all")
