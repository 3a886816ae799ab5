"""Window datasets on small fake processed files: official indexing, CSV windows, augmentation, noise, MMGT."""

import numpy as np
import pytest
import torch

from skeleton_diffusion.data.loaders import build_dataloader
from skeleton_diffusion.data.registry import build_dataset
from skeleton_diffusion.data.processed import save_processed
from skeleton_diffusion.data.augment.augmentation import rotation_matrix_z
from skeleton_diffusion.data.mmgt import write_mmgt
from skeleton_diffusion.representations.hmp import to_input_space
from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import ConfigError, DataFormatError

BOX = 1.2


def _clip(rng, T, J=22):
    x = rng.normal(scale=0.3, size=(T, J, 3)).astype(np.float32)
    x[:, 0] += np.linspace(0, 3, T, dtype=np.float32)[:, None]  # moving root
    return x


@pytest.fixture()
def amass_dir(tmp_path):
    rng = np.random.default_rng(0)
    data = {
        "CMU": {0: _clip(rng, 200), 1: _clip(rng, 160)},
        "KIT": {0: _clip(rng, 300)},
        "GRAB": {0: _clip(rng, 400), 1: _clip(rng, 700)},
        "DFaust": {0: _clip(rng, 400)},
    }
    proc = tmp_path / "processed"
    ann = tmp_path / "annotations"
    ann.mkdir()
    save_processed(proc / "data_3d_amass.npz", data)
    (ann / "segments_test.csv").write_text(
        "dataset,file,file_idx,pred_init,pred_end\n"
        "GRAB,s1_apple,1,180,299\nGRAB,s1_apple,1,300,419\nDFaust,x,0,180,299\nGRAB,s2_cup,0,180,299\n"
    )
    (ann / "segments_test_long_term_pred.csv").write_text(
        "dataset,file,file_idx,pred_init,pred_end\nGRAB,s1_apple,1,180,659\n"
    )
    cfg = {
        "num_joints": 22, "fps": 60, "multimodal_threshold": 0.4, "dataset_type": "AMASSDataset",
        "dataset_name": "amass", "precomputed_folder": str(proc), "annotations_folder": str(ann), "dtype": "float32",
        "data_loader_train": {"stride": 60, "augmentation": 30, "shuffle": True, "datasets": ["CMU", "KIT"],
                              "da_mirroring": 0.5, "da_rotations": 1.0, "drop_last": True, "if_load_mmgt": False},
        "data_loader_train_eval": {"stride": 30, "augmentation": 0, "shuffle": False, "datasets": ["CMU", "KIT"],
                                   "da_mirroring": 0.0, "da_rotations": 0.0, "drop_last": False},
        "data_loader_valid": {"stride": 1, "augmentation": 0, "datasets": ["DFaust"], "file_idces": "all"},
        "data_loader_test": {"shuffle": False, "segments_path": "segments_test.csv",
                             "long_term_segments_path": "segments_test_long_term_pred.csv", "drop_last": False},
    }  # fmt: skip
    return cfg, data


def test_amass_training_windows_official_indexing(amass_dir):
    cfg, data = amass_dir
    ds = build_dataset(cfg, "train_eval", pose_box_size=BOX)
    # windows of 150 frames, starts 0..T-151 (last start excluded, official)
    assert len(ds.segments) == (200 - 150) + (160 - 150) + (300 - 150) == 210
    assert len(ds) == 210 // 30
    assert tuple(ds.segments[0]) == (0, 0, 149) and tuple(ds.segments[50]) == (1, 0, 149)
    obs, fut, extra = ds[2]
    assert extra["segment_idx"] == 60 and extra["clip_idx"] == 2 and extra["init"] == 0 and extra["end"] == 149
    assert extra["metadata"] == ("KIT", "0") and extra["class_idx"] == -1  # train datasets are not test classes
    ref = to_input_space(data["KIT"][0][0:150], BOX)
    torch.testing.assert_close(obs, torch.from_numpy(ref[:30]))
    torch.testing.assert_close(fut, torch.from_numpy(ref[30:]))
    assert obs.dtype == torch.float32 and tuple(extra["adj"].shape) == (21, 21)


