"""UCE and Concept Ablation: registry, config validation, the tensors they change, the closed form."""

import numpy as np
import pytest
import torch

from backends.sd import SD
from erasure import apply, erase, list_methods, resolve_config
from erasure.methods.uce import token_contexts, uce_solve


def test_registry_offers_every_method():
    assert {"esd", "ap", "uce", "ca"} <= set(list_methods())


@pytest.mark.parametrize("method, overrides, message", [
    ("uce", {"param_group": "xattn"}, "param_group must be 'kv'"),
    ("uce", {"steps": 5}, "steps must be 1"),
    ("uce", {"lam": 0.0}, "lam > 0"),
    ("uce", {"preserve": ["star"]}, "both erased and preserved"),
    ("uce", {"preserve": [""]}, "non-empty"),
    ("ca", {"anchor": "star"}, "anchor must differ"),
    ("ca", {"n_anchor_images": 0}, "n_anchor_images"),
    ("ca", {"lr": -1.0}, "lr must be > 0"),
])
def test_bad_settings_are_rejected(method, overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(method, "embedded", "object", targets=["star"], **overrides)


def test_uce_closed_form_maps_the_target_onto_its_guide_and_keeps_the_preserved():
    torch.manual_seed(0)
    W = torch.randn(6, 10)
    c_e, g, c_p = torch.randn(1, 10), torch.randn(1, 10), torch.randn(2, 10)
    W2 = uce_solve(W, c_e, g, c_p, lam=1e-6, s_e=1.0, s_p=1.0)
    assert torch.allclose(W2 @ c_e[0], W @ g[0], atol=1e-3)  # the erased concept projects like its guide
    assert torch.allclose(W2 @ c_p.T, W @ c_p.T, atol=1e-3)  # preserved concepts project as before
    assert torch.allclose(uce_solve(W, c_e, g, c_p, lam=1e6, s_e=1.0, s_p=1.0), W, atol=1e-4)  # lam dominates


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_uce_edits_only_cross_attention_keys_and_values(embedded_pipe, tmp_path):
    import copy

    from backends import load_pipeline

    pipe = load_pipeline("embedded")
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    run = erase("embedded", "uce", ["star"], "object", tmp_path / "uce", pipe=pipe, preserve=["heart", "moon"])
    after = pipe.unet.state_dict()
    changed = _changed(before, after)
    assert changed and all(".attn2.to_k." in k or ".attn2.to_v." in k for k in changed)
    assert set(run.result()) == {f"unet.{k}" for k in changed}
    # the saved result reproduces the edit on a fresh pipeline; the target now projects like ""
    fresh = apply(copy.deepcopy(embedded_pipe), run)
    assert not _changed(after, fresh.unet.state_dict())
    c_star, c_null = token_contexts(SD, fresh, "a star", "")
    c_heart, _ = token_contexts(SD, fresh, "a heart", "a heart")
    k = next(m for n, m in fresh.unet.named_modules() if n.endswith("attn2.to_k"))
    k0 = next(m for n, m in embedded_pipe.unet.named_modules() if n.endswith("attn2.to_k"))
    with torch.no_grad():
        to_guide = (k(c_star) - k0(c_null)).norm() / k0(c_star).norm()
        heart_kept = (k(c_heart) - k0(c_heart)).norm() / k0(c_heart).norm()
    assert to_guide < 0.5 and heart_kept < 0.2, (to_guide, heart_kept)


def test_ca_trains_only_kv_and_resumes_exactly(tmp_path):
    from backends import load_pipeline
    from erasure import Cancelled, CancelToken, resume

    tiny = dict(steps=4, n_anchor_images=4, batch=2, ddim_steps=4, checkpoint_every=2)
    pipe = load_pipeline("embedded")
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    full = erase("embedded", "ca", ["star"], "object,fast", tmp_path / "full", pipe=pipe, **tiny)
    changed = _changed(before, pipe.unet.state_dict())
    assert changed and all(".attn2.to_k." in k or ".attn2.to_v." in k for k in changed)
    token = CancelToken()

    def cancel_at_3(event):
        if event.kind == "step" and event.step == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        erase("embedded", "ca", ["star"], "object,fast", tmp_path / "cut", callback=cancel_at_3, cancel=token, **tiny)
    resumed = resume(tmp_path / "cut")
    a, b = full.result(), resumed.result()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# ---------------------------------------------------------------------------- MCE
@pytest.mark.parametrize("overrides, message", [
    ({"batch": 1}, "batch must be >= 2"),
    ({"erase_templates": ["a photo"]}, "containing '{concept}'"),
    ({"beta": -1.0}, "beta must be >= 0"),
    ({"relaxation": "gumbel"}, "unknown relaxation 'gumbel'; valid: sigmoid, straight_through, hard_concrete"),
    ({"sites": ["attention"]}, "sites must be a non-empty list of ffn, norm, resnet"),
    ({"sites": []}, "sites must be a non-empty list"),
])
def test_mce_rejects_bad_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("mce", "embedded", "object,fast", targets=["star"], **overrides)


def test_straight_through_masks_forward_the_binary_mask_and_backward_the_sigmoid():
    from erasure.masks import Masker, Site

    model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    masker = Masker(model, [Site("0", "ffn", "output", 4)], 1.0, relaxation="straight_through")
    with torch.no_grad():
        masker.logits[0].copy_(torch.tensor([2.0, -1.0, 0.5, -3.0]))
    x = torch.randn(5, 3)
    out = model(x)
    masker.mode = "off"
    plain = model(x)
    masker.mode = "soft"
    assert torch.allclose(out, plain * torch.tensor([1.0, 0.0, 1.0, 0.0]))  # the saved model, exactly
    out.sum().backward()
    logit = masker.logits[0].detach()
    expected = plain.sum(0).detach() * torch.sigmoid(logit) * (1 - torch.sigmoid(logit))
    assert torch.allclose(masker.logits[0].grad, expected, atol=1e-6)  # d/dlogit of sigmoid, also for masked ones


def test_hard_concrete_gates_are_clipped_stretched_noisy_sigmoids_fixed_per_step():
    from erasure.masks import HC_GAMMA, HC_TEMPERATURE, HC_ZETA, Masker, Site

    model = torch.nn.Sequential(torch.nn.Linear(3, 6))
    masker = Masker(model, [Site("0", "ffn", "output", 6)], 0.0, relaxation="hard_concrete")
    with torch.no_grad():
        masker.logits[0].copy_(torch.tensor([8.0, -8.0, 0.0, 0.5, -0.5, 1.0]))
    x = torch.randn(5, 3)
    with pytest.raises(RuntimeError, match="resample"):
        model(x)
    gen = torch.Generator().manual_seed(0)
    masker.resample(gen)
    first = masker.mask(0).detach()
    assert torch.equal(first, masker.mask(0).detach())  # the same gates until the next resample
    assert first[0] == 1.0 and first[1] == 0.0  # confident logits clip to exactly 1 and 0
    u = torch.rand(6, generator=torch.Generator().manual_seed(0)).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((masker.logits[0].detach() + torch.log(u / (1 - u))) / HC_TEMPERATURE)
    assert torch.allclose(first, (s * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0, 1), atol=1e-6)
    masker.mode = "off"
    plain = model(x)
    masker.mode = "soft"
    out = model(x)
    assert torch.allclose(out, plain * first)
    out.sum().backward()
    grad = masker.logits[0].grad
    assert grad[0] == 0 and grad[1] == 0  # clipped gates pass no gradient
    inside = (first > 0) & (first < 1)
    assert inside.any() and (grad[inside] != 0).all()
    masker.resample(gen)
    assert not torch.equal(first, masker.mask(0).detach())  # a new step draws new noise
    masker.mode = "hard"
    assert torch.equal(masker.mask(0), torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0]))  # the saved mask: logit > 0


