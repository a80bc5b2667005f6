"""The frozen-model latent bank (erasure.latent_bank): a bank z_t is the sampler's z_t, it is cached on disk
under the right key, and training draws from it only where z_t comes from the frozen model."""

import dataclasses

import pytest
import torch

from backends import storage
from erasure import resolve_config
from erasure.diffusion import sample_until
from erasure.latent_bank import LatentBank
from erasure.trainer import Context


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "CACHE_ROOT", tmp_path / "cache")
    return tmp_path / "cache"


def _ctx(pipe, **overrides):
    cfg = resolve_config("esd", "embedded", "object,fast", targets=["star"], ddim_steps=5, bank_codes=3, **overrides)
    return Context(pipe, cfg)


def test_a_bank_latent_is_the_one_the_sampler_draws_from_the_same_code_and_step(embedded_pipe, cache):
    ctx = _ctx(embedded_pipe)
    conds = {"star": ctx.embed(["star"]), "moon": ctx.embed(["moon"])}
    ctx.bank_add(conds)
    bank = ctx.bank
    assert bank.z["star"].shape == (3, 5, *bank.codes.shape[1:]) and bank.sampled == 2
    for label, cond in conds.items():
        for j in range(bank.n):
            for k in range(ctx.config.ddim_steps):
                expected = sample_until(ctx.family, ctx.frozen, ctx.scheduler, bank.codes[j : j + 1], cond,
                                        ctx.emb_null, ctx.config.start_guidance, k)
                # batched rows (two conditionings x three codes per call) round like one row, to float32 noise
                torch.testing.assert_close(bank.get(label, (j,), k), expected, rtol=1e-4, atol=1e-5)
    # negative control: the check above tells conditionings and steps apart
    assert not torch.allclose(bank.get("star", (0,), 4), bank.get("moon", (0,), 4), atol=1e-3)
    assert not torch.allclose(bank.get("star", (0,), 4), bank.get("star", (0,), 3), atol=1e-3)
    torch.testing.assert_close(bank.get("star", (1,), 0), bank.codes[1:2])  # k = 0 is the code itself


def test_the_bank_is_cached_per_model_and_sampler_settings(embedded_pipe, cache):
    first = _ctx(embedded_pipe)
    first.bank_add({"star": first.embed(["star"])})
    again = _ctx(embedded_pipe)
    again.bank_add({"star": again.embed(["star"])})
    assert (again.bank.loaded, again.bank.sampled) == (1, 0)
    assert torch.equal(again.bank.z["star"], first.bank.z["star"])
    other = _ctx(embedded_pipe, start_guidance=1.5)  # another sampler setting: another key, sampled again
    other.bank_add({"star": other.embed(["star"])})
    assert (other.bank.loaded, other.bank.sampled) == (0, 1) and other.bank.folder != first.bank.folder
    seeded = _ctx(embedded_pipe, seed=1)  # other start codes
    assert LatentBank(seeded, 3).folder != first.bank.folder
    changed = _ctx(embedded_pipe)
    with torch.no_grad():  # other weights of theta: another fingerprint
        next(changed.frozen.parameters()).add_(1e-2)
    changed.bank = LatentBank(changed, 3)
    assert changed.bank.folder.parent != first.bank.folder.parent


