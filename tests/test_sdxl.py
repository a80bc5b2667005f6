"""SDXL as a model family (docs/design.md §1): a tiny random StableDiffusionXLPipeline built from
configs samples, and ESD and UCE erase on it through the same code as on SD; methods whose search
space is one text encoder's (AP) refuse it by name."""

import numpy as np
import pytest
import torch

from backends import TINY_SDXL, SamplerSettings, family_of, generate, load_pipeline, model_family
from backends.sdxl import SDXL

SETTINGS = SamplerSettings(steps=3, guidance=5.0)


@pytest.fixture(scope="module")
def sdxl_pipe():
    return load_pipeline(TINY_SDXL)


def test_tiny_sdxl_is_the_sdxl_family_and_samples_from_seeded_noise(sdxl_pipe):
    assert family_of(sdxl_pipe) is SDXL and model_family(TINY_SDXL) is SDXL
    assert model_family("sdxl-1.0") is SDXL  # known as SDXL without a download
    a = generate(sdxl_pipe, ["a red star", "a blue moon"], [0, 1], SETTINGS)
    assert a.shape == (2, 32, 32, 3) and np.array_equal(a, generate(sdxl_pipe, ["a red star", "a blue moon"], [0, 1],
                                                                    SETTINGS))
    assert not np.array_equal(a[:1], generate(sdxl_pipe, ["a red star"], [1], SETTINGS))


def test_sdxl_conditioning_carries_both_encoders_the_pooled_embedding_and_size_ids(sdxl_pipe):
    cond = SDXL.encode(sdxl_pipe, ["a star", "a moon"])
    width = sdxl_pipe.text_encoder.config.hidden_size + sdxl_pipe.text_encoder_2.config.hidden_size
    assert cond["emb"].shape[::2] == (2, width) and cond["pooled"].shape == (2, 16)
    assert cond["time_ids"].tolist() == [[32, 32, 0, 0, 32, 32]] * 2  # native size, no crop
    z = SDXL.noise(sdxl_pipe, 2, torch.Generator().manual_seed(0))
    t = torch.tensor(500)
    both = SDXL.predict(sdxl_pipe.unet, z, t, cond)
    one = SDXL.predict(sdxl_pipe.unet, z[:1], t, {k: v[:1] for k, v in cond.items()})
    torch.testing.assert_close(both[:1], one, rtol=1e-4, atol=1e-5)
    pooled_moved = SDXL.predict(sdxl_pipe.unet, z, t, {**cond, "pooled": cond["pooled"] + 1})
    assert not torch.allclose(pooled_moved, both)  # the pooled embedding really conditions the UNet


def test_esd_erases_on_sdxl_and_its_tensors_reapply(tmp_path, sdxl_pipe):
    from erasure import apply, erase

    pipe = load_pipeline(TINY_SDXL)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    run = erase(TINY_SDXL, "esd", ["star"], "object,fast", tmp_path / "esd", pipe=pipe, steps=2, ddim_steps=3, lr=1e-3,
                checkpoint_every=0, snapshot_every=1)
    result = run.result()
    assert result and all(k.startswith("unet.") and ".attn2." in k for k in result)
    changed = {k for k, v in pipe.unet.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed == {k.removeprefix("unet.") for k in result}  # exactly the cross-attention tensors
    snaps = [e for e in run.events() if e["kind"] == "snapshot"]
    assert (run.path / snaps[-1]["images"]["ce"]).is_file()  # sampled from the SDXL conditioning
    erased = generate(pipe, ["a star"], [0], SETTINGS)
    assert np.array_equal(generate(apply(load_pipeline(TINY_SDXL), run), ["a star"], [0], SETTINGS), erased)
    assert not np.array_equal(generate(sdxl_pipe, ["a star"], [0], SETTINGS), erased)


def test_uce_edits_only_key_value_projections_on_sdxl(tmp_path):
    from erasure import erase
    from erasure.methods.uce import token_contexts

    pipe = load_pipeline(TINY_SDXL)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    c_e, g = token_contexts(SDXL, pipe, "a star", "")
    run = erase(TINY_SDXL, "uce", ["star"], "object,reference", tmp_path / "uce", pipe=pipe, checkpoint_every=0)
    changed = {k for k, v in pipe.unet.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".attn2.to_k." in k or ".attn2.to_v." in k for k in changed)
    assert len(changed) == len(run.result())
    # each edited key projection maps the star's tokens nearer to where it maps the guide's (UCE's aim)
    for name in [k for k in changed if ".to_k." in k]:
        old, new = before[name], pipe.unet.state_dict()[name]
        assert (new @ c_e.T - old @ g.T).norm() < (old @ c_e.T - old @ g.T).norm()


def test_ap_refuses_sdxl_and_names_the_methods_that_apply():
    from erasure import resolve_config

    with pytest.raises(ValueError, match="family sdxl; ap supports sd\\).*use: esd, uce, ca, mce"):
        resolve_config("ap", TINY_SDXL, targets=["star"])