def test_temporal_jitter_range_and_seed(amass_dir):
    cfg, _ = amass_dir
    ds = build_dataset(cfg, "train", pose_box_size=BOX, da_mirroring=0.0, da_rotations=0.0)
    assert ds.stride == 60 and ds.augmentation == 30 and len(ds) == 3
    np.random.seed(0)
    segs = [ds[1][2]["segment_idx"] for _ in range(300)]
    assert min(segs) == 60 and max(segs) == 120  # uniform over 60*i .. 60*i + 60
    wide = build_dataset(cfg, "train", pose_box_size=BOX, augmentation=100, da_mirroring=0.0, da_rotations=0.0)
    last = [wide[2][2]["segment_idx"] for _ in range(200)]
    assert max(last) == len(ds.segments) - 1 and min(last) >= 120  # 220 +- 100, clipped at the end
    np.random.seed(5)
    a = [ds[0][2]["segment_idx"] for _ in range(20)]
    np.random.seed(5)
    assert a == [ds[0][2]["segment_idx"] for _ in range(20)]


def test_augmentation_follows_official_draw_order(amass_dir):
    cfg, data = amass_dir
    ds = build_dataset(cfg, "train", pose_box_size=BOX)
    snapshot = {k: v.copy() for k, v in data["CMU"].items()}
    np.random.seed(123)
    obs, fut, extra = ds[1]
    # replay the official sequence of draws with the same seed
    rs = np.random.RandomState(123)
    k = max(0, min(60 * 1 + 30 + rs.randint(-30, 31), len(ds.segments) - 1))
    c, s, e = ds.segments[k]
    win = ds.annotations[c][s : e + 1].copy()
    for m in (0, 1):
        if rs.rand() < 0.5:
            win[..., m] *= -1
    if rs.rand() < 1.0:
        r = rotation_matrix_z(rs.randint(0, 360))
        win = (r @ win.reshape(-1, 3).T).T.reshape(win.shape)
    assert extra["segment_idx"] == k
    torch.testing.assert_close(torch.cat([obs, fut]), torch.from_numpy(to_input_space(win, BOX)), atol=1e-6, rtol=1e-5)
    # augmentation preserves bone lengths relative to the root and never touches the cached clips
    for _ in range(20):
        ds[0]
    for key, arr in snapshot.items():
        np.testing.assert_array_equal(ds.annotations[key], arr)
    assert not ds.annotations[0].flags.writeable


def test_test_csv_windows_classes_and_mmgt(amass_dir, tmp_path):
    cfg, data = amass_dir
    write_mmgt(tmp_path / "processed" / "mmgt_test.txt", {0: {0, 1}, 1: {0, 1}, 2: {2}, 3: {3, 0}})
    ds = build_dataset(cfg, "test", pose_box_size=BOX, if_load_mmgt=True, augmentation=5)
    assert ds.augmentation == 0 and ds.stride == 1 and len(ds) == 4  # CSV forces both
    assert [ds.segment_metadata[i] for i in range(4)] == [("GRAB", "1"), ("GRAB", "1"), ("DFaust", "0"), ("GRAB", "0")]
    c, s, e = ds.segments[1].tolist()
    assert ds.clip_names[c] == "GRAB/1" and (s, e) == (270, 419)  # pred_init - 30 .. pred_init + 119
    assert ds.idx_to_class == ["DFaust", "DanceDB", "GRAB", "HUMAN4D", "SOMA", "SSM", "Transitions"]
    loader = build_dataloader(ds, batch_size=3)
    obs, fut, extra = next(iter(loader))
    assert obs.shape == (3, 30, 21, 3) and fut.shape == (3, 120, 21, 3)
    assert extra["class_idx"].tolist() == [2, 2, 0] and extra["class_idx"].dtype == torch.long
    assert extra["metadata"] == (["GRAB", "GRAB", "DFaust"], ["1", "1", "0"])
    assert extra["adj"].shape == (3, 21, 21) and isinstance(extra["mm_gt"], list)
    assert [m.shape[0] for m in extra["mm_gt"]] == [2, 2, 1]
    torch.testing.assert_close(extra["mm_gt"][0][1], fut[1])  # member 1 of set 0 is segment 1's future
    torch.testing.assert_close(extra["mm_gt"][2][0], fut[2])
    assert [len(b[0]) for b in loader] == [3, 1]  # eval: drop_last False


def test_long_term_uses_shipped_csv(amass_dir):
    cfg, _ = amass_dir
    ds = build_dataset(cfg, "test", pose_box_size=BOX, if_long_term_test=True, long_term_factor=4)
    assert ds.pred_length == 480 and ds.segments_path.name == "segments_test_long_term_pred.csv"
    obs, fut, _ = ds[0]
    assert fut.shape == (480, 21, 3)
    with pytest.raises(ConfigError, match="long-term"):
        build_dataset(cfg, "test", if_long_term_test=True, if_load_mmgt=True)


