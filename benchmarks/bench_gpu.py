"""Speed at real size on one GPU: what a Space user waits for, per weights' precision, in a planned budget.

    python -m benchmarks.bench_gpu            # CUDA: the rows that fit the budget (default 540 s), most important first
    python -m benchmarks.bench_gpu --plan     # no GPU: the plan under the assumed costs below, with each row's calls
    python -m benchmarks.bench_gpu --tiny     # every row's code path on the CPU at a tiny width, no budget (the tests)

Models are built from configs with random weights (timings and memory do not depend on weights):
`benchmarks.gpu_memory_check`'s SD 1.4 pipeline (its full 859.5 M-parameter UNet, a one-layer text
encoder of the real width and tokenizer) and FLUX pipeline (2 double + 4 single full-width blocks).
Precisions: bfloat16 weights; float32 weights with bfloat16 autocast (the `precision` setting of erasure
and of the spectrum, "auto" on such a GPU); float32 (trained tensors keep float32 masters). Rows, in the
order they run (ROWS), most important first:
- seconds per AP `object,fast` step on SD (the mean over the steps after the first, from the run's step
  events; AP searches the 3,000 most frequent English words: 100 centres among the 1,000 nearest); its
  latent bank samples the target's 16 codes before step 1 (a row of its own) and a centre's one code
  when the search first draws it, so the timed steps pay for the centres they read and no more;
- seconds per ESD `object,fast` step; images per second of the spectrum's sampling path at its default
  settings (25 steps, 64 per call) and concepts per second of the proxy D(c) as the spectrum computes it
  (chunks of 8, both denoisers), on SD and on the FLUX blocks;
- then AP `object,fast-v1` (z_t sampled per draw) and the `reference` presets, and float32's rows;
- peak GPU memory of each row, its measured wall seconds and the seconds the plan expected.

The plan. Each row's denoiser calls and rows (with and without gradient) and decoded images are counted
once on the CPU, on narrow pipelines with the same settings (the counts depend on the config and family,
not the width or resolution: benchmarks/bench_rows.py), and stored in benchmarks/results/gpu_plan.json.
A call of b rows is priced at one batch-1 call plus (b - 1) batched rows. The assumed costs (ASSUMED: an
H100 in bfloat16, 512 px SD 1.4 UNet) are 50 ms per batch-1 call and 12.5 ms per further row without
gradient, 150 ms and 37.5 ms with gradient, 40 ms per decoded image, 30 s to build a model in a weights
dtype, and FLOAT32_FACTOR = 4 times each in float32 without autocast; the FLUX blocks are priced as SD. On
the GPU the first row of each model and precision is preceded by a warm-up that measures these costs,
and every row is priced again before it starts: a row that would end past the budget is recorded as
skipped, with its estimate. Writes benchmarks/results/gpu.json after every row (a CUDA run only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

import torch

from .common import RESULTS, Peak, print_table, write_result
from .gpu_memory_check import flux_pipe, sd_pipe

GiB = 2**30
BUDGET_S = 540  # the device lends 10 minutes a call; the rest is start-up and copying results back
# name -> (weights' dtype, erasure's precision setting: the autocast of every forward)
PRECISIONS = {"bfloat16": (torch.bfloat16, "bfloat16"), "float32 + bf16 autocast": (torch.float32, "bfloat16"),
              "float32": (torch.float32, "float32")}
MODELS = {"SD 1.4 UNet": sd_pipe, "FLUX 2+4 blocks": flux_pipe}
SEARCH = {"vocab": "english", "vocab_size": 3000}  # AP's search space: k 1000 nearest, thinned to 100
TINY_SEARCH = {"vocab": "english", "vocab_size": 200, "k_closest": 40, "n_centres": 8}
COUNT_RESOLUTION = 128  # px the counts are taken at on the CPU (counts do not depend on it)
SAMPLED = {"SD 1.4 UNet": (64, 8), "FLUX 2+4 blocks": (16, 2)}  # (images sampled, proxy chunks) per row
# seconds: batch-1 call / further row, without and with gradient; per decoded image; per model build
ASSUMED = {"call": 0.050, "row": 0.0125, "grad_call": 0.150, "grad_row": 0.0375, "vae_image": 0.040, "build": 30.0}
FLOAT32_FACTOR = 4  # float32 weights without autocast against bfloat16 (no tensor-core bf16 path)


@dataclasses.dataclass(frozen=True)
class Row:
    model: str  # a MODELS key
    precision: str  # a PRECISIONS key
    kind: str  # "train" | "sampling" | "proxy"
    method: str = ""  # train rows: the erasure method
    presets: str = ""  # train rows: its presets
    steps: int = 0  # train rows: steps run on a GPU (the first is warm-up)

    @property
    def what(self) -> str:
        if self.kind == "train":
            return f"{self.method.upper()} {self.presets} step"
        return "spectrum sampling" if self.kind == "sampling" else "proxy D(c)"

    @property
    def key(self) -> str:
        return f"{self.model} | {self.precision} | {self.what}"


def _train(method, presets, steps, precisions):
    return [Row("SD 1.4 UNet", p, "train", method, presets, steps) for p in precisions]


def _spectrum(model, precisions):
    return [Row(model, p, kind) for p in precisions for kind in ("sampling", "proxy")]


BF, AC, F32 = PRECISIONS
ROWS = (_train("ap", "object,fast", 8, (BF, AC)) + _train("esd", "object,fast", 8, (BF, AC))
        + _spectrum("SD 1.4 UNet", (BF, AC)) + _spectrum("FLUX 2+4 blocks", (BF, AC))
        + _train("ap", "object,fast-v1", 6, (BF, AC)) + _train("esd", "object,fast", 8, (F32,))
        + _train("ap", "object,reference", 3, (BF,)) + _train("esd", "object,reference", 3, (BF,))
        + _spectrum("SD 1.4 UNet", (F32,)) + _train("ap", "object,fast-v1", 6, (F32,)))


# ------------------------------------------------------------------ what each row measures
def step_seconds(pipe, row: Row, device: str, mode: str) -> tuple[float, int, float | None]:
    """Mean seconds of the steps after the first of one erasure (the first pays for warm-up), the peak memory
    of the run and the seconds its latent bank took before step 1 (None without one). `mode`: "gpu", "tiny"
    (small settings) or "count" (the GPU's settings at COUNT_RESOLUTION). The bank's cache is a fresh folder."""
    from backends import storage
    from erasure import erase

    events = []
    settings = dict(TINY_SEARCH if mode == "tiny" else SEARCH) if row.method == "ap" else {}
    if mode == "tiny":
        settings |= {"resolution": 128, "ddim_steps": 4}
        if row.presets.endswith(",fast") and row.method == "ap":
            settings["bank_codes"] = 2  # a 2-code bank: the bank's code path in seconds
    elif mode == "count":
        settings["resolution"] = COUNT_RESOLUTION
    steps = 3 if mode == "tiny" else row.steps
    with tempfile.TemporaryDirectory() as out, Peak(device) as peak:
        root, storage.CACHE_ROOT = storage.CACHE_ROOT, Path(out) / "cache"
        try:
            erase("sd-1.4", row.method, ["car"], row.presets, f"{out}/run", pipe=pipe, device=device, steps=steps,
                  checkpoint_every=0, snapshot_every=0, callback=events.append, precision=PRECISIONS[row.precision][1],
                  **settings)
        finally:
            storage.CACHE_ROOT = root
    done = [e.elapsed_s for e in events if e.kind == "step"]
    bank = events[0].extra.get("latent_bank")
    return (done[-1] - done[0]) / (len(done) - 1), peak.bytes, bank and bank["sampled_s"]


def images_per_second(pipe, row: Row, device: str, mode: str) -> tuple[float, int]:
    """The spectrum's sampling path at its default settings (SpectrumConfig: 25 steps, guidance 5, 64
    images per call): n images of concepts x seeds through the base model's sampler."""
    from backends import generate
    from sensitivity.rows import SpectrumConfig

    n = 4 if mode == "tiny" else SAMPLED[row.model][0]
    size = {"tiny": 128, "count": COUNT_RESOLUTION}.get(mode, 0)
    cfg = SpectrumConfig(targets=["car"], steps=4 if mode == "tiny" else SpectrumConfig.steps, resolution=size)
    prompts = [f"a photo of a {w}" for w in ("car", "dog", "tree", "house")] * (n // 4)
    with _autocast(row, device, mode):
        generate(pipe, prompts[:2], [0, 1], cfg.sampler())  # warm-up
        with Peak(device) as peak:
            t0 = time.perf_counter()
            generate(pipe, prompts, list(range(len(prompts))), cfg.sampler(), batch_size=cfg.batch)
            seconds = time.perf_counter() - t0
    return len(prompts) / seconds, peak.bytes


def concepts_per_second(pipe, row: Row, device: str, mode: str) -> tuple[float, int]:
    """The proxy D(c) as the spectrum computes it: its fixed (t, z_t) set, one chunk of concepts per call,
    both denoisers (the erased one a copy of the base), in the row's compute dtype (proxy_divergence turns
    autocast on itself when that is below the weights' dtype)."""
    from backends.families import family_of
    from sensitivity.proxy import proxy_divergence, proxy_points
    from sensitivity.rows import SpectrumConfig

    calls = 1 if mode == "tiny" else SAMPLED[row.model][1]
    cfg, family = SpectrumConfig(targets=["car"]), family_of(pipe)
    erased = copy.copy(pipe)
    setattr(erased, family.component, copy.deepcopy(getattr(pipe, family.component)))
    size = COUNT_RESOLUTION if mode == "count" else None
    t, z = proxy_points(pipe, cfg.proxy_timesteps, cfg.proxy_latents, size=size)
    compute = torch.bfloat16 if PRECISIONS[row.precision][1] == "bfloat16" and mode == "gpu" else family.denoiser(pipe).dtype
    chunks = [family.encode(pipe, [f"a photo of a {c}-{i}" for i in range(cfg.chunk)]) for c in range(calls)]
    proxy_divergence(pipe, erased, chunks[0], t, z, compute)  # warm-up
    with Peak(device) as peak:
        t0 = time.perf_counter()
        for cond in chunks:
            proxy_divergence(pipe, erased, cond, t, z, compute)
        seconds = time.perf_counter() - t0
    return calls * cfg.chunk / seconds, peak.bytes


def _autocast(row: Row, device: str, mode: str):
    """The sampling path's autocast: bf16 where the row's precision asks for it on the GPU."""
    if mode == "gpu" and PRECISIONS[row.precision][1] == "bfloat16":
        return torch.autocast(device.split(":")[0], torch.bfloat16)
    return contextlib.nullcontext()


def measure(row: Row, pipe, start, device: str, mode: str) -> list[tuple[str, float, str, int]]:
    """The row's (what, value, unit, peak bytes) results; a train row starts from the denoiser `start`."""
    from backends.families import family_of

    if row.kind == "sampling":
        rate, peak = images_per_second(pipe, row, device, mode)
        return [(row.what, rate, "images / s", peak)]
    if row.kind == "proxy":
        rate, peak = concepts_per_second(pipe, row, device, mode)
        return [(row.what, rate, "concepts / s", peak)]
    family = family_of(pipe)
    setattr(pipe, family.component, copy.deepcopy(start))  # each run trains the denoiser in place
    try:
        seconds, peak, bank_s = step_seconds(pipe, row, device, mode)
    finally:
        setattr(pipe, family.component, start)
    out = [(row.what, seconds, "s / step", peak)]
    if bank_s is not None:
        out.append((f"{row.method.upper()} {row.presets} latent bank", bank_s, "s before step 1", peak))
    return out


# ------------------------------------------------------------------ pipelines
def weights_key(row: Row) -> tuple:
    """The pipeline a GPU row runs on: its model in its precision's weights dtype (autocast shares float32's)."""
    return row.model, PRECISIONS[row.precision][0]


class Pipes:
    """One pipeline per (model, weights dtype), built on first use, with its denoiser's starting weights."""

    def __init__(self, device: str, narrow: bool):
        self.device, self.narrow, self.built = device, narrow, {}

    def key(self, row: Row):
        return (row.model, torch.float32) if self.narrow else weights_key(row)

    def get(self, row: Row):
        from backends.families import family_of
        from backends.loader import slice_large_decodes

        key = self.key(row)
        if key not in self.built:
            torch.manual_seed(0)
            pipe = MODELS[row.model](self.narrow).to(self.device, key[1])
            pipe.set_progress_bar_config(disable=True)
            slice_large_decodes(pipe)  # as load_pipeline does: 64 images at 512 px decode one at a time
            if self.narrow and row.model == "FLUX 2+4 blocks":
                pipe.default_sample_size = 16  # FLUX at 128 px, as every other narrow row
            family = family_of(pipe)
            if self.narrow and row.model == "SD 1.4 UNet":
                family.denoiser(pipe).register_to_config(sample_size=16)  # 128 px: the proxy's latents follow it
            self.built[key] = (pipe, family.denoiser(pipe))  # runs train copies of it: it stays the start
        return self.built[key]


# ------------------------------------------------------------------ the plan
def counts_key() -> str:
    """What the stored counts were taken for: every row and the settings that set its calls."""
    text = json.dumps([[r.key, r.steps] for r in ROWS] + [SEARCH, SAMPLED], default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def count_calls() -> dict[str, dict]:
    """Row key -> its denoiser calls and rows without and with gradient and its decoded images, counted on the
    narrow pipelines on the CPU with the GPU's settings (at COUNT_RESOLUTION)."""
    from .bench_rows import Counter

    pipes, counted = Pipes("cpu", narrow=True), {}
    for row in ROWS:
        alike = dataclasses.replace(row, precision="float32")  # the calls do not depend on the precision
        if alike not in counted:
            pipe, start = pipes.get(alike)
            counter = Counter()
            t0 = time.perf_counter()
            with counter.counting(pipe):
                measure(alike, pipe, start, "cpu", "count")
            counted[alike] = {"calls": counter.calls["no_grad"], "rows": counter.rows["no_grad"],
                              "grad_calls": counter.calls["grad"], "grad_rows": counter.rows["grad"],
                              "vae_images": counter.calls["vae_images"]}
            print(f"counted {alike.what} on {row.model}: {counted[alike]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {row.key: counted[dataclasses.replace(row, precision="float32")] for row in ROWS}


def stored_counts(recount: bool = False) -> dict[str, dict]:
    """The counts from results/gpu_plan.json when they were taken for today's ROWS, else counted (and stored)."""
    path = RESULTS / "gpu_plan.json"
    if path.exists() and not recount:
        stored = json.loads(path.read_text())
        if stored.get("key") == counts_key():
            return stored["counts"]
    counts = count_calls()
    write_result("gpu_plan", {"key": counts_key(), "counts": counts, "assumed": ASSUMED,
                              "float32_factor": FLOAT32_FACTOR, "budget_s": BUDGET_S})
    return counts


def seconds(calls: dict, costs: dict) -> float:
    """A row's seconds under per-call costs: each call one batch-1 call plus its further rows."""
    return (calls["calls"] * costs["call"] + (calls["rows"] - calls["calls"]) * costs["row"]
            + calls["grad_calls"] * costs["grad_call"] + (calls["grad_rows"] - calls["grad_calls"]) * costs["grad_row"]
            + calls["vae_images"] * costs["vae_image"])


def estimate(calls: dict, costs: dict, built: bool) -> float:
    """A row's seconds before it starts: its calls at `costs`, plus a model build unless its pipeline exists."""
    return seconds(calls, costs) + (0.0 if built else costs["build"])


def assumed_costs(precision: str) -> dict:
    factor = FLOAT32_FACTOR if PRECISIONS[precision][1] == "float32" else 1
    return {k: v * factor if k != "build" else v for k, v in ASSUMED.items()}


def plan(counts: dict[str, dict], budget: float) -> list[dict]:
    """Every row in order with its estimate under the assumed costs (a model's first row in a weights dtype
    pays its build) and whether it starts inside `budget`."""
    out, spent, built = [], 0.0, set()
    for row in ROWS:
        group = weights_key(row)
        est = estimate(counts[row.key], assumed_costs(row.precision), group in built)
        runs = spent + est <= budget
        if runs:
            spent += est
            built.add(group)
        out.append({"row": row.key, **counts[row.key], "est_s": round(est, 1), "runs": runs,
                    "total_s": round(spent, 1)})
    return out


@torch.no_grad()
def calibrate(pipe, device: str, precision: str) -> dict:
    """Measured per-call costs of this model in this precision (the ASSUMED keys): a batch-1 and a batch-8
    denoiser call without gradient, a batch-1 forward+backward, one image decoded (each after a warm-up)."""
    from backends.families import family_of

    family = family_of(pipe)
    net = family.denoiser(pipe)
    cond = family.encode(pipe, ["a photo of a car"])
    z = family.noise(pipe, 8, torch.Generator().manual_seed(0))
    t = torch.full((8,), 500, device=z.device)
    autocast = PRECISIONS[precision][1] == "bfloat16"
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def timed(fn) -> float:
        with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=autocast):
            fn()  # warm-up
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            return time.perf_counter() - t0

    one = timed(lambda: family.predict(net, z[:1], t[:1], cond))
    eight = timed(lambda: family.predict(net, z, t, cond))
    with torch.enable_grad():
        grad = timed(lambda: family.predict(net, z[:1], t[:1], cond).float().pow(2).mean().backward())
    net.zero_grad(set_to_none=True)
    side = family.native_size(pipe) // pipe.vae_scale_factor  # one image's latent as the VAE takes it [1, C, h, w]
    latent = torch.randn(1, pipe.vae.config.latent_channels, side, side, generator=torch.Generator().manual_seed(0))
    image = timed(lambda: pipe.vae.decode(latent.to(z.device, pipe.vae.dtype)))
    row = max(eight - one, 0.0) / 7
    return {"call": one, "row": row, "grad_call": grad, "grad_row": 3 * row, "vae_image": image,
            "build": ASSUMED["build"]}


# ------------------------------------------------------------------ running
def run(mode: str, budget: float | None) -> list[dict]:
    """Every row in ROWS order; on the GPU each priced before it starts (warm-up costs of its model and
    precision, the stored counts) and skipped when it would end past `budget` seconds (None: no budget)."""
    t_start = time.monotonic()
    device = "cuda" if mode == "gpu" else "cpu"
    counts = stored_counts() if budget is not None else {}
    pipes, out, costs = Pipes(device, narrow=mode != "gpu"), [], {}
    # tiny: each row's code path once, in float32 (bf16 matmuls are emulated, slowly, on most CPUs)
    rows = ROWS if mode == "gpu" else list(dict.fromkeys(dataclasses.replace(r, precision="float32") for r in ROWS))
    for row in rows:
        group = (row.model, row.precision)
        est = None
        if budget is not None:  # priced with this group's measured costs once it has them
            left = budget - (time.monotonic() - t_start)
            est = estimate(counts[row.key], costs.get(group) or assumed_costs(row.precision), pipes.key(row) in pipes.built)
            if est > left:
                out.append(_record(row, row.what, None, f"skipped: estimated {est:.0f} s, {left:.0f} s left", 0, est, 0))
                continue
        t0 = time.monotonic()
        pipe, start = pipes.get(row)
        if group not in costs:
            costs[group] = calibrate(pipe, device, row.precision)
        for what, value, unit, peak in measure(row, pipe, start, device, mode):
            out.append(_record(row, what, value, unit, peak, est, time.monotonic() - t0))
        if mode == "gpu":
            write_result("gpu", {"rows": out, "budget_s": budget, "costs": {" | ".join(k): v for k, v in costs.items()}})
    return out


def _record(row: Row, what: str, value, unit: str, peak: int, est, wall: float) -> dict:
    out = {"model": row.model, "precision": row.precision, "what": what, "value": value, "unit": unit,
           "peak_gib": peak / GiB, "est_s": None if est is None else round(est, 1), "wall_s": round(wall, 1)}
    print(out, flush=True)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="narrow models on the CPU: the code path, no GPU numbers, no budget")
    p.add_argument("--plan", action="store_true", help="print the plan under the assumed costs (counts calls if needed)")
    p.add_argument("--recount", action="store_true", help="with --plan: count every row's calls again")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds a GPU run may take (rows are planned into it)")
    args = p.parse_args(argv)
    if args.plan:
        rows = plan(stored_counts(args.recount), args.budget)
        print_table(rows, ["row", "calls", "rows", "grad_calls", "grad_rows", "vae_images", "est_s", "runs", "total_s"])
        return rows
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU; use --tiny to run its code path on the CPU, --plan to see "
                         "what a GPU run would measure")
    rows = run("tiny" if args.tiny else "gpu", None if args.tiny else args.budget)
    print_table(rows, ["model", "precision", "what", "value", "unit", "peak_gib", "est_s", "wall_s"])
    return rows


if __name__ == "__main__":
    main()
