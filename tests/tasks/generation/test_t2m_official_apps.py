"""``generate`` and ``edit`` on converted official MDM runs (text and action), written by the test."""

from __future__ import annotations

import numpy as np
import pytest
from _t2m_official_files import write_humanml3d, write_official_mdm, write_tiny_clip

from skeleton_diffusion.apps import edit as edit_app
from skeleton_diffusion.apps.generate import generate, main as generate_main
from skeleton_diffusion.methods.mdm.convert import convert
from skeleton_diffusion.methods.mdm.editing import hml_lower_body_mask, official_known_mask
from skeleton_diffusion.utils.errors import DataFormatError, InputError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mdm_apps")
    write_humanml3d(root / "HumanML3D", n=3)
    clip = write_tiny_clip(root / "clip")
    convert(write_official_mdm(root / "text_off"), root / "text_run")
    convert(write_official_mdm(root / "act_off", dataset="humanact12"), root / "act_run")
    return {"root": root, "data": root / "HumanML3D", "clip": clip, "text": root / "text_run",
            "action": root / "act_run"}


def test_generate_official_text_mdm_to_joints(files, tmp_path, capsys):
    kw = dict(num_samples=2, device="cpu", text_encoder_path=files["clip"], data_root=files["data"])
    a = generate(files["text"], ["a person walks", "man"], out=tmp_path / "a.npz", seed=3, **kw)
    b = generate(files["text"], ["a person walks", "man"], out=tmp_path / "b.npz", seed=3, **kw)
    c = generate(files["text"], ["a person walks", "man"], out=tmp_path / "c.npz", seed=4, **kw)
    assert a["motion_shape"] == (2, 2, 196, 22, 3)
    da, db, dc = (np.load(r["output"]) for r in (a, b, c))
    np.testing.assert_array_equal(da["motion"], db["motion"])  # seed= reproduces
    assert not np.allclose(da["motion"], dc["motion"])
    assert da["features"].shape == (2, 2, 196, 263) and list(da["captions"]) == ["a person walks", "man"]
    assert "text encoder: CLIPTextEncoder" in capsys.readouterr().out  # which encoder 'auto' picked


def test_generate_official_action_mdm_cli(files, tmp_path):
    out = tmp_path / "act.npz"
    res = generate_main(["--checkpoint", str(files["action"]), "--actions", "0", "3", "--num-frames", "12",
                         "--out", str(out), "--device", "cpu"])  # fmt: skip
    d = np.load(out)
    assert d["features"].shape == (2, 1, 12, 150) and res["motion_shape"] == (2, 1, 12, 150)
    assert list(d["captions"]) == ["action 0", "action 3"]
    with pytest.raises(InputError, match="outside 0..11"):
        generate(files["action"], actions=[12], out=tmp_path / "x.npz", device="cpu")
    with pytest.raises(InputError, match="text MDM"):
        generate(files["text"], actions=[1], out=tmp_path / "y.npz", device="cpu", text_encoder_path=files["clip"])


def test_upper_body_mask_is_the_official_layout():
    m = hml_lower_body_mask()
    assert m.shape == (263,) and m[:4].all() and m[-4:].all()
    # ric block: joints 1..21, 3 each; left hip (1) kept, spine (3) edited
    assert m[4:7].all() and not m[10:13].any()
    assert int(m.sum()) == 4 + 8 * 3 + 8 * 6 + 9 * 3 + 4
    assert official_known_mask("prefix", 10, 263, [3])[:3].all()


def test_edit_official_mdm_keeps_known_frames(files, tmp_path):
    src = files["data"] / "new_joint_vecs" / "000000.npy"
    out = tmp_path / "e.npz"
    edit_app.run(edit_app.compose_config([f"checkpoint_path={files['text']}", f"input={src}", f"output={out}",
                                          "mode=inbetween", "keep=[0,1,2]", f"data_root={files['data']}",
                                          "device=cpu", "num_samples=2"]))  # fmt: skip
    d = np.load(out)
    assert d["edited"].shape == (2, 196, 22, 3)
    ref = np.load(src)
    # kept frames come back through x̂₀ overwriting at t = 0 (float32 de-/re-normalisation: 1e-6 x margin)
    np.testing.assert_allclose(d["features"][:, :3], np.broadcast_to(ref[:3], (2, 3, 263)), rtol=1e-5, atol=1e-5)


def test_edit_empty_input_is_one_paragraph(files, tmp_path):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    cfg = edit_app.compose_config([f"checkpoint_path={files['text']}", f"input={empty}", "keep=[0]", "device=cpu"])
    with pytest.raises(DataFormatError, match="is empty"):
        edit_app.run(cfg)
    with pytest.raises(DataFormatError, match="is empty"):
        edit_app.load_motion(empty)