def test_csv_window_outside_clip_is_a_clear_error(amass_dir, tmp_path):
    cfg, _ = amass_dir
    (tmp_path / "annotations" / "segments_test.csv").write_text(
        "dataset,file,file_idx,pred_init,pred_end\nDFaust,x,0,300,419\n"
    )
    with pytest.raises(DataFormatError, match="does not fit"):
        build_dataset(cfg, "test")
    cfg["data_loader_test"]["segments_path"] = "segments_test.csv"
    (tmp_path / "annotations" / "segments_test.csv").write_text(
        "dataset,file,file_idx,pred_init,pred_end\nSOMA,x,0,180,299\n"
    )
    with pytest.raises(DataFormatError, match="SOMA"):
        build_dataset(cfg, "test")


def test_noisy_observations_copy_and_spare_root(amass_dir):
    cfg, data = amass_dir
    clean = build_dataset(cfg, "test", pose_box_size=1.0)
    noisy = build_dataset(cfg, "test", pose_box_size=1.0, if_noisy_obs=True, noise_level=0.5, noise_std=0.05,
                          noise_seed=7)  # fmt: skip
    snapshot = [a.copy() for a in noisy.annotations]
    o_clean, f_clean, _ = clean[0]
    o1, f1, _ = noisy[0]
    o2, _, _ = noisy[0]
    torch.testing.assert_close(o1, o2)  # per-segment seeded noise
    torch.testing.assert_close(f1, f_clean)  # the future is never noised
    changed = (o1 != o_clean).any(-1)  # [T, N] nodes that moved (root is never noised, but centring moves all
    frac = changed.float().mean().item()  # nodes of a frame only if the root moved: it does not)
    assert 0.3 < frac < 0.7
    for a, b in zip(noisy.annotations, snapshot):
        np.testing.assert_array_equal(a, b)


def test_build_dataloader_seed_and_drop_last(amass_dir):
    cfg, _ = amass_dir
    cfg["data_loader_train"].update(stride=5, augmentation=0, da_mirroring=0.0, da_rotations=0.0)
    ds = build_dataset(cfg, "train", pose_box_size=BOX)
    assert len(ds) == 42
    dl = build_dataloader(ds, batch_size=8, seed=3)
    assert dl.drop_last is True and len(dl) == 5  # drop_last from the config block is honoured
    order1 = torch.cat([b[2]["sample_idx"] for b in dl])
    order2 = torch.cat([b[2]["sample_idx"] for b in build_dataloader(ds, batch_size=8, seed=3)])
    assert torch.equal(order1, order2) and not torch.equal(order1, torch.arange(40))
    dl_w = build_dataloader(ds, batch_size=8, seed=3, num_workers=2)
    assert torch.equal(torch.cat([b[2]["sample_idx"] for b in dl_w]), order1)


def test_h36m_dataset(tmp_path):
    rng = np.random.default_rng(1)
    data = {
        "S9": {"Sitting_1": _clip(rng, 300, 17), "SittingDown_1": _clip(rng, 200, 17), "Photo": _clip(rng, 200, 17)},
        "S11": {"WalkDog_1": _clip(rng, 260, 17)},
        "S1": {"Walking": _clip(rng, 260, 17)},
    }
    save_processed(tmp_path / "data_3d_h36m.npz", data)
    (tmp_path / "segments_test.csv").write_text(
        "subject,action,init,pred_init,pred_end\nS9,Sitting 1,0,25,124\nS11,WalkingDog 1,25,50,149\n"
        "S9,TakingPhoto,50,75,174\n"
    )
    cfg = {"num_joints": 17, "fps": 50, "dataset_type": "H36MDataset", "dataset_name": "h36m",
           "precomputed_folder": str(tmp_path), "annotations_folder": str(tmp_path),
           "data_loader_test": {"segments_path": "segments_test.csv", "subjects": ["S9", "S11"], "actions": "all"},
           "data_loader_train": {"stride": 10, "augmentation": 0, "subjects": ["S1", "S9"], "actions": ["Sitting"],
                                 "da_mirroring": 0.0, "da_rotations": 0.0}}  # fmt: skip
    ds = build_dataset(cfg, "test", pose_box_size=BOX)
    assert (ds.obs_length, ds.pred_length) == (25, 100)
    assert ds.segment_metadata == [("S9", "Sitting"), ("S11", "WalkDog"), ("S9", "Photo")]
    assert [ds.class_index(i) for i in range(3)] == [7, 13, 10]
    assert ds.segments[1, 1:].tolist() == [25, 149]
    tr = build_dataset(cfg, "train", pose_box_size=BOX)
    # substring matching on action names: 'Sitting' also selects 'SittingDown_1' (official, harmless)
    assert tr.clip_names == ["S9/Sitting_1", "S9/SittingDown_1"]


