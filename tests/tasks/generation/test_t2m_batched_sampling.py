"""Batched evaluation sampling: per-window noise, one-forward guidance, captions encoded once."""

from __future__ import annotations

import torch

from skeleton_diffusion.tasks.generation.batched_sampling import (
    cosine_betas,
    ddpm_sample,
    encode_once,
    guided_x0,
    window_generators,
    window_noise,
)


def _denoise(x, t, cond):
    return torch.tanh(x * 0.5 + cond[:, None, :1] + t[:, None, None].float() * 0.01)


def test_guidance_in_one_forward_equals_two_forwards():
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(5, 7, 3, generator=g), torch.randn(5, 4, generator=g)
    t, null = torch.full((5,), 3), torch.zeros(1, 4)
    c, u = _denoise(x, t, cond), _denoise(x, t, null.expand(5, -1))
    torch.testing.assert_close(guided_x0(_denoise, x, t, cond, null, 2.5), u + 2.5 * (c - u))
    torch.testing.assert_close(guided_x0(_denoise, x, t, cond, null, 1.0), c)


def test_per_window_noise_does_not_depend_on_batching():
    betas = cosine_betas(6)
    cond = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    null = torch.zeros(1, 4)

    def run(ids):
        gens = window_generators(7, ids)
        c = cond[ids]
        return ddpm_sample(lambda x, t: guided_x0(_denoise, x, t, c, null, 2.0), (len(ids), 5, 3), betas,
                           lambda: window_noise(gens, (5, 3)))

    whole = run(list(range(6)))
    parts = torch.cat([run([0, 1, 2, 3]), run([4, 5])])
    torch.testing.assert_close(whole, parts)
    torch.testing.assert_close(run([5, 2]), whole[[5, 2]])
    assert not torch.allclose(window_noise(window_generators(7, [0], 1), (5,)),
                              window_noise(window_generators(7, [0], 0), (5,)))  # repeats differ


def test_encode_once_reuses_captions():
    calls = []

    def enc(caps):
        calls.append(list(caps))
        return torch.tensor([[float(len(c))] for c in caps])

    out = encode_once(enc, ["ab", "c", "ab", "c", "d"])
    assert calls == [["ab", "c", "d"]]
    assert out.squeeze(1).tolist() == [2.0, 1.0, 2.0, 1.0, 1.0]