def test_mce_lr_is_not_scaled_by_the_model_profile():
    assert resolve_config("mce", "embedded", "object,fast", targets=["star"]).lr == 0.5
    assert resolve_config("esd", "embedded", "object", targets=["star"]).lr == pytest.approx(1e-3)


def test_mce_sites_are_the_seeds_except_on_the_embedded_unet():
    embedded = resolve_config("mce", "embedded", "object,fast", targets=["star"])
    assert embedded.sites == ["ffn", "norm", "resnet"] and embedded.beta == 0.1
    # the model's profile wins over a preset, even `reference` (docs/design.md §3.1); the user wins over both
    reference = resolve_config("mce", "embedded", "reference", targets=["star"])
    assert reference.sites == ["ffn", "norm", "resnet"] and reference.beta == 0.1 and reference.ddim_steps == 4
    seed = resolve_config("mce", "embedded", "reference", targets=["star"], sites=["ffn", "norm"], beta=0.01)
    assert seed.sites == ["ffn", "norm"] and seed.beta == 0.01
    assert resolve_config("mce", "sd-1.4", "reference", targets=["star"]).sites == ["ffn", "norm"]
    assert resolve_config("mce", "flux-schnell", "object", targets=["star"]).sites == ["ffn", "norm"]


def test_mask_sites_of_each_kind(embedded_pipe):
    from torch import nn

    from erasure.masks import mask_sites

    unet = embedded_pipe.unet
    resnet = mask_sites(unet, ("resnet",))
    groupnorms = [n for n, m in unet.named_modules() if isinstance(m, nn.GroupNorm) and ".resnets." in n]
    assert [s.path for s in resnet] == groupnorms and {s.kind for s in resnet} == {"resnet"}
    assert all(s.size == unet.get_submodule(s.path).num_channels for s in resnet)
    seeds = mask_sites(unet)
    assert {s.kind for s in seeds} == {"ffn", "norm"} and all("transformer_blocks" in s.path for s in seeds)
    with pytest.raises(ValueError, match="unknown or no mask site kinds"):
        mask_sites(unet, ("heads",))


