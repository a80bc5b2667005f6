"""The memory estimate a run prints and checks before it starts (erasure.memory)."""

import json

import pytest
import torch

from backends import load_pipeline
from backends.families import family_of
from erasure import memory


def _sampler_call(pipe, steps=1, rows=1):
    family = family_of(pipe)
    sampler = family.few_step_sampler(pipe, steps, 5.0)
    cond = sampler.embed(["a red star"] * rows)
    family.denoiser(pipe).requires_grad_(False)
    x = torch.zeros(1, requires_grad=True)  # something to differentiate: the noise is scaled by it

    def call_at(px):
        z = family.noise(pipe, rows, torch.Generator().manual_seed(0), px) * (1 + x)
        return sampler.sample(cond, z, grad=True, use_checkpoint=False)

    return family, call_at


@pytest.mark.parametrize("model", ["embedded", "flux-tiny-random"])
def test_probes_at_small_sizes_predict_the_saved_bytes_at_full_size(model):
    """Three probes below the native size, fitted per quantity, give what autograd saves at the native
    size (measured directly) within 10 %, per block included."""
    pipe = load_pipeline(model)
    family, call_at = _sampler_call(pipe)
    size = family.native_size(pipe)
    predicted = memory.call_profile(family, pipe, call_at, size)
    measured = memory.profile(family.denoiser(pipe), lambda: call_at(size))
    assert measured.total > 0
    assert predicted.total == pytest.approx(measured.total, rel=0.1)
    assert len(predicted.blocks) == (2 if model.startswith("flux") else 0)  # FLUX: one double + one single block
    for p, m in zip(predicted.blocks, measured.blocks):
        assert p == pytest.approx(m, rel=0.1) and m > 0
    assert predicted.inputs == pytest.approx(measured.inputs, rel=0.1)


def test_saved_bytes_scale_with_prompts_and_steps():
    """What activation_bytes assumes: a 2-step pass of 3 prompts without checkpointing saves 2 x 3 times
    one prompt's one-step call."""
    pipe = load_pipeline("flux-tiny-random")
    family, one = _sampler_call(pipe)
    _, many = _sampler_call(pipe, steps=2, rows=3)
    size = family.native_size(pipe)
    single = memory.profile(family.denoiser(pipe), lambda: one(size)).total
    both = memory.profile(family.denoiser(pipe), lambda: many(size)).total
    assert both == pytest.approx(6 * single, rel=0.1)
    p = memory.CallProfile(outside=10.0, inputs=2.0, blocks=(30.0, 50.0))
    assert memory.activation_bytes(p, rows=2, calls=4, checkpointing="none") == 2 * (4 * 90 + 50)
    assert memory.activation_bytes(p, rows=2, calls=4, checkpointing="block") == 2 * (4 * 12 + 50)
    assert memory.activation_bytes(p, rows=2, calls=4, checkpointing="call") == 2 * (90 + 90)


@pytest.mark.slow
def test_a_run_that_will_not_fit_the_gpu_is_refused_naming_the_setting(tmp_path, monkeypatch):
    """Before the first step: MCE at micro_batch 4 on a GPU with too little free memory is refused with
    micro_batch named; the run folder says why. With micro_batch=1 the estimate's activations shrink 4x
    and the same run starts; the start event records the estimate."""
    from erasure import erase

    pipe = load_pipeline("embedded")
    small = dict(steps=1, batch=4, ddim_steps=2, checkpoint_every=0, snapshot_every=0)
    events = []
    erase("embedded", "mce", ["star"], "fast", tmp_path / "fits", pipe=pipe, callback=events.append, micro_batch=1,
          **small)
    needed = events[0].extra["memory"]
    assert needed["added"] > 0 and "the run adds" in events[0].message
    pipe = load_pipeline("embedded")
    monkeypatch.setattr(memory, "free_memory", lambda device: (needed["added"] * 2, 80 * memory.GiB))
    with pytest.raises(memory.WillNotFitError, match="micro_batch=1 \\(now 4 prompts"):
        erase("embedded", "mce", ["star"], "fast", tmp_path / "big", pipe=pipe, micro_batch=4, **small)
    status = json.loads(next((tmp_path / "big").glob("**/status.json")).read_text())
    assert status["state"] == "failed" and "will not fit" in status["message"]
    erase("embedded", "mce", ["star"], "fast", tmp_path / "fits2", pipe=pipe, micro_batch=1, **small)


def test_fine_tuning_estimate_counts_the_frozen_copy_and_adam_state():
    from erasure.trainer import resolve_config

    pipe = load_pipeline("embedded")
    unet = pipe.unet
    est, fixes = memory.fine_tune_estimate(pipe, resolve_config("esd", "embedded", "fast", targets=["star"],
                                                                param_group="full", batch=2))
    n = sum(p.numel() for p in unet.parameters())
    assert est.detail["frozen copy"] == 4 * n
    assert est.detail["optimiser state"] == 3 * 4 * n  # fp32: gradient + two Adam moments, no separate master
    assert est.detail["activations"] > 0 and any("param_group" in f for f in fixes) and any("batch" in f for f in fixes)


