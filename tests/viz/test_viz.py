"""Visualisation: frame counts, highlighting, GIF/MP4 writing, grids, matrices, TensorBoard helpers."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.errors import InputError
from skeleton_diffusion.viz.animation import (
    add_video,
    animate_prediction,
    encode_gif,
    render_prediction_frames,
    save_animation,
    tensorboard_animation,
)
from skeleton_diffusion.viz._common import closest_sample_index
from skeleton_diffusion.viz.plots import (
    figure_to_image,
    plot_matrix,
    sample_grid_image,
    sample_grid_png,
    skeleton_figure,
)
from skeleton_diffusion.viz import animation as anim_mod
from skeleton_diffusion.viz._common import HIGHLIGHT_COLORS, SAMPLE_COLORS, layout_for, to_plot_coords


def _motion(sk, t_obs=6, t_pred=8, s=3, seed=0, with_root=False):
    """Body-sized random-walk motion in metric space (nodes) or world space (with a moving root)."""
    rng = np.random.default_rng(seed)
    k = sk.num_joints if with_root else sk.num_nodes
    base = np.stack([rng.uniform(-0.3, 0.3, k), rng.uniform(-0.1, 0.1, k), np.linspace(-0.9, 0.8, k)], -1)
    obs = base[None] + np.cumsum(rng.normal(0, 0.01, (t_obs, k, 3)), 0)
    samples = obs[-1][None, None] + np.cumsum(rng.normal(0, 0.02, (s, t_pred, k, 3)), 1)
    return obs, samples


@pytest.fixture(scope="module")
def amass():
    return get_skeleton("amass")


def _hex_rgb(h: str) -> np.ndarray:
    return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)])


def _count_color(img: np.ndarray, hex_color: str, tol: int = 12) -> int:
    return int((np.abs(img.astype(int) - _hex_rgb(hex_color)).max(-1) <= tol).sum())


# ---------------------------------------------------------------------------------------------- layout ---
def test_layout_nodes_vs_joints(amass):
    lay_n = layout_for(amass, amass.num_nodes)
    lay_j = layout_for(amass, amass.num_joints)
    assert [tuple(x) for x in lay_n.limbs] == list(amass.node_limbs)
    assert [tuple(x) for x in lay_j.limbs] == list(amass.limbs)
    # LHip-LKnee (joints 1-4) is a left limb, RHip-RKnee (2-5) is not
    sides = dict(zip(map(tuple, lay_j.limbs.tolist()), lay_j.limb_sides.tolist()))
    assert sides[(1, 4)] == 0 and sides[(2, 5)] == 1
    with pytest.raises(InputError, match="skeleton 'amass'.*22 joints.*21"):
        layout_for(amass, 17)


def test_up_axis_rotation_is_proper():
    x = np.random.default_rng(0).normal(size=(5, 3))
    for up in ("y", "-y", "-z"):
        y = to_plot_coords(x, up)
        np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1))
    np.testing.assert_allclose(to_plot_coords(np.array([[0.0, 1.0, 0.0]]), "y"), [[0.0, 0.0, 1.0]], atol=1e-12)


def test_closest_sample_index_uses_ade(amass):
    _, samples = _motion(amass, s=4)
    gt = samples[2] + 0.001
    assert closest_sample_index(samples, gt) == 2
    assert closest_sample_index(torch.from_numpy(samples)[None], torch.from_numpy(gt)) == 2


# -------------------------------------------------------------------------------------------- frames ---
@pytest.mark.parametrize("mode", ["side_by_side", "overlay"])
def test_frame_count_is_obs_plus_pred(amass, mode):
    obs, samples = _motion(amass, t_obs=5, t_pred=7, s=3)
    frames = render_prediction_frames(obs, samples, amass, gt=samples[1], mode=mode, dpi=30, panel_size=1.5)
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == 5 + 7 and frames.shape[-1] == 3
    # the motion moves, so the frames differ
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).sum() > 0


def _counter_texts(monkeypatch) -> list[str]:
    import matplotlib.text

    seen: list[str] = []
    orig = matplotlib.text.Text.set_text

    def spy(self, s):
        seen.append(str(s))
        return orig(self, s)

    monkeypatch.setattr(matplotlib.text.Text, "set_text", spy)
    return seen


def test_frame_counter_labels_default_and_custom(amass, monkeypatch):
    obs, samples = _motion(amass, t_obs=2, t_pred=3, s=2)
    seen = _counter_texts(monkeypatch)
    render_prediction_frames(obs, samples, amass, dpi=30, panel_size=1.5)
    assert "observation 1/2" in seen and "prediction 3/3" in seen
    seen.clear()
    render_prediction_frames(obs, samples, amass, dpi=30, panel_size=1.5,
                             phase_labels=("a person walks", "a person walks"))
    assert [t for t in seen if "/" in t] == [f"a person walks {f}/5" for f in range(1, 6)]
    assert not any("observation" in t or "prediction" in t for t in seen)


def test_generate_gif_is_labelled_by_caption(amass, monkeypatch, tmp_path):
    """apps.generate draws generated motion with its caption (or "generated") as the frame label."""
    from skeleton_diffusion.apps import generate as gen_app

    assert gen_app._gif_label("  a person\nwalks ") == "a person walks"
    assert gen_app._gif_label("") == "generated"
    assert len(gen_app._gif_label("x" * 100)) == 40
    seen = _counter_texts(monkeypatch)
    motion = np.stack([_motion(amass, t_obs=1, t_pred=4, s=2)[1]])            # [B=1, S=2, T=4, J, 3]
    frames = {}

    def fake_save(fr, out_path, fps):
        frames["n"] = len(fr)
        return Path(out_path)

    monkeypatch.setattr(anim_mod, "save_animation", fake_save)
    anim_mod.animate_prediction(motion[0, 0, :1], motion[0, :, 1:], amass, out_path=tmp_path / "g.gif",
                                highlight=None, obs_panel=False, dpi=30, panel_size=1.5, trail=0,
                                phase_labels=(gen_app._gif_label("a person walks"),) * 2)
    assert frames["n"] == 4 and "a person walks 4/4" in seen
    src = Path(gen_app.__file__).read_text()
    assert "phase_labels=(word, word)" in src and "obs_panel=False" in src


def test_obs_with_root_and_samples_without(amass):
    obs_j, _ = _motion(amass, with_root=True)
    obs_j[:, 0] += np.linspace(0, 1, len(obs_j))[:, None]  # moving root: must be removed
    _, samples = _motion(amass)
    frames = render_prediction_frames(obs_j, samples, amass, dpi=30, panel_size=1.5)
    assert frames.shape[0] == len(obs_j) + samples.shape[1]
    # world-space everything (J joints) also works
    obs_w, samples_w = _motion(amass, with_root=True)
    assert render_prediction_frames(obs_w, samples_w, amass, dpi=30).shape[0] == len(obs_w) + samples_w.shape[1]


def test_root_centred_futures_centre_a_world_observation(amass):
    obs_w, samples_w = _motion(amass, with_root=True)
    obs_w = obs_w + np.array([3.0, -2.0, 0.0])  # far from the origin
    samples_c = samples_w - samples_w[..., :1, :]  # root at the origin
    pm = anim_mod.prepare_motion(obs_w, samples_c, amass)
    np.testing.assert_allclose(pm.obs[:, 0], 0.0, atol=1e-12)
    pm_world = anim_mod.prepare_motion(obs_w, samples_w + np.array([3.0, -2.0, 0.0]), amass)
    np.testing.assert_allclose(pm_world.obs, obs_w)  # world futures: everything kept as is


def test_bad_shapes_raise_input_error(amass):
    obs, samples = _motion(amass)
    with pytest.raises(InputError, match="obs has 17 joints"):
        render_prediction_frames(obs[:, :17], samples, amass)
    with pytest.raises(InputError, match="gt has shape"):
        render_prediction_frames(obs, samples, amass, gt=samples[0, :3])
    with pytest.raises(InputError, match="samples"):
        render_prediction_frames(obs, samples[..., :2], amass)
    with pytest.raises(ValueError, match="mode"):
        render_prediction_frames(obs, samples, amass, mode="grid")


def test_closest_sample_is_drawn_red_only_with_gt(amass):
    obs, samples = _motion(amass, s=3)
    kw = dict(dpi=40, panel_size=2.0, mode="overlay", show_axes=False, sample_alpha=1.0)
    with_gt = render_prediction_frames(obs, samples, amass, gt=samples[1], **kw)
    no_gt = render_prediction_frames(obs, samples, amass, **kw)
    red = HIGHLIGHT_COLORS[1]
    assert _count_color(with_gt[-1], red) > 20
    assert _count_color(no_gt[-1], red) == 0
    assert _count_color(no_gt[-1], SAMPLE_COLORS[1]) > 20
    # during the observation no sample colour is drawn
    assert _count_color(with_gt[0], red) == 0 and _count_color(with_gt[0], SAMPLE_COLORS[1]) == 0


def test_max_samples_keeps_highlight(amass):
    obs, samples = _motion(amass, s=6)
    pm = anim_mod.prepare_motion(obs, samples, amass, gt=samples[4], max_samples=2)
    assert pm.sample_ids == [4, 0] and pm.highlight == 0 and pm.samples.shape[0] == 2
    np.testing.assert_allclose(pm.ade[0], 0.0, atol=1e-12)


# ----------------------------------------------------------------------------------------- writing ---
def test_gif_roundtrip_frame_count_and_pixels(tmp_path, amass):
    obs, samples = _motion(amass, t_obs=4, t_pred=6)
    # animate_prediction's own defaults: 3-inch panels, 20-frame ghost trails (observation panel: only without gt)
    frames = render_prediction_frames(obs, samples, amass, gt=samples[0], dpi=30, panel_size=3.0, trail=20)
    out = animate_prediction(obs, samples, amass, gt=samples[0], out_path=tmp_path / "a.gif", fps=30, dpi=30)
    assert out == tmp_path / "a.gif"
    with Image.open(out) as im:
        assert im.n_frames == 10
        im.seek(9)
        last = np.asarray(im.convert("RGB")).astype(int)
    # delta-encoded frames decode back to (a palette approximation of) the rendered last frame
    assert last.shape == frames[-1].shape
    assert np.abs(last - frames[-1]).mean() < 4.0
    assert stat.S_IMODE(os.stat(out).st_mode) & 0o044  # readable by others (not mkstemp's 0600)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # no temp files left


def test_gif_durations_track_fps():
    d = anim_mod.gif_durations_ms(30, 30.0)
    assert all(x % 10 == 0 for x in d) and abs(sum(d) - 1000) <= 10
    assert set(anim_mod.gif_durations_ms(10, 60.0)) == {20}  # clamped: viewers slow < 20 ms to 100 ms


def test_mp4_without_ffmpeg_falls_back_to_gif(tmp_path, monkeypatch):
    monkeypatch.setattr(anim_mod, "ffmpeg_executable", lambda: None)
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    with pytest.warns(UserWarning, match="instead"):
        out = save_animation(frames, tmp_path / "clip.mp4", fps=10)
    assert out == tmp_path / "clip.gif" and out.exists()
    with pytest.raises(ValueError, match="unsupported"):
        save_animation(frames, tmp_path / "clip.avi")


def test_mp4_pipes_raw_frames_to_ffmpeg(tmp_path, monkeypatch):
    """A stand-in ffmpeg records its arguments and the raw bytes it receives."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, json\n"
        "data = sys.stdin.buffer.read()\n"
        "out = sys.argv[-1]\n"
        "open(out, 'wb').write(data)\n"
        "open(out + '.args.json', 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(anim_mod, "ffmpeg_executable", lambda: str(fake))
    frames = np.random.default_rng(0).integers(0, 255, (4, 10, 12, 3), dtype=np.uint8)
    out = save_animation(frames, tmp_path / "v.mp4", fps=25)
    assert out == tmp_path / "v.mp4"
    assert out.read_bytes() == frames.tobytes()
    import json

    args = json.loads(next(tmp_path.glob("*.args.json")).read_text())
    assert args[args.index("-s") + 1] == "12x10" and args[args.index("-r") + 1] == "25"
    assert "libx264" in args and "yuv420p" in args


