"""Official HumanML3D metrics (MDM ``utils/metrics.py`` + ``eval/eval_humanml.py``) against ``metrics.npz``."""

from __future__ import annotations

import numpy as np
import pytest
from _t2m_fixture import close, t2m_dir

from skeleton_diffusion.tasks.generation.official import (
    activation_statistics,
    diversity,
    euclidean_distance_matrix,
    generation_fid,
    matching_score,
    multimodality,
    r_precision,
    replication_statistics,
    summarize,
    top_k_hits,
)


@pytest.fixture(scope="module")
def m(shared_dir):
    return dict(np.load(t2m_dir(shared_dir) / "metrics.npz"))


def test_r_precision_and_matching_score(m):
    bs, n = int(m["batch_size"]), int(m["n_used"])
    for key, motion in (("gt", m["gt_motion_emb"]), ("gen", m["gen_motion_emb"])):
        rp = r_precision(m["text_emb"], motion, bs)
        assert np.array_equal(rp * n, m[f"r_precision_{key}"] * n), key  # hit counts, exact
        close(matching_score(m["text_emb"], motion, bs), m[f"matching_score_{key}"], f"matching_score_{key}")


def test_distance_matrix_and_top_k(m):
    bs = int(m["batch_size"])
    dist = euclidean_distance_matrix(m["text_emb"][:bs], m["gen_motion_emb"][:bs])
    close(dist, m["dist_matrix_batch0"], "dist_matrix_batch0")
    assert np.array_equal(top_k_hits(m["dist_matrix_batch0"], 3), m["top_k_batch0"])


def test_fid_and_statistics(m):
    ref = m["gt_fid_motion_emb"][: int(m["n_used_gt_fid"])]
    gen = m["gen_motion_emb"][: int(m["n_used"])]
    mu, cov = activation_statistics(ref)
    close(mu, m["mu_gt_fid"], "mu_gt_fid")
    close(cov, m["cov_gt_fid"], "cov_gt_fid")
    mu, cov = activation_statistics(gen)
    close(mu, m["mu_gen"], "mu_gen")
    close(cov, m["cov_gen"], "cov_gen")
    close(generation_fid(ref, gen), m["fid_gen"], "fid_gen")
    close(generation_fid(ref, m["gt_motion_emb"][: int(m["n_used"])]), m["fid_gt"], "fid_gt")


def test_diversity_gt_then_generated_from_one_legacy_stream(m):
    times, n = int(m["diversity_times"]), int(m["n_used"])
    rng = np.random.RandomState(int(m["diversity_seed"]))
    close(diversity(m["gt_motion_emb"][:n], times, rng), m["diversity_gt"], "diversity_gt")
    close(diversity(m["gen_motion_emb"][:n], times, rng), m["diversity_gen"], "diversity_gen")
    replay = np.random.RandomState(int(m["diversity_seed"]))
    for name in ("gt_first", "gt_second", "gen_first", "gen_second"):
        assert np.array_equal(replay.choice(n, times, replace=False), m[f"diversity_idx_{name}"]), name


def test_multimodality_legacy_stream(m):
    times = int(m["mm_times"])
    close(multimodality(m["mm_motion_emb"], times, np.random.RandomState(int(m["mm_seed"]))), m["multimodality"],
          "multimodality")
    replay = np.random.RandomState(int(m["mm_seed"]))
    r = m["mm_motion_emb"].shape[1]
    assert np.array_equal(replay.choice(r, times, replace=False), m["mm_idx_first"])
    assert np.array_equal(replay.choice(r, times, replace=False), m["mm_idx_second"])


def test_replication_statistics_and_summary_conf95(m):
    mean, conf = replication_statistics(m["replication_values"])
    close(mean, m["replication_mean"], "replication_mean")
    close(conf, m["replication_conf"], "replication_conf")
    mean3, conf3 = replication_statistics(m["replication_values_top3"])
    close(mean3, m["replication_mean_top3"], "replication_mean_top3")
    close(conf3, m["replication_conf_top3"], "replication_conf_top3")
    runs = [{"metrics": {"FID": float(v), **{f"R_precision_top{k + 1}": float(t[k]) for k in range(3)}},
             "seed": i, "num_windows": 1024, "num_samples": 1, "stats_mode": "generation/text", "wall_time_s": 1.0}
            for i, (v, t) in enumerate(zip(m["replication_values"], m["replication_values_top3"]))]
    s = summarize(runs, dataset="t2m")["metrics"]
    close(s["FID"]["mean"], m["replication_mean"], "summary mean")
    close(s["FID"]["conf95"], m["replication_conf"], "summary conf95")
    for k in range(3):
        close(s[f"R_precision_top{k + 1}"]["conf95"], m["replication_conf_top3"][k], f"top{k + 1} conf95")
    assert "std" in s["FID"]  # existing key kept


def test_only_full_batches_are_used(m):
    bs = int(m["batch_size"])
    extra_t = np.concatenate([m["text_emb"], m["text_emb"][:5] + 3.0])
    extra_g = np.concatenate([m["gen_motion_emb"], m["gen_motion_emb"][:5] - 3.0])
    assert np.array_equal(r_precision(extra_t, extra_g, bs), r_precision(m["text_emb"], m["gen_motion_emb"], bs))
    assert matching_score(extra_t, extra_g, bs) == matching_score(m["text_emb"], m["gen_motion_emb"], bs)
    extra_ref = np.concatenate([m["gt_fid_motion_emb"], m["gt_fid_motion_emb"][:7] * 2.0])
    close(generation_fid(extra_ref, extra_g, bs), m["fid_gen"], "fid_gen with extra rows")
    times, seed = int(m["diversity_times"]), int(m["diversity_seed"])
    close(diversity(np.concatenate([m["gt_motion_emb"], m["gt_motion_emb"][:9]]), times, np.random.RandomState(seed),
                    bs), m["diversity_gt"], "diversity_gt with extra rows")
    assert generation_fid(extra_ref, extra_g, None) != generation_fid(extra_ref, extra_g, bs)
