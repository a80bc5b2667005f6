"""The flow-matching path on a tiny random FLUX pipeline built from configs (no download)."""

import numpy as np
import torch

from backends import SamplerSettings, generate
from backends.flux import flux_latents, is_flux, tiny_flux_pipeline


def test_tiny_flux_samples_deterministically_from_seeded_noise():
    pipe = tiny_flux_pipeline()
    assert is_flux(pipe) and type(pipe.transformer).__name__ == "FluxTransformer2DModel"
    settings = SamplerSettings(steps=4, guidance=0.0)
    a = generate(pipe, ["a red star", "a blue moon"], [0, 1], settings)
    b = generate(pipe, ["a red star", "a blue moon"], [0, 1], settings)
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)  # eval mode: no dropout anywhere
    c = generate(pipe, ["a red star"], [1], settings)
    assert not np.array_equal(a[:1], c)  # another seed, other noise


def test_flux_latents_are_the_packed_per_seed_noise():
    pipe = tiny_flux_pipeline()
    z = flux_latents(pipe, [3, 4], 32, 32)
    channels = pipe.transformer.config.in_channels // 4
    assert z.shape == (2, (32 // 4) ** 2, 4 * channels)  # 8x8 latents packed 2x2
    alone = flux_latents(pipe, [4], 32, 32)
    assert torch.equal(z[1:], alone)  # a seed's noise does not depend on its batch
