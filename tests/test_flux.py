"""The flow-matching path on a tiny random FLUX pipeline built from configs (no download)."""

import numpy as np
import pytest
import torch

from backends import SamplerSettings, generate
from backends.families import family_of
from backends.flux import FLUX, tiny_flux_pipeline


def test_tiny_flux_samples_deterministically_from_seeded_noise():
    pipe = tiny_flux_pipeline()
    assert family_of(pipe) is FLUX and type(pipe.transformer).__name__ == "FluxTransformer2DModel"
    settings = SamplerSettings(steps=4, guidance=0.0)
    a = generate(pipe, ["a red star", "a blue moon"], [0, 1], settings)
    b = generate(pipe, ["a red star", "a blue moon"], [0, 1], settings)
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)  # eval mode: no dropout anywhere
    c = generate(pipe, ["a red star"], [1], settings)
    assert not np.array_equal(a[:1], c)  # another seed, other noise


def test_flux_initial_latents_are_the_packed_per_seed_noise():
    pipe = tiny_flux_pipeline()
    z = FLUX.initial_latents(pipe, [3, 4], 32, 32)
    channels = pipe.transformer.config.in_channels // 4
    assert z.shape == (2, (32 // 4) ** 2, 4 * channels)  # 8x8 latents packed 2x2
    alone = FLUX.initial_latents(pipe, [4], 32, 32)
    assert torch.equal(z[1:], alone)  # a seed's noise does not depend on its batch


# ------------------------------------------------------------------ MCE on FLUX (flow matching)

def test_flux_sampler_matches_the_pipeline_and_differentiates_through_every_step():
    """The few-step Euler sampler MCE trains through reproduces FluxPipeline's own latents, and the
    loss gradient reaches mask logits in both the double and the single block."""
    from backends.flux import FluxSampler
    from erasure.masks import Masker, mask_sites

    pipe = tiny_flux_pipeline()
    sampler = FluxSampler(pipe, steps=3, guidance=0.0)
    cond = sampler.embed(["a red star", "a blue moon"])
    z = FLUX.initial_latents(pipe, [0, 1], 32, 32)
    ours = sampler.sample(cond, z.clone())
    theirs = pipe(prompt=["a red star", "a blue moon"], latents=z.clone(), num_inference_steps=3, guidance_scale=0.0,
                  height=32, width=32, output_type="latent", **FLUX.text_inputs(pipe)).images
    assert FLUX.text_inputs(pipe) == {"max_sequence_length": 256}  # schnell-like: no guidance embedding
    assert torch.allclose(ours, theirs, atol=1e-5)

    masker = Masker(pipe.transformer, mask_sites(pipe.transformer), 1.0, "transformer")
    paths = [s.path for s in masker.sites]
    assert any(p.startswith("transformer_blocks.") for p in paths)
    assert any(p.startswith("single_transformer_blocks.") and p.endswith("proj_mlp") for p in paths)
    with pytest.raises(ValueError, match="FluxTransformer2DModel has no resnet layers to mask"):
        mask_sites(pipe.transformer, ("resnet",))
    pipe.transformer.requires_grad_(False)
    sampler.sample(cond, z, grad=True).square().mean().backward()
    assert all(logit.grad is not None and logit.grad.abs().sum() > 0 for logit in masker.logits)
    assert all(p.grad is None for p in pipe.transformer.parameters())  # weights stay frozen


def test_mce_trains_on_flux_and_its_masks_reapply(tmp_path):
    """One MCE run on the tiny random FLUX model: binary masks on the transformer only, the text
    encoders and VAE untouched, and the masks applied to a fresh pipeline give the trained images."""
    from backends import TINY_FLUX, load_pipeline
    from erasure import apply, erase

    pipe = load_pipeline(TINY_FLUX)
    before = {k: v.clone() for k, v in pipe.text_encoder_2.state_dict().items()}
    # logits start near 0 so one Adam step (lr 0.5) switches some neurons off
    run = erase(TINY_FLUX, "mce", ["star"], "fast", tmp_path / "mce", pipe=pipe, steps=2, batch=2, ddim_steps=2,
                init_logit=0.2, erase_templates=["a {concept}", "a red {concept}"],
                keep_prompts=["a blue moon", "a green heart"], checkpoint_every=0, snapshot_every=1)
    masks = run.result()
    assert masks and all(k.startswith("mask.") and k.split(".")[2] == "transformer" for k in masks)
    assert all(v.dtype == torch.bool for v in masks.values()) and not all(v.all() for v in masks.values())
    assert all(torch.equal(v, before[k]) for k, v in pipe.text_encoder_2.state_dict().items())
    snaps = [e for e in run.events() if e["kind"] == "snapshot"]
    assert snaps and (run.path / snaps[-1]["images"]["ce"]).is_file()

    settings = SamplerSettings(steps=2, guidance=0.0)
    trained = generate(pipe, ["a red star", "a blue moon"], [0, 1], settings)  # finish() baked the masks
    fresh = apply(load_pipeline(TINY_FLUX), run)
    assert np.abs(generate(fresh, ["a red star", "a blue moon"], [0, 1], settings).astype(int) - trained).max() <= 1
    base = generate(load_pipeline(TINY_FLUX), ["a red star", "a blue moon"], [0, 1], settings)
    assert not np.array_equal(base, trained)


def test_unet_methods_refuse_flux_with_the_methods_that_apply():
    from backends import TINY_FLUX
    from erasure import resolve_config

    for method in ("esd", "ap", "uce", "ca"):
        with pytest.raises(ValueError, match="family flux.*on this model use: mce"):
            resolve_config(method, TINY_FLUX, targets=["star"])
    with pytest.raises(ValueError, match="family flux.*on this model use: mce"):
        resolve_config("esd", "flux-schnell", targets=["nudity"])  # known as FLUX without a download


def test_erase_loads_records_and_resumes_in_the_dtype_asked_for(tmp_path, monkeypatch):
    import backends
    from backends import TINY_FLUX
    from erasure import erase, resume
    from erasure.runs import RunFolder

    loaded, load_pipeline = [], backends.load_pipeline

    def load_and_note(model, device="cpu", dtype=torch.float32, offload="auto"):
        pipe = load_pipeline(model, device=device, dtype=dtype, offload=offload)
        loaded.append(next(pipe.transformer.parameters()).dtype)
        return pipe

    monkeypatch.setattr(backends, "load_pipeline", load_and_note)
    small = dict(steps=2, batch=2, ddim_steps=2, erase_templates=["a {concept}"], keep_prompts=["a blue moon"],
                 checkpoint_every=1, snapshot_every=0)
    with pytest.raises(ValueError, match="unknown dtype 'float64'; valid: float32, float16, bfloat16"):
        erase(TINY_FLUX, "mce", ["star"], "fast", tmp_path / "bad", dtype="float64", **small)
    assert not (tmp_path / "bad").exists() and not loaded  # refused before loading or writing anything

    def die_at_first_step(event):
        if event.kind == "step":
            raise KeyboardInterrupt  # the worker dies mid-run

    with pytest.raises(KeyboardInterrupt):
        erase(TINY_FLUX, "mce", ["star"], "fast", tmp_path / "bf16", dtype="bfloat16", callback=die_at_first_step,
              **small)
    assert RunFolder.open(tmp_path / "bf16").record["dtype"] == "bfloat16"
    run = resume(tmp_path / "bf16")
    assert loaded == [torch.bfloat16, torch.bfloat16]  # resume loaded the recorded dtype, not float32
    assert run.status()["state"] == "done" and all(v.dtype == torch.bool for v in run.result().values())


def test_flux_predict_is_the_velocity_its_pipeline_computes():
    """The family's one-call predict (the spectrum's proxy, and each step of the sampler MCE trains
    through) gives the transformer the pipeline's own text and image ids, timestep scale and conditioning."""
    from backends import TINY_FLUX, load_pipeline
    from backends.families import family_of

    pipe = load_pipeline(TINY_FLUX)
    family = family_of(pipe)
    sampler = family.few_step_sampler(pipe, 2, 0.0)
    prompts = ["a red star", "a blue moon"]
    cond = sampler.embed(prompts)
    _, _, txt_ids = pipe.encode_prompt(prompts, prompt_2=None, **family.text_inputs(pipe))
    side = family.latent_size(pipe) // 2
    img_ids = pipe._prepare_latent_image_ids(1, side, side, pipe.device, pipe.transformer.dtype)
    z = family.noise(pipe, 2, torch.Generator().manual_seed(0))
    t = sampler.timesteps[:1].expand(2)
    net = family.denoiser(pipe)
    with torch.no_grad():
        direct = net(hidden_states=z, timestep=t / 1000, guidance=None, pooled_projections=cond["pooled"],
                     encoder_hidden_states=cond["emb"], txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
        torch.testing.assert_close(family.predict(net, z, t, cond), direct)


def test_the_spectrum_runs_on_flux_with_delta_and_proxy(tmp_path):
    """delta from the same seeds and the proxy on the transformer: a run that masked nothing (an erased
    model equal to the base) gives exactly 0 for both; a run that masked neurons gives a positive proxy."""
    from backends import TINY_FLUX
    from erasure import erase
    from sensitivity import SpectrumConfig, compute_spectrum

    words = tmp_path / "words.txt"
    words.write_text("star\nmoon\nheart\n")
    config = SpectrumConfig(targets=["star"], vocab=str(words), k=2, steps=2, guidance=0.0, scorer="embedded")
    small = dict(steps=1, batch=2, ddim_steps=2, erase_templates=["a {concept}"], keep_prompts=["a blue moon"],
                 checkpoint_every=0)
    for init_logit, name in ((8.0, "nothing"), (0.2, "some")):
        run = erase(TINY_FLUX, "mce", ["star"], "fast", tmp_path / name, init_logit=init_logit, **small)
        masked = sum(int((~m).sum()) for m in run.result().values())
        df = compute_spectrum(TINY_FLUX, run.path, config, cache_root=tmp_path / "cache")
        assert df["delta"].notna().all() and df["proxy"].notna().all() and len(df) == 5  # 3 words + 2 neutral
        if name == "nothing":
            assert masked == 0 and (df["delta"] == 0).all() and (df["proxy"] == 0).all()
        else:
            assert masked > 0 and (df["proxy"] > 0).all()
            assert (df["delta"] - (df["score_before"] - df["score_after"])).abs().max() < 1e-4


def test_flux_training_checkpoints_every_block_and_gets_the_same_gradient():
    """MCE's backward through the sampler recomputes each block from its own checkpoint (blocks run twice:
    forward and recompute) and yields the gradient of the uncheckpointed graph."""
    from backends.flux import FluxSampler
    from erasure.masks import Masker, mask_sites

    pipe = tiny_flux_pipeline()
    pipe.transformer.requires_grad_(False)
    sampler = FluxSampler(pipe, steps=2, guidance=0.0)
    cond = sampler.embed(["a red star"])
    z = FLUX.initial_latents(pipe, [0], 32, 32)
    masker = Masker(pipe.transformer, mask_sites(pipe.transformer), 1.0, "transformer")
    calls = []
    block = pipe.transformer.transformer_blocks[0]
    handle = block.register_forward_pre_hook(lambda *_: calls.append(1))  # recompute may stop before the end
    grads = []
    for use_checkpoint in (False, True):
        calls.clear()
        sampler.sample(cond, z.clone(), grad=True, use_checkpoint=use_checkpoint).square().mean().backward()
        grads.append([logit.grad.clone() for logit in masker.logits])
        for logit in masker.logits:
            logit.grad = None
        assert len(calls) == (4 if use_checkpoint else 2)  # 2 sampler steps; recomputed once each when checkpointed
    handle.remove()
    assert not pipe.transformer.gradient_checkpointing  # switched off again after the call
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain)


@pytest.mark.parametrize("model", ["embedded", "flux-tiny-random"])
def test_mce_micro_batches_accumulate_the_whole_batch_gradient(model):
    """MCE's batch as gradient accumulation: one step with micro_batch=1 (four forward/backward passes of
    one prompt) gives the loss and the mask-logit gradient of one pass over all four prompts, on the UNet
    and on FLUX. Negative control: one chunk's gradient alone is not the step's."""
    from backends import load_pipeline
    from erasure.methods.mce import MCE
    from erasure.trainer import Context, resolve_config

    pipe = load_pipeline(model)
    grads, losses = {}, {}
    for micro in (0, 1):
        config = resolve_config("mce", model, "fast", targets=["star"], batch=4, ddim_steps=2, micro_batch=micro)
        method = MCE(Context(pipe, config, trains_weights=False))
        loss, info = method.loss(0)
        loss.backward()
        grads[micro] = torch.cat([p.grad.flatten() for p in method.masker.logits])
        losses[micro] = (loss.item(), info["losses"]["erase"], info["losses"]["keep"])
        method.masker.remove()
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    # the last chunk alone (what a loop that dropped earlier chunks' gradients would step on) differs
    config = resolve_config("mce", model, "fast", targets=["star"], batch=4, ddim_steps=2, micro_batch=1)
    method = MCE(Context(pipe, config, trains_weights=False))
    ctx = method.ctx
    z = method.sampler.noise(4, ctx.gen)
    prompts = method._cond([method.pairs[0][0]] * 2 + method.keep[:2])
    targets = method._cond([method.pairs[0][1]] * 2 + method.keep[:2])
    part, _ = method._chunk_loss(prompts, targets, z, slice(3, 4), torch.tensor([0.05]))
    last = torch.autograd.grad(part, list(method.masker.logits))
    assert not torch.allclose(torch.cat([g.flatten() for g in last]), grads[0], rtol=1e-2)
    method.masker.remove()


def test_mce_micro_batch_is_checked():
    from erasure.trainer import resolve_config

    with pytest.raises(ValueError, match="micro_batch must be 0 .* 1 .. batch \\(4\\)"):
        resolve_config("mce", "embedded", "fast", targets=["star"], batch=4, micro_batch=5)


def test_a_flux_spectrum_without_a_run_erases_with_mce_first(tmp_path, monkeypatch):
    """ESD is not defined on FLUX: the quick erasure before a spectrum is MCE's there (ESD's elsewhere), its
    progress lines name it, and the spectrum that follows reads its masks."""
    import json

    import sensitivity.request as req
    import sensitivity.spectrum as spectrum
    from backends import TINY_FLUX
    from sensitivity import SpectrumRequest, run

    assert spectrum.quick_method(TINY_FLUX) == "mce" and spectrum.quick_method("embedded") == "esd"
    quick = spectrum.quick_request
    small = dict(steps=2, batch=2, ddim_steps=2, erase_templates=["a {concept}"], keep_prompts=["a blue moon"],
                 init_logit=0.2)
    monkeypatch.setattr(spectrum, "quick_request", lambda *a, **kw: quick(*a, **kw, **small))
    words = tmp_path / "words.txt"
    words.write_text("star\nmoon\n")
    lines = []
    request = SpectrumRequest(TINY_FLUX, ("star",), {"vocab": str(words), "proxy_only": True})
    df = run(request, tmp_path / "out", progress=lambda done, total, message: lines.append(message))
    erasure = json.loads((tmp_path / "out" / "erasure" / "config.json").read_text())
    assert erasure["method"] == "mce" and lines[0] == req.QUICK_STEP.format("MCE", 0, 2)
    assert all(req.is_quick_step(m) for m in lines[:3]) and not req.is_quick_step("star")
    assert df["proxy"].notna().all() and (df["proxy"] > 0).any()  # masked neurons moved the transformer
