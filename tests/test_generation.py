"""The shipped pipeline: seeded determinism and a quality check an untrained model fails."""

import numpy as np
import pytest
import torch
from data_helpers import shape_accuracy
from diffusers import UNet2DConditionModel

from backends import SamplerSettings, generate, initial_latents
from shapesworld.captions import prompt
from shapesworld.world import SHAPES

FAST = SamplerSettings(steps=20, guidance=5.0)


def test_same_seed_gives_identical_images(embedded_pipe):
    a = generate(embedded_pipe, ["a red star", "a blue moon"], [3, 4], FAST)
    b = generate(embedded_pipe, ["a red star", "a blue moon"], [3, 4], FAST)
    assert a.dtype == np.uint8 and a.shape == (2, 32, 32, 3)
    assert np.array_equal(a, b)
    c = generate(embedded_pipe, ["a red star", "a blue moon"], [5, 6], FAST)
    assert not np.array_equal(a, c)


def test_generating_from_embeddings_matches_generating_from_their_text(embedded_pipe):
    from backends.generate import generate_from_embeddings
    from backends.prompts import embed_prompts

    prompts, seeds = ["a red star", "a blue moon", "a green heart"], [3, 4, 5]
    emb, null = {"emb": embed_prompts(embedded_pipe, prompts)}, {"emb": embed_prompts(embedded_pipe, [""])}
    settings = SamplerSettings(steps=8, guidance=5.0)
    images = generate_from_embeddings(embedded_pipe, emb, null, seeds, settings, batch_size=2)  # two batches
    assert np.array_equal(images, generate(embedded_pipe, prompts, seeds, settings))
    swapped = generate_from_embeddings(embedded_pipe, {"emb": emb["emb"][[1, 0, 2]]}, null, seeds, settings)
    assert not np.array_equal(swapped[:2], images[:2]) and np.array_equal(swapped[2], images[2])
    import pytest

    with pytest.raises(ValueError, match="one seed per prompt"):
        generate_from_embeddings(embedded_pipe, emb, null, seeds[:2], settings)


def test_initial_noise_depends_only_on_seed(embedded_pipe):
    z1 = initial_latents(embedded_pipe, [1, 2], 32, 32)
    z2 = initial_latents(embedded_pipe, [2, 1], 32, 32)
    assert z1.shape == (2, 4, 16, 16)
    assert torch.equal(z1[0], z2[1]) and torch.equal(z1[1], z2[0])

@pytest.mark.slow

def test_trained_model_draws_the_named_shape(embedded_pipe, classifier):
    prompts = [prompt(s, c) for s in SHAPES for c in ("red", "blue")]
    images = generate(embedded_pipe, prompts, list(range(len(prompts))), FAST)
    acc = shape_accuracy(classifier, images, [s for s in SHAPES for _ in range(2)])
    assert acc >= 0.8, f"shape accuracy {acc:.2f} on generated images"


def test_quality_check_fails_on_an_untrained_unet(embedded_pipe, classifier):
    # The same check on a randomly initialised UNet must fail: the test above is not vacuous.
    from diffusers import StableDiffusionPipeline

    torch.manual_seed(0)
    untrained = StableDiffusionPipeline(**{**embedded_pipe.components, "unet": UNet2DConditionModel(**embedded_pipe.unet.config)})
    untrained.set_progress_bar_config(disable=True)
    prompts = [prompt(s, "red") for s in SHAPES]
    images = generate(untrained, prompts, list(range(len(prompts))), SamplerSettings(steps=5, guidance=5.0))
    assert shape_accuracy(classifier, images, list(SHAPES)) < 0.5


def test_bad_sampler_settings_are_rejected(embedded_pipe):
    import pytest

    with pytest.raises(ValueError, match="steps"):
        generate(embedded_pipe, ["a red star"], [0], SamplerSettings(steps=0))
    with pytest.raises(ValueError, match="one seed per prompt"):
        generate(embedded_pipe, ["a red star", "a star"], [0], FAST)


def test_large_images_decode_one_latent_at_a_time(embedded_pipe):
    """VAE slicing from 256 px on (a batch of 64 SD latents would need ~50 GiB at once), never on the
    32-px embedded model; slicing decodes the same images."""
    import copy

    from diffusers import StableDiffusionPipeline

    from backends.loader import slice_large_decodes

    slice_large_decodes(embedded_pipe)
    assert not embedded_pipe.vae.use_slicing
    unet = UNet2DConditionModel.from_config({**embedded_pipe.unet.config, "sample_size": 128})  # 256 px
    big = StableDiffusionPipeline(**{**embedded_pipe.components, "unet": unet, "vae": copy.deepcopy(embedded_pipe.vae)})
    z = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = big.vae.decode(z).sample
        slice_large_decodes(big)
        assert big.vae.use_slicing
        sliced = big.vae.decode(z).sample
    torch.testing.assert_close(sliced, whole, rtol=1e-4, atol=1e-5)