def test_freeman_dataset(tmp_path):
    rng = np.random.default_rng(2)
    data = {"seqA_subj10": _clip(rng, 120, 18), "seqB_subj10_slice1": _clip(rng, 100, 18), "seqC": _clip(rng, 90, 18)}
    save_processed(tmp_path / "data_3d_freeman.npz", data)
    (tmp_path / "seq_actions_labels.txt").write_text("seqC,drink\nseqB_subj10_slice1,jazz\nseqA_subj10,drink\n")
    (tmp_path / "segments_test.csv").write_text(
        "name,init,pred_init,pred_end\nseqA_subj10,0,15,74\nseqB_subj10_slice1,15,30,89\nseqA_subj10,15,30,89\n"
    )
    (tmp_path / "train.txt").write_text("seqC\nseqA_subj10")
    cfg = {"num_joints": 18, "fps": 30, "dataset_type": "FreeManDataset", "dataset_name": "freeman",
           "precomputed_folder": str(tmp_path), "annotations_folder": str(tmp_path),
           "data_loader_test": {"segments_path": "segments_test.csv", "actions": "all"},
           "data_loader_train": {"stride": 1, "augmentation": 0, "actions": "all"}}  # fmt: skip
    ds = build_dataset(cfg, "test", pose_box_size=BOX)
    assert ds.idx_to_class == ["jazz", "drink"]  # label-file order of the loaded sequences
    assert ds.segment_metadata[1] == ("jazz", "seqB_subj10_slice1")
    assert [ds.class_index(i) for i in range(3)] == [1, 0, 1]
    tr = build_dataset(cfg, "train", pose_box_size=BOX)
    assert tr.clip_names == ["seqC", "seqA_subj10"] and len(tr.segments) == (90 - 75) + (120 - 75)


def test_3dpw_zero_shot_merges_splits_and_truncates(tmp_path):
    rng = np.random.default_rng(3)
    data = {"train": {"a_00": _clip(rng, 200, 24)}, "valid": {"b_01": _clip(rng, 180, 24)},
            "test": {"c_00": _clip(rng, 160, 24)}}  # fmt: skip
    save_processed(tmp_path / "data_3d_3dpw.npz", data)
    (tmp_path / "segments_test_zero_shot.csv").write_text("name,init,pred_init,pred_end\nc_00,0,30,149\na_00,30,60,179\n")
    cfg = {"num_joints": 22, "fps": 60, "dataset_type": "D3PWZeroShotDataset", "dataset_name": "3dpw",
           "precomputed_folder": str(tmp_path), "annotations_folder": str(tmp_path),
           "data_loader_test": {"segments_path": "segments_test_zero_shot.csv"}}  # fmt: skip
    ds = build_dataset(cfg, "test", pose_box_size=BOX)
    assert ds.idx_to_class == ["a_00", "b_01", "c_00"] and ds.annotations[0].shape[1] == 22
    assert ds.segment_metadata == [("c_00", "c_00"), ("a_00", "a_00")]
    assert [ds.class_index(i) for i in range(2)] == [2, 0]


def test_generic_flat_layout_with_split_lists(tmp_path):
    rng = np.random.default_rng(4)
    save_processed(tmp_path / "data_3d_mybvh.npz", {"x": _clip(rng, 200), "y": _clip(rng, 170), "z": _clip(rng, 160)})
    (tmp_path / "train.txt").write_text("x\ny\n")
    (tmp_path / "segments_test.csv").write_text("name,init,pred_init,pred_end\nz,0,30,149\n")
    cfg = {"num_joints": 22, "fps": 60, "dataset_type": "GenericMotionDataset", "dataset_name": "mybvh",
           "skeleton_name": "amass", "precomputed_folder": str(tmp_path), "annotations_folder": str(tmp_path),
           "data_loader_train": {"stride": 1}, "data_loader_test": {"segments_path": "segments_test.csv"}}  # fmt: skip
    tr = build_dataset(cfg, "train", pose_box_size=BOX)
    assert tr.clip_names == ["x", "y"] and len(tr) == 50 + 20
    te = build_dataset(cfg, "test", pose_box_size=BOX)
    assert te.idx_to_class == ["z"] and te.segment_metadata == [("z", "z")]