def test_mce_result_is_binary_masks_and_weights_stay_frozen(tmp_path):
    from backends import load_pipeline
    from erasure.masks import masked_fraction

    pipe = load_pipeline("embedded")
    frozen = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    run = erase("embedded", "mce", ["star"], "object,fast", tmp_path / "mce", pipe=pipe, steps=3, batch=2,
                ddim_steps=2, checkpoint_every=0)
    masks = run.result()
    assert masks and all(k.startswith("mask.") and v.dtype == torch.bool for k, v in masks.items())
    kinds = {k.split(".")[1] for k in masks}
    assert kinds == {"input", "output"}  # FFN hidden neurons and norm outputs
    steps = [e for e in run.events() if e["kind"] == "step"]
    assert len(steps) == 3 and steps[-1]["message"].endswith("% of neurons masked")
    assert 0.0 <= masked_fraction(masks) < 0.5
    # the weights themselves never trained: any change is exactly a baked-in masked neuron
    for k, v in pipe.unet.state_dict().items():
        assert torch.equal(v, frozen[k]) or (v == 0).any(), k


def test_applying_mce_masks_reproduces_the_masked_model(embedded_pipe):
    import copy

    from backends import SamplerSettings, generate
    from erasure.masks import bake, parse_key
    from erasure.methods.mce import MCE
    from erasure.trainer import Context

    config = resolve_config("mce", "embedded", "object,fast", targets=["star"], steps=1)
    pipe = copy.deepcopy(embedded_pipe)
    method = MCE(Context(pipe, config))
    with torch.no_grad():  # a non-trivial mask: neurons off at one site of every kind
        for kind in ("ffn", "norm", "resnet"):
            i = next(i for i, s in enumerate(method.masker.sites) if s.kind == kind)
            method.masker.logits[i][::3] = -2.0
    method.masker.mode = "hard"
    settings = SamplerSettings(steps=8, guidance=5.0)
    hooked = generate(pipe, ["a red star", "a blue heart"], [0, 1], settings)
    masks = method.result()
    method.masker.remove()
    baked = copy.deepcopy(embedded_pipe)
    for key, keep in masks.items():
        where, _, path = parse_key(key)
        bake(baked.unet, where, path, keep)
    assert not all(m.all() for m in masks.values())
    again = generate(baked, ["a red star", "a blue heart"], [0, 1], settings)
    assert np.abs(hooked.astype(int) - again.astype(int)).max() <= 1  # uint8 images, float rounding only
    plain = generate(embedded_pipe, ["a red star", "a blue heart"], [0, 1], settings)
    assert np.abs(plain.astype(int) - again.astype(int)).max() > 10  # and the masks did change the model


def test_without_removes_the_concept_words():
    from erasure.methods.mce import without

    assert without("a red star", "star") == "a red"
    assert without("Van Gogh style landscape", "van gogh") == "style landscape"
    assert without("a starfish", "star") == "a starfish"


def test_mce_snapshots_show_the_binarised_masks(tmp_path):
    from PIL import Image

    from backends import SamplerSettings, generate, load_pipeline
    from erasure.masks import masked_fraction

    pipe = load_pipeline("embedded")
    run = erase("embedded", "mce", ["star"], "object,fast", tmp_path / "mce", pipe=pipe, steps=1, batch=2,
                ddim_steps=2, init_logit=0.05, relaxation="hard_concrete", checkpoint_every=0, snapshot_every=1)
    snap = [e for e in run.events() if e["kind"] == "snapshot"][-1]  # taken after the last step
    shown = np.asarray(Image.open(run.path / snap["images"]["ce"]).convert("RGB")).astype(int)
    cfg = run.record["config"]
    settings = SamplerSettings(steps=cfg["snapshot_steps"], guidance=cfg["snapshot_guidance"])
    baked = generate(pipe, [cfg["erase_templates"][0].format(concept="star")], [cfg["seed"]], settings)[0]
    assert np.abs(shown - baked.astype(int)).max() <= 1  # the model `apply` gives, not a noisy relaxed one
    assert 0 < masked_fraction(run.result()) < 1  # some neurons off: the check above compares two masked models


def test_every_method_defines_the_presets_the_app_offers():
    from erasure import CONCEPT_PRESETS, SPEED_PRESETS, get_method, list_methods

    for name in list_methods():
        presets = get_method(name).PRESETS
        assert set(CONCEPT_PRESETS) | set(SPEED_PRESETS) <= set(presets), name
