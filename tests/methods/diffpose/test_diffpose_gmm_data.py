"""DiffPose GMM 2D files (data.gmm2d) against the official pipeline outputs in fixtures/lifting/data.pt."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from skeleton_diffusion.data.gmm2d import diffpose_gmm_items, load_diffpose_gmm, load_gmm_2d, read_npz_object
from skeleton_diffusion.utils.errors import DataFormatError


def _close(ours, ref, rel=1e-5):
    ref = torch.as_tensor(ref)
    torch.testing.assert_close(torch.as_tensor(np.asarray(ours)).to(ref.dtype), ref, rtol=1e-5,
                               atol=rel * float(ref.abs().max()))


@pytest.fixture(scope="module")
def data(shared_dir):
    path = shared_dir / "fixtures" / "lifting" / "data.pt"
    if not path.exists():
        pytest.skip(f"fixture not available: {path}")
    return torch.load(path, weights_only=True)


def _nested(flat):
    out: dict = {}
    for key, v in flat.items():
        s, a, c = key.split("/")
        out.setdefault(s, {}).setdefault(a, {})[int(c)] = v.numpy()
    return {s: {a: [cams[i] for i in sorted(cams)] for a, cams in acts.items()} for s, acts in out.items()}


def _write_official(path, positions_2d):
    obj = np.empty((), dtype=object)
    obj[()] = positions_2d
    np.savez(path, positions_2d=obj, metadata=np.array([0]))     # numpy pickles the object array


def test_official_gmm_file_reads_and_normalises(data, tmp_path):
    raw = _nested(data["diffpose_gmm_raw"])
    f = tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb_gmm.npz"
    _write_official(f, raw)
    loaded = load_gmm_2d(f)
    assert list(loaded) == list(raw)
    norm = load_diffpose_gmm(f)
    for key, ref in data["diffpose_gmm_normalised"].items():
        s, a, c = key.split("/")
        _close(norm[s][a][int(c)], ref)
        # only the means move; weights and variances keep the file's units
        np.testing.assert_array_equal(norm[s][a][int(c)][..., [0, 3, 4]], raw[s][a][int(c)][..., [0, 3, 4]])


def test_generator_items_match_official_draws(data, tmp_path):
    raw = _nested(data["diffpose_gmm_raw"])
    f = tmp_path / "gmm.npz"
    _write_official(f, raw)
    norm = load_diffpose_gmm(f)
    poses = np.concatenate([data["diffpose_camera_3d"][k].numpy() for k in data["diffpose_camera_3d"]])
    gmm = np.concatenate([norm[k.split("/")[0]][k.split("/")[1]][int(k.split("/")[2])]
                          for k in data["diffpose_camera_3d"]])
    rng = np.random.RandomState(int(data["diffpose_generator_np_seed"]))
    items = diffpose_gmm_items(poses, gmm, data["diffpose_generator_index"].tolist(), rng)
    for name in ("uvxyz", "noise_scale", "input_2d", "target_3d"):
        _close(items[name], data[f"diffpose_{name}"])


def test_truncates_to_3d_length_and_rejects_short_tracks(data, tmp_path):
    raw = _nested(data["diffpose_gmm_raw"])
    f = tmp_path / "gmm.npz"
    _write_official(f, raw)
    s = next(iter(raw))
    a = next(iter(raw[s]))
    t = raw[s][a][0].shape[0]
    lengths = {s: {a: [t - 3] * len(raw[s][a])}}
    assert load_diffpose_gmm(f, lengths)[s][a][0].shape[0] == t - 3
    with pytest.raises(DataFormatError, match="fewer"):
        load_diffpose_gmm(f, {s: {a: [t + 1] * len(raw[s][a])}})


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_non_allow_listed_pickles(tmp_path):
    f = tmp_path / "evil.npz"
    obj = np.empty((), dtype=object)
    obj[()] = {"S1": {"x": [_Evil()]}}
    np.savez(f, positions_2d=obj)
    with pytest.raises(DataFormatError, match="builtins.print"):
        read_npz_object(f, "positions_2d")
    with pytest.raises(DataFormatError, match="no member"):
        read_npz_object(f, "positions_3d")
    bad = tmp_path / "bad.npz"
    np.savez(bad, positions_2d=np.zeros((2, 17, 3, 4)))
    with pytest.raises(DataFormatError, match="dict"):
        load_gmm_2d(bad)
