"""A converted official CrossDiff as the official T2M evaluation's generator (``t2m_generator``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "tasks" / "generation"))
from _crossdiff_fixture import load_fixture
from _t2m_official_files import write_tiny_clip
from test_crossdiff_official_convert import write_official_run

from skeleton_diffusion.methods.crossdiff import convert
from skeleton_diffusion.methods.crossdiff.diffusion import OfficialDiffusion
from skeleton_diffusion.methods.registry import get_method
from skeleton_diffusion.utils.errors import InputError


@pytest.mark.slow
def test_t2m_generator_wraps_the_official_sampler(shared_dir, tmp_path):
    fx = load_fixture(shared_dir)
    ckpt, config = write_official_run(fx, tmp_path / "official")
    convert(ckpt, tmp_path / "run", config=config)
    model = get_method("crossdiff").hook("load")(tmp_path / "run", device="cpu")  # what eval.py loads
    model.model.diff3d = OfficialDiffusion("cosine", 3)  # the official chain has 1000 steps; 3 keep the test short
    with pytest.raises(InputError, match="text_encoder_path"):
        model.t2m_generator(None)
    clip = write_tiny_clip(tmp_path / "clip")
    gen = model.t2m_generator(clip)
    assert model.text_encoder.max_length == 22  # official context: sos + 20 + eos
    caps = ["a person walks", "man runs"]
    out = gen.generate(caps, torch.tensor([40, 60]), 2, generator=torch.Generator().manual_seed(1))
    ref = model.generate(texts=caps, num_samples=2, generator=torch.Generator().manual_seed(1))
    other = gen.generate(caps, None, 2, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(out, other)
    assert out.shape == (2, 2, model.model.net.num_frames, 263)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.slow
def test_generate_app_on_official_crossdiff(shared_dir, tmp_path, monkeypatch):
    """``generate`` on a converted official CrossDiff: features, and joints with --data-root's Mean/Std."""
    import numpy as np
    from _t2m_official_files import write_humanml3d

    import skeleton_diffusion.methods.crossdiff.run as cd_run
    from skeleton_diffusion.apps.generate import generate

    monkeypatch.setattr(cd_run, "OFFICIAL_STEPS", 3)  # keep the 1000-step chain out of the test
    fx = load_fixture(shared_dir)
    ckpt, config = write_official_run(fx, tmp_path / "official")
    convert(ckpt, tmp_path / "run", config=config)
    write_humanml3d(tmp_path / "HumanML3D", n=2)
    clip = write_tiny_clip(tmp_path / "clip")
    res = generate(tmp_path / "run", ["a person walks"], out=tmp_path / "g.npz", device="cpu",
                   data_root=tmp_path / "HumanML3D", text_encoder_path=clip)  # fmt: skip
    d = np.load(res["output"])
    assert d["motion"].shape[-2:] == (22, 3) and d["features"].shape[-1] == 263