def test_an_unwritable_cache_costs_the_reuse_not_the_run(embedded_pipe, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(storage, "CACHE_ROOT", blocker)
    ctx = _ctx(embedded_pipe)
    ctx.bank_add({"star": ctx.embed(["star"])})
    assert "star" in ctx.bank and "CSE_CACHE_DIR" in ctx.bank.store_error


def test_training_reads_the_bank_and_falls_back_to_the_sampler_without_a_label(embedded_pipe, cache, monkeypatch):
    ctx = _ctx(embedded_pipe)
    cond = ctx.embed(["star"])
    ctx.bank_add({"star": cond})
    start = ctx.draw()
    assert start.codes is not None and all(0 <= j < 3 for j in start.codes)
    torch.testing.assert_close(start.z, ctx.bank.codes[list(start.codes)])
    called = []
    monkeypatch.setattr("erasure.trainer.sample_until", lambda *a: called.append(a) or a[3])
    z, _, _ = ctx.sample_zt(cond, start, "star")
    assert not called and torch.equal(z, ctx.bank.get("star", start.codes, start.k))
    ctx.sample_zt(cond, start, None)  # a conditioning not in the bank (pgd's offset, AGE's mixtures) is sampled
    assert len(called) == 1


def test_ap_fast_banks_its_targets_and_every_centre(embedded_pipe, cache):
    from erasure.registry import get_method

    cfg = resolve_config("ap", "embedded", "object,fast", targets=["star"], ddim_steps=3, bank_codes=2)
    ctx = Context(embedded_pipe, cfg)
    method = get_method("ap")(ctx)
    words = method.spaces[cfg.prompts()[0]].words
    assert set(ctx.bank.z) == {*cfg.prompts(), *(f"word:{w}" for w in words)}
    _, label, key = method._ca(cfg.prompts()[0], grad=False)
    assert key == f"word:{label}" and key in ctx.bank


def test_bank_and_precision_settings_are_checked(embedded_pipe):
    with pytest.raises(ValueError, match="zt_from='frozen'"):
        resolve_config("ap", "embedded", "object,reference", targets=["star"], bank_codes=4)
    with pytest.raises(ValueError, match="bank_codes must be"):
        resolve_config("ap", "embedded", "object,fast", targets=["star"], bank_codes=65)
    with pytest.raises(ValueError, match="use bfloat16"):
        resolve_config("ap", "embedded", "object,fast", targets=["star"], precision="float16")


def test_precision_resolves_per_device_and_autocasts_the_forwards(embedded_pipe):
    from backends.precision import resolve_precision

    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    ctx = _ctx(embedded_pipe, precision="bfloat16")
    z = ctx.family.noise(ctx.pipe, 1, torch.Generator().manual_seed(0))
    t = ctx.scheduler.timesteps[:1]
    with ctx.autocast():
        assert ctx.predict(ctx.frozen, z, t, ctx.emb_null).dtype == torch.bfloat16
    plain = dataclasses.replace(ctx.config, precision="float32")
    ctx.config = plain
    with ctx.autocast():
        assert ctx.predict(ctx.frozen, z, t, ctx.emb_null).dtype == torch.float32


def test_a_run_records_its_resolved_precision_and_bank(embedded_pipe, tmp_path, cache):
    import copy

    from erasure import erase

    events = []
    run = erase("embedded", "esd", ["star"], "object,fast", tmp_path / "run", pipe=copy.deepcopy(embedded_pipe),
                steps=2, ddim_steps=4, bank_codes=2, checkpoint_every=0, callback=events.append)
    assert run.record["config"]["precision"] == "float32" and run.record["config"]["bank_codes"] == 2
    assert "latent bank" in events[0].extra["memory"] and events[0].extra["latent_bank"]["conditionings"] == 1
    assert "latent bank" in events[0].message


def test_centres_with_fewer_codes_are_sampled_when_first_read_and_read_code_j_mod_m(embedded_pipe, cache):
    ctx = _ctx(embedded_pipe, bank_centre_codes=2)
    conds = {"star": ctx.embed(["star"]), "word:moon": ctx.embed(["moon"]), "word:heart": ctx.embed(["heart"])}
    ctx.bank_add(conds, centres=("word:moon", "word:heart"))
    bank = ctx.bank
    assert set(bank.z) == {"star"} and "word:moon" in bank and bank.summary()["lazy"] == 2  # nothing sampled yet
    z = bank.get("word:moon", (0, 1, 2), 3)  # the first read samples moon's first 2 codes only
    assert bank.z["word:moon"].shape[0] == 2 and "word:heart" not in bank.z and bank.summary()["lazy"] == 1
    expected = sample_until(ctx.family, ctx.frozen, ctx.scheduler, bank.codes[[0, 1, 0]], conds["word:moon"],
                            ctx.emb_null, ctx.config.start_guidance, 3)
    torch.testing.assert_close(z, expected, rtol=1e-4, atol=1e-5)  # code 2 of 2 is code 0
    eager = _ctx(embedded_pipe)  # bank_centre_codes 0: every code of every centre ahead, as before
    eager.bank_add(conds, centres=("word:moon", "word:heart"))
    assert all(z.shape[0] == 3 for z in eager.bank.z.values()) and len(eager.bank.z) == 3
    # moon's 3-code file (written by the eager bank) now serves a 2-code read without sampling
    again = _ctx(embedded_pipe, bank_centre_codes=2)
    again.bank_add({"word:moon": conds["word:moon"]}, centres=("word:moon",))
    again.bank.get("word:moon", (1,), 2)
    assert (again.bank.loaded, again.bank.sampled) == (1, 0)


def test_ap_fast_keeps_every_centre_code_ahead_on_the_embedded_model_and_one_lazily_elsewhere():
    embedded = resolve_config("ap", "embedded", "object,fast", targets=["star"])
    sd = resolve_config("ap", "CompVis/stable-diffusion-v1-4", "object,fast", targets=["cat"])
    assert (embedded.bank_codes, embedded.bank_centre_codes) == (16, 0)
    assert (sd.bank_codes, sd.bank_centre_codes, sd.n_centres) == (16, 1, 100)
    assert "bank_centre_codes" not in embedded.result_dict()  # stored embedded runs keep their fingerprints


def test_the_centre_probe_reads_lazily_banked_centres_from_the_bank(embedded_pipe, cache):
    from erasure.methods.ap import AP

    cfg = resolve_config("ap", "embedded", "object,fast", targets=["star"], ddim_steps=4, bank_codes=2,
                         bank_centre_codes=1, n_centres=4, k_closest=8)
    ctx = Context(embedded_pipe, cfg)
    ap = AP(ctx)
    prompt, space = next(iter(ap.spaces.items()))
    assert len(ctx.bank.lazy) == 4  # nothing drawn yet
    widths = []
    forward = type(ctx.frozen).forward
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(ctx.frozen), "forward", lambda m, x, *a, **k: widths.append(len(x)) or forward(m, x, *a, **k))
        losses = ap.probe.values(prompt, space)
    assert losses.shape == (4,) and not ctx.bank.lazy  # each centre's code 0 sampled once, for the probe too
    # the 4 centres' trajectories in one batched pass (4 conditionings x 2 for guidance per sampler step),
    # not one narrow pass per centre; then the probe's own frozen and trained rows
    assert widths[: cfg.ddim_steps - 1] == [8] * (cfg.ddim_steps - 1) and 2 not in widths
    torch.testing.assert_close(ap.probe.z[(prompt, 0)][1:2], ctx.bank.get(f"word:{space.words[1]}", (0,), ap.probe.k))