def test_real_mp4_when_ffmpeg_present(tmp_path):
    if anim_mod.ffmpeg_executable() is None:
        pytest.skip("no ffmpeg executable on this machine (MP4 falls back to GIF)")
    frames = np.random.default_rng(0).integers(0, 255, (5, 33, 41, 3), dtype=np.uint8)
    out = anim_mod.save_mp4(frames, tmp_path / "v.mp4", fps=10)
    assert out.stat().st_size > 100


@pytest.mark.slow
def test_150_frame_5_sample_gif_is_fast(tmp_path, amass):
    obs, samples = _motion(amass, t_obs=30, t_pred=120, s=5)
    t0 = time.perf_counter()
    out = animate_prediction(obs, samples, amass, gt=samples[3], out_path=tmp_path / "big.gif", fps=60, dpi=50)
    elapsed = time.perf_counter() - t0
    with Image.open(out) as im:
        assert im.n_frames == 150
    assert elapsed < 30.0, f"150-frame GIF took {elapsed:.1f}s"  # ~2-3 s on an idle core


# --------------------------------------------------------------------------------- static pictures ---
def test_figure_to_image():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1], [0, 1])
    img = figure_to_image(fig)
    assert img.dtype == np.uint8 and img.shape == (50, 100, 3)


def test_sample_grid_shape_scales_with_rows_and_cols(tmp_path, amass):
    obs, samples = _motion(amass, t_pred=10, s=4)
    a = sample_grid_image(samples, amass, n_keyframes=3, max_samples=2, dpi=40)
    b = sample_grid_image(samples, amass, obs=obs, gt=samples[0], n_keyframes=5, max_samples=3, dpi=40)
    assert a.dtype == np.uint8 and b.shape[0] > a.shape[0] and b.shape[1] > a.shape[1]
    out = sample_grid_png(samples, amass, tmp_path / "g.png", gt=samples[0], frame_indices=[0, 9], dpi=40)
    with Image.open(out) as im:
        assert im.format == "PNG"
    with pytest.raises(InputError, match="outside the prediction"):
        sample_grid_image(samples, amass, frame_indices=[10])


