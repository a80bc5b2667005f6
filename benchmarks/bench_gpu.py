"""Speed at real size on one GPU: what a Space user waits for, per weights' precision.

    python -m benchmarks.bench_gpu            # CUDA: an SD-1.4-size UNet and full-width FLUX blocks (< 8 min)
    python -m benchmarks.bench_gpu --tiny     # the same code on the CPU at a tiny width (the test suite)

Models are built from configs with random weights (timings and memory do not depend on weights):
`benchmarks.gpu_memory_check`'s SD 1.4 pipeline (its full 859.5 M-parameter UNet, a one-layer text
encoder of the real width and tokenizer) and FLUX pipeline (2 double + 4 single full-width blocks).
Rows, for each of three precisions: float32 weights; float32 weights with bfloat16 autocast (the
`precision` setting of erasure and of the spectrum's sampling, "auto" on such a GPU); bfloat16 weights
(trained tensors keep float32 masters):
- seconds per AP and ESD step with `object,fast` (AP's z_t from its latent bank) and `object,reference`
  on SD (the mean over the steps after the first, from the run's own step events; AP searches the 3,000
  most frequent English words), and AP `object,fast-v1` (the same schedule, z_t sampled per draw);
- seconds to sample AP `object,fast`'s latent bank (its targets and 100 centres x 8 codes, before step 1);
- images per second of the spectrum's sampling path at its default settings (25 steps, 64 per call);
- concepts per second of the proxy D(c) as the spectrum computes it (chunks of 8, both denoisers);
- peak GPU memory of each row.
Writes benchmarks/results/gpu.json (a CUDA run only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import tempfile
import time
from pathlib import Path

import torch

from .common import Peak, print_table, write_result
from .gpu_memory_check import flux_pipe, sd_pipe

GiB = 2**30
# name -> (weights' dtype, erasure's precision setting: the autocast of every forward); the bar's first
PRECISIONS = {"bfloat16": (torch.bfloat16, "bfloat16"), "float32 + bf16 autocast": (torch.float32, "bfloat16"),
              "float32": (torch.float32, "float32")}
# (method, presets, steps timed on a GPU, the precisions it runs in); reference steps sample z_t with 50
# DDIM steps, so fewer of them. The float32 latent bank (808 trajectories in float32) and the float32-
# autocast reference rows would not fit the 8 minutes; the rows left show each ratio.
TRAINING = [("ap", "object,fast", 8, ("bfloat16", "float32 + bf16 autocast")),
            ("ap", "object,fast-v1", 6, tuple(PRECISIONS)),
            ("ap", "object,reference", 3, ("bfloat16", "float32")),
            ("esd", "object,fast", 8, tuple(PRECISIONS)),
            ("esd", "object,reference", 3, ("bfloat16", "float32"))]
BUDGET_S = 450  # a full run stops starting rows after this many seconds (the device lends 10 minutes a call)
SEARCH = {"vocab": "english", "vocab_size": 3000}  # AP's search space: k 1000 nearest, thinned to 100
TINY_SEARCH = {"vocab": "english", "vocab_size": 200, "k_closest": 40, "n_centres": 8}


def step_seconds(pipe, method: str, presets: str, steps: int, device: str, tiny: bool,
                 precision: str) -> tuple[float, int, float | None]:
    """Mean seconds of the steps after the first of one erasure (the first pays for warm-up), the peak
    memory of the run and the seconds its latent bank took to sample (None without one). The bank's
    cache is a fresh folder, so it is sampled, not loaded."""
    from backends import storage
    from erasure import erase

    events = []
    settings = dict(SEARCH if not tiny else TINY_SEARCH) if method == "ap" else {}
    if tiny:
        settings |= {"resolution": 128, "ddim_steps": 4}
        if presets.endswith(",fast") and method == "ap":
            settings["bank_codes"] = 2  # a 2-code bank: the bank's code path in seconds
    with tempfile.TemporaryDirectory() as out, Peak(device) as peak:
        root, storage.CACHE_ROOT = storage.CACHE_ROOT, Path(out) / "cache"
        try:
            erase("sd-1.4", method, ["car"], presets, f"{out}/run", pipe=pipe, device=device, steps=steps,
                  checkpoint_every=0, snapshot_every=0, callback=events.append, precision=precision, **settings)
        finally:
            storage.CACHE_ROOT = root
    done = [e.elapsed_s for e in events if e.kind == "step"]
    bank = events[0].extra.get("latent_bank")
    return (done[-1] - done[0]) / (len(done) - 1), peak.bytes, bank and bank["sampled_s"]


def images_per_second(pipe, device: str, n: int, tiny: bool, autocast) -> tuple[float, int]:
    """The spectrum's sampling path at its default settings (SpectrumConfig: 25 steps, guidance 5, 64
    images per call): n images of concepts x seeds through the base model's sampler."""
    from backends import generate
    from sensitivity.rows import SpectrumConfig

    cfg = SpectrumConfig(targets=["car"], steps=4 if tiny else SpectrumConfig.steps, resolution=128 if tiny else 0)
    prompts = [f"a photo of a {w}" for w in ("car", "dog", "tree", "house")] * (n // 4)
    generate(pipe, prompts[:2], [0, 1], cfg.sampler())  # warm-up
    with Peak(device) as peak, autocast():
        t0 = time.perf_counter()
        generate(pipe, prompts, list(range(len(prompts))), cfg.sampler(), batch_size=cfg.batch)
        seconds = time.perf_counter() - t0
    return len(prompts) / seconds, peak.bytes


def concepts_per_second(pipe, device: str, calls: int, autocast) -> tuple[float, int]:
    """The proxy D(c) as the spectrum computes it: its fixed (t, z_t) set, one chunk of concepts per
    call, both denoisers (the erased one a copy of the base)."""
    from backends.families import family_of
    from sensitivity.proxy import proxy_divergence, proxy_points
    from sensitivity.rows import SpectrumConfig

    cfg, family = SpectrumConfig(targets=["car"]), family_of(pipe)
    erased = copy.copy(pipe)
    setattr(erased, family.component, copy.deepcopy(getattr(pipe, family.component)))
    t, z = proxy_points(pipe, cfg.proxy_timesteps, cfg.proxy_latents)
    chunks = [family.encode(pipe, [f"a photo of a {c}-{i}" for i in range(cfg.chunk)]) for c in range(calls)]
    proxy_divergence(pipe, erased, chunks[0], t, z)  # warm-up
    with Peak(device) as peak, autocast():
        t0 = time.perf_counter()
        for cond in chunks:
            proxy_divergence(pipe, erased, cond, t, z)
        seconds = time.perf_counter() - t0
    return calls * cfg.chunk / seconds, peak.bytes


def rows_for(model: str, build, precision: str, device: str, tiny: bool, out: list[dict], deadline: float) -> None:
    """Append the rows of one model in one precision to `out` (written after each row on a GPU), until
    `deadline` (time.monotonic()); a row not started in time is recorded as skipped."""
    from backends.families import family_of
    from backends.loader import slice_large_decodes

    dtype, autocast_to = PRECISIONS[precision]
    dtype = torch.float32 if tiny else dtype  # bf16 matmuls are emulated (slow) on most CPUs
    torch.manual_seed(0)
    pipe = build(tiny).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    slice_large_decodes(pipe)  # as load_pipeline does: 64 images at 512 px decode one at a time
    if tiny and hasattr(pipe, "default_sample_size"):
        pipe.default_sample_size = 16  # FLUX at 128 px, as every other tiny row
    family = family_of(pipe)
    if tiny and build is sd_pipe:
        family.denoiser(pipe).register_to_config(sample_size=16)  # 128 px: the proxy's latents follow the native size

    def row(what: str, value: float | None, unit: str, peak: int) -> None:
        out.append({"model": model, "precision": precision, "what": what, "value": value, "unit": unit,
                    "peak_gib": peak / GiB})
        print(out[-1], flush=True)
        if not tiny:
            write_result("gpu", {"rows": out, "budget_s": BUDGET_S})

    def late(what: str) -> bool:
        if time.monotonic() < deadline:
            return False
        row(what, None, f"skipped: the {BUDGET_S} s budget was spent", 0)
        return True

    if build is sd_pipe:
        start = copy.deepcopy(family.denoiser(pipe))  # each run trains the denoiser in place; all start from here
        for method, presets, steps, precisions in TRAINING:
            if (precision not in precisions and not tiny) or late(f"{method.upper()} {presets} step"):
                continue
            setattr(pipe, family.component, copy.deepcopy(start))
            seconds, peak, bank_s = step_seconds(pipe, method, presets, 3 if tiny else steps, device, tiny, autocast_to)
            row(f"{method.upper()} {presets} step", seconds, "s / step", peak)
            if bank_s is not None:
                row(f"{method.upper()} {presets} latent bank", bank_s, "s", peak)
        setattr(pipe, family.component, start)
    images, calls = (4, 1) if tiny else ((64, 8) if build is sd_pipe else (16, 2))
    cast = (lambda: torch.autocast(device.split(":")[0], torch.bfloat16)) if autocast_to == "bfloat16" and not tiny \
        else contextlib.nullcontext
    if not late(f"spectrum sampling ({images} images)"):
        rate, peak = images_per_second(pipe, device, images, tiny, cast)
        row(f"spectrum sampling ({images} images)", rate, "images / s", peak)
    if not late(f"proxy D(c) ({calls} chunks)"):
        rate, peak = concepts_per_second(pipe, device, calls, cast)
        row(f"proxy D(c) ({calls} chunks)", rate, "concepts / s", peak)
    del pipe
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def run(tiny: bool) -> list[dict]:
    """Every row, the bar's precision first; `tiny`: narrow models on the CPU in float32 (the code path,
    in seconds; the autocast path is tested in tests/test_latent_bank.py)."""
    device = "cpu" if tiny else "cuda"
    precisions = ["float32"] if tiny else list(PRECISIONS)
    models = [("SD 1.4 UNet", sd_pipe), ("FLUX 2+4 blocks", flux_pipe)]
    out: list[dict] = []
    deadline = time.monotonic() + BUDGET_S
    for p in precisions:
        for name, build in models:
            rows_for(name, build, p, device, tiny, out, deadline)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    args = argparse.ArgumentParser()
    args.add_argument("--tiny", action="store_true", help="narrow models on the CPU: the code path, no GPU numbers")
    args = args.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU; use --tiny to run its code path on the CPU")
    rows = run(args.tiny)
    print_table(rows, ["model", "precision", "what", "value", "unit", "peak_gib"])
    return rows


if __name__ == "__main__":
    main()