def test_weights_larger_than_the_free_gpu_memory_are_refused_before_the_move(monkeypatch):
    from backends import loader

    pipe = load_pipeline("embedded")
    need = loader.weight_bytes(pipe)
    assert need == sum(t.numel() * t.element_size() for m in (pipe.unet, pipe.vae, pipe.text_encoder)
                       for t in [*m.parameters(), *m.buffers()])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (need - 1, 2 * need))
    with pytest.raises(loader.ModelUnavailableError, match="weights take .* free .* bfloat16"):
        loader.check_weights_fit(pipe, "cuda:0")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (need, 2 * need))
    loader.check_weights_fit(pipe, "cuda:0")  # fits exactly
    loader.check_weights_fit(pipe, "cpu")  # host memory is not checked


# ------------------------------------------------------------------ resolution
@pytest.mark.parametrize("model,method,size", [("embedded", "esd", 16), ("embedded", "mce", 16),
                                                ("flux-tiny-random", "mce", 16)])
def test_a_run_trains_and_draws_at_its_resolution(tmp_path, model, method, size):
    """resolution=16 on 32-px models: every denoiser call of the run (training, z_t sampling, snapshots)
    sees 16-px latents, and the snapshot images are 16 px; the default stays native."""
    from erasure import erase

    pipe = load_pipeline(model)
    net = family_of(pipe).denoiser(pipe)
    sides, started = set(), []  # latent shapes the denoiser sees once the run starts (after the memory probe)

    def record(module, args, kwargs):
        if started:
            sides.add(tuple((args[0] if args else kwargs["hidden_states"]).shape[1:]))

    handle = net.register_forward_pre_hook(record, with_kwargs=True)
    run = erase(model, method, ["star"], "fast", tmp_path / "run", pipe=pipe, steps=1, batch=2, ddim_steps=2,
                checkpoint_every=0, snapshot_every=1, snapshot_steps=2, resolution=size,
                callback=lambda e: started.append(e.kind))
    handle.remove()
    latent = size // pipe.vae_scale_factor
    expected = (4, latent, latent) if model == "embedded" else ((latent // 2) ** 2, net.config.in_channels)
    assert sides == {expected}
    from PIL import Image

    shots = list((run.path / "trajectory").glob("*.png"))
    assert shots and all(Image.open(p).size == (size, size) for p in shots)
    assert run.record["config"]["resolution"] == size


def test_a_resolution_the_model_cannot_take_is_refused(tmp_path):
    from erasure import erase

    with pytest.raises(ValueError, match="resolution 20 px does not fit this model: use a multiple of 8 px"):
        erase("embedded", "esd", ["star"], "fast", tmp_path / "r", steps=1, resolution=20)
    with pytest.raises(ValueError, match="resolution must be 0"):
        erase("embedded", "esd", ["star"], "fast", tmp_path / "r2", steps=1, resolution=-1)

@pytest.mark.slow

def test_the_gpu_benchmark_runs_its_code_path_on_the_cpu(capsys):
    """benchmarks/bench_gpu.py at a tiny width: every row (AP and ESD steps with each preset on the SD
    pipeline, AP's latent bank, spectrum sampling and the proxy on SD and FLUX) is measured and positive, with
    no budget to skip any; only a CUDA run writes benchmarks/results/gpu.json, and without CUDA the full run
    refuses with what to do."""
    from benchmarks import bench_gpu

    rows = bench_gpu.main(["--tiny"])
    whats = [(r["model"], r["what"]) for r in rows]
    assert whats == [("SD 1.4 UNet", "AP object,fast step"), ("SD 1.4 UNet", "AP object,fast latent bank"),
                     ("SD 1.4 UNet", "ESD object,fast step"), ("SD 1.4 UNet", "spectrum sampling"),
                     ("SD 1.4 UNet", "proxy D(c)"), ("FLUX 2+4 blocks", "spectrum sampling"),
                     ("FLUX 2+4 blocks", "proxy D(c)"), ("SD 1.4 UNet", "AP object,fast-v1 step"),
                     ("SD 1.4 UNet", "AP object,reference step"), ("SD 1.4 UNet", "ESD object,reference step")], whats
    assert all(r["value"] is not None and r["value"] > 0 and r["precision"] == "float32" for r in rows), rows
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA GPU; use --tiny"):
            bench_gpu.main([])


def test_the_gpu_benchmark_plans_its_most_important_rows_into_the_budget():
    """The stored plan (counted calls of every row, results/gpu_plan.json, current for today's ROWS) under the
    docstring's assumed H100 costs: AP fast, ESD fast and the spectrum's sampling and proxy on both models
    start inside the 540 s budget, and what starts fits it; a row that does not fit is not started."""
    from benchmarks import bench_gpu

    counts = bench_gpu.stored_counts()  # counting again here would mean the stored plan is stale: keep it current
    rows = bench_gpu.plan(counts, bench_gpu.BUDGET_S)
    first = [r["row"] for r in rows[:12]]
    assert first[0] == "SD 1.4 UNet | bfloat16 | AP object,fast step"
    assert all(r["runs"] for r in rows[:12]), first  # AP, ESD fast; SD and FLUX sampling and proxy (bf16, autocast)
    assert max(r["total_s"] for r in rows) <= bench_gpu.BUDGET_S
    assert rows[0]["grad_calls"] >= 8 and rows[0]["calls"] > 100  # 8 steps trained; the bank, the centres, the probe
    tight = bench_gpu.plan(counts, rows[0]["est_s"] - 1)  # too little for the first row: nothing starts
    assert not any(r["runs"] for r in tight[:1])