def test_plot_matrix(tmp_path, amass):
    img = plot_matrix(amass.adjacency(), amass.node_names, "adjacency", tmp_path / "m.png", dpi=40)
    assert img.dtype == np.uint8 and img.ndim == 3
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (img.shape[1], img.shape[0])
    with pytest.raises(InputError, match="names"):
        plot_matrix(amass.adjacency(), amass.node_names[:5], "x")
    with pytest.raises(InputError, match="2-D"):
        plot_matrix(np.zeros(3), None, "x")


@pytest.mark.parametrize("name", ["amass", "h36m", "freeman"])
def test_skeleton_figure_all_skeletons(name):
    sk = get_skeleton(name)
    rng = np.random.default_rng(0)
    pose = np.stack([rng.uniform(-0.3, 0.3, sk.num_joints), rng.uniform(-0.1, 0.1, sk.num_joints),
                     np.linspace(-0.9, 0.8, sk.num_joints)], -1)
    img = skeleton_figure(sk, pose, dpi=30)
    assert img.dtype == np.uint8 and img.shape[-1] == 3


def test_docs_figures_exist_and_small(repo_root):
    for name in ("amass", "amass-mano", "h36m", "freeman"):
        p = repo_root / "docs" / "skeletons" / f"{name}.png"
        assert p.is_file(), f"missing {p}: run python docs/make_figures.py"
        assert p.stat().st_size < 200 * 1024