def test_config_errors(amass_dir):
    cfg, _ = amass_dir
    with pytest.raises(ConfigError, match="data_loader_foo|split"):
        build_dataset(cfg, "foo")
    with pytest.raises(ConfigError, match="num_joints"):
        build_dataset(cfg, "test", skeleton=get_skeleton("h36m"))
    del cfg["data_loader_valid"]
    with pytest.raises(ConfigError, match="data_loader_valid"):
        build_dataset(cfg, "valid")


def test_dataset_items_match_official_fixture_bit_for_bit(tmp_path):
    from conftest import official_fixture

    case = torch.load(official_fixture("autoencoder.pt"), weights_only=True)["cases"]["amass"]
    motion = case["motion_metres"].numpy()  # [2, 150, 22, 3] world, AMASS joint order
    save_processed(tmp_path / "data_3d_fx.npz", {"test": {"a": motion[0], "b": motion[1]}})
    (tmp_path / "segments_test.csv").write_text("name,init,pred_init,pred_end\nb,0,30,149\na,0,30,149\n")
    cfg = {"num_joints": 22, "fps": 60, "dataset_type": "GenericMotionDataset", "dataset_name": "fx",
           "skeleton_name": "amass", "precomputed_folder": str(tmp_path), "annotations_folder": str(tmp_path),
           "data_loader_test": {"segments_path": "segments_test.csv"}}  # fmt: skip
    ds = build_dataset(cfg, "test", pose_box_size=case["config"]["pose_box_size"])
    obs, fut, extra = next(iter(build_dataloader(ds, batch_size=2)))
    assert torch.equal(obs, case["obs"][[1, 0]]) and torch.equal(fut, case["future"][[1, 0]])


def test_unique_sample_strings_and_find_segment(amass_dir):
    cfg, _ = amass_dir
    ds = build_dataset(cfg, "test", pose_box_size=BOX)
    _, _, extra = ds[1]
    assert ds.unique_sample_string(extra) == f"GRAB-1_clip{extra['clip_idx']}_270:419-segment1"
    batch = next(iter(build_dataloader(ds, batch_size=2)))[2]
    assert ds.unique_sample_string(batch)[1] == ds.unique_sample_string(extra)
    assert ds.find_segment(extra["clip_idx"], 270) == 1 and ds.find_segment(extra["clip_idx"], 271) is None


def test_generic_defaults_to_segments_split_csv(tmp_path):
    rng = np.random.default_rng(6)
    save_processed(tmp_path / "data_3d_g.npz", {"valid": {"v": _clip(rng, 200)}, "test": {"t": _clip(rng, 200)}})
    (tmp_path / "segments_valid.csv").write_text("name,init,pred_init,pred_end\nv,10,40,159\nv,20,50,169\n")
    cfg = {"num_joints": 22, "fps": 60, "dataset_type": "GenericMotionDataset", "dataset_name": "g",
           "skeleton_name": "amass", "precomputed_folder": str(tmp_path), "data_loader_valid": {"stride": 30},
           "data_loader_test": {}}  # fmt: skip
    ds = build_dataset(cfg, "valid", pose_box_size=BOX)
    assert len(ds) == 2 and ds.segments[:, 1].tolist() == [10, 20]
    with pytest.raises(ConfigError, match="segment CSV"):
        build_dataset(cfg, "test", pose_box_size=BOX)


def test_3dpw_multi_actor_keys(tmp_path):
    rng = np.random.default_rng(7)
    data = {"test": {"seq_actor0": _clip(rng, 200, 24), "seq": _clip(rng, 200, 24), "solo_actor0": _clip(rng, 180, 24)}}
    save_processed(tmp_path / "data_3d_3dpw.npz", data)
    (tmp_path / "segments_test_zero_shot.csv").write_text("name,init,pred_init,pred_end\nseq,0,30,149\nsolo,0,30,149\n")
    cfg = {"num_joints": 22, "fps": 60, "dataset_type": "D3PWZeroShotDataset", "dataset_name": "3dpw",
           "precomputed_folder": str(tmp_path), "annotations_folder": str(tmp_path),
           "data_loader_test": {"segments_path": "segments_test_zero_shot.csv"}}  # fmt: skip
    ds = build_dataset(cfg, "test", pose_box_size=BOX)
    # 'seq' is the official (last) actor; a CSV name without an exact key falls back to '<name>_actor0'
    assert [ds.clip_names[c] for c in ds.segments[:, 0]] == ["seq", "solo_actor0"]
    assert ds.idx_to_class == ["seq", "solo_actor0"] and [ds.class_index(i) for i in range(2)] == [0, 1]
