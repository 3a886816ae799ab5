"""CrossDiff end-to-end through the real command lines (tiny CPU preset): ``experiment=crossdiff_pre`` trains,
``experiment=crossdiff_finetune`` starts from it with 2D-only clips and resumes, the ``generate`` CLI writes
npz + GIF from 2D and 3D starts, and ``eval.py task=generation`` scores it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _pipeline_helpers import (
    assert_r_precision_valid,
    assert_results_equal_api,
    body_extent,
    generation_api_runs,
    make_synthetic,
    run_repo_command as _run,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TINY = ["debug=crossdiff", "dataset=synthetic", "progress=false", "model.num_epochs=1", "model.num_iter_perepoch=2",
        "model.batch_size=4", "model.arch.latent_dim=16", "model.arch.ff_size=32", "model.diffusion_timesteps=10",
        "model.sampling_steps=3", "model.change_idx=4", "condition.num_frames=40",
        "condition.text_encoder.name=scratch"]


def test_crossdiff_two_stages_generate_and_eval(tmp_path):
    from skeleton_diffusion.data.windows.generation import build_synthetic_generation_dataset
    from skeleton_diffusion.data.windows.motion2d import project_generation_dataset
    from skeleton_diffusion.tasks.generation.evaluator_networks import GenerationEvaluator, save_evaluator
    from skeleton_diffusion.nn.text_encoders import build_vocab

    data = make_synthetic(tmp_path / "datasets")
    common = [f"dataset_main_path={data}"]
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    _run(["train_diffusion.py", "experiment=crossdiff_pre", *TINY, f"output_log_path={pre}", *common])
    ck = torch.load(pre / "checkpoints" / "last.pt", weights_only=True)
    assert ck["meta"]["method"] == "crossdiff" and ck["meta"]["crossdiff_stage"] == "pretrain" and "ema" in ck

    ds = build_synthetic_generation_dataset(data / "processed" / "Synthetic" / "hmp", "train", num_frames=40)
    clips = tmp_path / "clips2d"
    project_generation_dataset(ds, clips, indices=range(6), seed=0)
    _run(["train_diffusion.py", "experiment=crossdiff_finetune", *TINY, f"model.init_from={pre}",
          f"model.motion2d.path={clips}", f"output_log_path={ft}", *common])
    ck2 = torch.load(ft / "checkpoints" / "last.pt", weights_only=True)
    assert ck2["meta"]["crossdiff_stage"] == "finetune"
    saved = (ft / "config.yaml").read_text()
    assert "init_from" in saved and "motion2d" in saved
    _run(["train_diffusion.py", f"resume={ft}", "model.num_epochs=2", "progress=false", *common])
    assert torch.load(ft / "checkpoints" / "last.pt", weights_only=True)["trainer"]["iteration"] == 4

    from PIL import Image

    from skeleton_diffusion.methods.crossdiff.joints_sampling import maybe_load_crossdiff

    test_ds = build_synthetic_generation_dataset(data / "processed" / "Synthetic" / "hmp", "test", num_frames=40)
    data_ext = np.median(np.concatenate([body_extent(test_ds.motion(i)) for i in range(len(test_ds))]))
    captions = ["a person walks", "a person jumps"]
    for start in ("2d", "3d"):
        out = tmp_path / f"gen_{start}.npz"
        _run(["-m", "skeleton_diffusion.apps.generate", "--checkpoint", str(ft), "--captions", *captions,
              "--from", start, "--num-samples", "2", "--out", str(out), "--gif", str(tmp_path / f"gen_{start}.gif")])
        z = np.load(out)
        assert z["motion"].shape == (2, 2, 40, 22, 3) and str(z["start"]) == start
        # the file holds what the API samples with the CLI's default seed 0: the same float32 code, but in another
        # process with its own thread count, so float rounding may differ (one element by 2e-6 m was seen after the
        # sampling chain); another seed differs by ~0.1-1 m
        api = maybe_load_crossdiff(ft, "cpu", start=start, use_ema=False)
        want = api.generate(texts=captions, num_samples=2, generator=torch.Generator().manual_seed(0)).numpy()
        np.testing.assert_allclose(z["motion"], want, rtol=1e-4, atol=1e-4)
        assert list(z["captions"]) == captions
        with Image.open(tmp_path / f"gen_{start}.gif") as gif:  # every generated frame once, labelled by caption
            assert gif.n_frames == z["motion"].shape[2], gif.n_frames
        # metres in the data's scale: median body size (largest joint span per frame) within a factor 5 of the
        # test windows'. Measured (4-iteration model): data median 1.45 m, generated/data 2.61 (2d) / 2.60 (3d), so
        # factor 5 ~ 2x margin; a cm/mm unit or a missing
        # de-normalisation is >=10x off.
        ratio = np.median(body_extent(z["motion"])) / data_ext
        print(f"{start}: body extent data median {data_ext:.3f} m, generated/data {ratio:.3f}")
        assert 1 / 5 <= ratio <= 5, (start, ratio)

    torch.manual_seed(0)
    ev = GenerationEvaluator(22, build_vocab(t for caps in ds.texts for t in caps), ds.action_names, dim=16,
                             movement_hidden=16, movement_latent=16, motion_hidden=16, text_width=16, text_layers=1)
    save_evaluator(ev, tmp_path / "ev.pt")
    res_dir = tmp_path / "eval"
    ev_args = ["task=generation", "dataset=synthetic", *common, f"checkpoint_path={ft}",
               f"task.evaluator_path={tmp_path / 'ev.pt'}", "task.num_frames=40", "task.test_stride=40",
               "task.max_test_windows=12", "task.replication_times=1", "task.r_precision_batch=4",
               "task.diversity_times=4", "task.mm_num_samples=2", "task.mm_num_repeats=2",
               "task.multimodality_times=1", "+task.crossdiff_start=2d"]  # fmt: skip
    proc = _run(["eval.py", *ev_args, f"results_path={res_dir}"])
    assert "CrossDiff (2d start)" in proc.stdout
    res = json.loads((res_dir / "results.json").read_text())
    # the command line writes exactly what the in-process protocol computes (2d start, seed 0, same windows)
    _, gen, _, runs = generation_api_runs(ev_args, [0])
    assert gen.start == "2d"
    assert_results_equal_api(res, runs)
    assert {"R_precision_top3", "FID", "MM_Dist", "Diversity", "MultiModality"} <= set(res["metrics"])
    assert_r_precision_valid(runs[0]["metrics"])