# ------------------------------------------------------------------------------------- tensorboard ---
def test_tensorboard_animation_and_add_video(tmp_path, amass):
    obs, samples = _motion(amass, t_obs=4, t_pred=6)
    vid = tensorboard_animation(obs, samples, amass, gt=samples[0], stride=1, dpi=30)
    assert vid.dtype == torch.uint8 and vid.ndim == 5 and vid.shape[:3] == (1, 10, 3)
    vid2 = tensorboard_animation(obs, samples, amass, stride=2, dpi=30)
    assert vid2.shape[1] == 2 + 3

    from torch.utils.tensorboard import SummaryWriter
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with SummaryWriter(tmp_path) as w:
        add_video(w, "val/animation", vid, global_step=7, fps=15)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert "val/animation" in acc.Tags()["images"]
    ev = acc.Images("val/animation")[0]
    assert ev.step == 7 and ev.width == vid.shape[-1] and ev.height == vid.shape[-2]
    assert ev.encoded_image_string[:6] in (b"GIF89a", b"GIF87a")
    with pytest.raises(InputError):
        add_video(None, "x", torch.zeros(2, 3, 3, 4, 4, dtype=torch.uint8))


def test_encode_gif_rejects_bad_frames():
    with pytest.raises(InputError, match=r"\[F, H, W, 3\]"):
        encode_gif(np.zeros((4, 4, 3), np.uint8))


def test_docs_make_figures_script_runs(tmp_path, repo_root):
    """The figure script regenerates every picture (built-in pose when the example file is absent)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", repo_root / "docs" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--example", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "sk")])
    assert sorted(p.name for p in (tmp_path / "sk").iterdir()) == [
        "amass-mano.png", "amass.png", "freeman.png", "h36m.png"]


def test_paths_are_pathlib(tmp_path, amass):
    obs, samples = _motion(amass, t_obs=2, t_pred=2, s=1)
    out = animate_prediction(obs, samples, amass, out_path=str(tmp_path / "s.gif"), dpi=20)
    assert isinstance(out, Path) and out.exists()
