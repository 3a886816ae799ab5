"""Config keys nothing reads are gone, so setting one is refused instead of silently ignored (issue 30).

Each key below was carried over from the official configs but no code of ours read it: the official command lines
of the README pass none of them (tests/apps/test_cli_configs.py composes every one), so they are removed rather than
kept as no-ops, and Hydra refuses an override of a key the config lacks ("Key ... is not in struct")."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from _pipeline_helpers import compose_cfg

DEAD = {
    "eval": ["dataset_annotation_path", "dataset_precomputed_path", "metrics_at_cpu", "n_gpu", "if_measure_time",
             "if_store_gt", "task.motion_repr_type", "task.seq_centering", "method_specs.motion_repr_type"],
    "train_autoencoder": ["dataset_annotation_path", "dataset_precomputed_path", "task.motion_repr_type",
                          "task.seq_centering"],
    "train_diffusion": ["dataset_annotation_path", "dataset_precomputed_path"],
}
EXTRA = {"eval": ["method_specs=zero_velocity"]}
CASES = [(name, key) for name, keys in DEAD.items() for key in keys]


def _has(cfg, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("config, key", CASES)
def test_dead_key_is_absent_and_an_override_is_refused(config, key):
    assert not _has(compose_cfg(config, EXTRA.get(config, [])), key)
    with pytest.raises(ConfigCompositionException, match=key.split(".")[-1]):
        compose_cfg(config, [*EXTRA.get(config, []), f"{key}=1"])


def test_lifting_task_has_no_root_joint_key():
    cfg = compose_cfg("eval", ["task=lifting"])
    assert "root_joint" not in cfg.task
    with pytest.raises(ConfigCompositionException, match="root_joint"):
        compose_cfg("eval", ["task=lifting", "task.root_joint=3"])
