"""What a run costs in network calls: a figure no machine changes (docs/benchmarks.md, the rows table).

    python -m benchmarks.bench_rows            # ~45 min on 2 busy CPU cores (mostly AP/AGE reference on SD); results/rows.json
    python -m benchmarks.bench_rows --only ap  # one method

For every method x speed preset (with "object"), on
- the embedded model (its profiles: AP's 16 centres of the world's words),
- a pipeline erase() treats as SD 1.4 (SD's profiles: AP's 100 centres among the 1,000 `english` words
  nearest the target; SD's scheduler, 77-token 768-wide text, a small random UNet: see sd_profiled),
- the tiny random SDXL and FLUX pipelines, for the methods their families support,
it counts denoiser rows (the batch items of every call) without gradient (samplers, frozen targets,
latent bank) and with forward+backward, text-encoder rows and VAE calls: before step 1 (set-up: an eager
latent bank, sampled into an empty cache; the memory estimate's probe calls), per step, and after the
last step (AP's and AGE's search diagnostics over every centre). A run with a lazy part (AP `fast`'s
centre codes, sampled when a centre is first drawn) runs all its steps; the others run MEASURE steps and
are extrapolated: per run = set-up + steps x the mean per step + after.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import print_table, write_result

MEASURE = 16  # steps measured of a run without a lazy part (its steps cost alike: k and t are drawn i.i.d.)


class Counter:
    """Rows through the denoiser (split by grad mode), the text encoder, and VAE calls. It wraps the classes'
    forward methods, not one instance: the frozen copy a run trains against is a new instance."""

    def __init__(self):
        self.rows = {"no_grad": 0, "grad": 0, "text": 0, "vae": 0}
        # denoiser calls by grad mode and images through the VAE: what bench_gpu's plan prices (a call of b rows
        # costs more than one row and less than b batch-1 calls)
        self.calls = {"no_grad": 0, "grad": 0, "vae_images": 0}
        self._undo: list = []

    def _wrap(self, cls, name: str, count) -> None:
        original = getattr(cls, name)

        def counted(module, *args, **kwargs):
            count(args, kwargs)
            return original(module, *args, **kwargs)

        setattr(cls, name, counted)
        self._undo.append((cls, name, original))

    def _denoiser(self, args, kwargs) -> None:
        x = args[0] if args else next(v for k, v in kwargs.items() if k in ("sample", "hidden_states"))
        mode = "grad" if torch.is_grad_enabled() else "no_grad"
        self.rows[mode] += x.shape[0]
        self.calls[mode] += 1

    def _text(self, args, kwargs) -> None:
        ids = args[0] if args else kwargs.get("input_ids")
        self.rows["text"] += ids.shape[0] if ids is not None else 1

    def _vae(self, args, kwargs) -> None:
        self.rows["vae"] += 1
        x = args[0] if args else next(iter(kwargs.values()))
        self.calls["vae_images"] += x.shape[0]

    @contextlib.contextmanager
    def counting(self, pipe):
        from backends.families import denoiser

        self._wrap(type(denoiser(pipe)), "forward", self._denoiser)
        for cls in {type(getattr(pipe, n)) for n in ("text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None}:
            self._wrap(cls, "forward", self._text)
        for name in ("encode", "decode"):
            self._wrap(type(pipe.vae), name, self._vae)
        try:
            yield self
        finally:
            for cls, name, original in reversed(self._undo):
                setattr(cls, name, original)
            self._undo.clear()

    def snapshot(self) -> dict:
        return dict(self.rows)


def sd_profiled(seed: int = 0):
    """An SD-family pipeline that erase() treats as SD 1.4 (its profiles, template and sampler steps): the
    embedded UNet's small layout with SD's 768-wide cross-attention, a one-layer 768-wide text encoder over
    the real CLIP tokenizer (77 tokens), SD 1.4's DDIM scheduler, random weights. Which calls a run makes
    and their batch sizes depend on its config and family only, so the counts are SD 1.4's; the layout
    only sets the CPU time it takes to count them."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from backends import load_pipeline
    from backends.loader import ASSETS
    from shapesworld.architectures import UNET_CONFIG

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**UNET_CONFIG, "cross_attention_dim": 768})
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=768, num_hidden_layers=1,
                                        num_attention_heads=12, max_position_embeddings=77))
    tokenizer = CLIPTokenizer.from_pretrained(ASSETS / "pipeline" / "tokenizer", model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)  # SD 1.4's
    vae = load_pipeline("embedded").vae
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def loaded(model: str):
    """A fresh pipeline of one of the project's own models (erase() trains its denoiser in place)."""
    def build():
        from backends import load_pipeline

        return load_pipeline(model)
    return build


# name in the table -> (model name for erase(): its family and profiles; family; target; a fresh pipeline)
MODELS = {
    "embedded": ("embedded", "sd", "star", loaded("embedded")),
    "sd-1.4": ("sd-1.4", "sd", "cat", sd_profiled),
    "sdxl-tiny": ("sdxl-tiny-random", "sdxl", "cat", loaded("sdxl-tiny-random")),
    "flux-tiny": ("flux-tiny-random", "flux", "cat", loaded("flux-tiny-random")),
}


def speed_presets(method: str) -> list[str]:
    from erasure import get_method

    names = get_method(method).PRESETS
    return [p for p in ("fast", "fast-v1", "reference") if p in names or p == "reference"]


def count_run(label: str, method: str, speed: str) -> dict:
    """One run's counts: set-up rows, per-step rows (mean over the steps run) and per-run rows."""
    from erasure import erase, get_method, resolve_config

    model, _, target, build = MODELS[label]
    presets = f"object,{speed}" if speed != "reference" else "object"
    full = resolve_config(method, model, presets, targets=[target])
    lazy = full.centre_codes() < full.bank_codes
    steps = full.steps if lazy or full.steps <= MEASURE else MEASURE
    pipe = build()
    counter = Counter()
    marks: dict[str, dict] = {}

    def on_event(event) -> None:
        if event.kind in ("start", "step"):
            marks[event.kind] = counter.snapshot()  # "step": after the latest step

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out, counter.counting(pipe), cold_cache(out):
        erase(model, method, [target], presets, out + "/run", pipe=pipe, callback=on_event, steps=steps,
              checkpoint_every=0)
    wall = time.perf_counter() - t0
    start, last, end = marks["start"], marks["step"], counter.snapshot()
    total_steps = full.steps
    if get_method(method).SPEC.closed_form:  # UCE: one solve, whatever `steps` says
        steps = total_steps = 1
    per_step = {k: (last[k] - start[k]) / steps for k in end}
    after = {k: end[k] - last[k] for k in end}  # after the last step: AP's search diagnostics over every centre
    per_run = {k: start[k] + per_step[k] * total_steps + after[k] for k in end}
    unet_run = per_run["no_grad"] + per_run["grad"]
    return {"model": label, "method": method, "preset": speed, "steps": total_steps, "steps_run": steps,
            "setup_unet_rows": start["no_grad"] + start["grad"], "final_unet_rows": after["no_grad"] + after["grad"],
            "unet_rows_per_step": round(per_step["no_grad"] + per_step["grad"], 2),
            "grad_rows_per_step": round(per_step["grad"], 2),
            "unet_rows_per_run": round(unet_run), "amortised_rows_per_step": round(unet_run / total_steps, 2),
            "text_rows_per_run": round(per_run["text"]), "vae_calls_per_run": round(per_run["vae"]),
            "wall_s": round(wall, 1), "exact": steps == total_steps}


@contextlib.contextmanager
def cold_cache(folder: str):
    """An empty cache for the run (a latent bank sampled by an earlier run would be loaded, not counted)."""
    from backends import storage

    before = storage.CACHE_ROOT
    storage.CACHE_ROOT = Path(folder) / "cache"
    try:
        yield
    finally:
        storage.CACHE_ROOT = before


def supported(method: str, label: str) -> bool:
    from erasure import get_method

    return MODELS[label][1] in get_method(method).SPEC.families


def merged(name: str, new: list[dict]) -> list[dict]:
    """The rows of results/<name>.json that `new` does not replace (same model, method, preset), then `new`."""
    import json

    from benchmarks.common import RESULTS

    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    key = {(r["model"], r["method"], r["preset"]) for r in new}
    return [r for r in old if (r["model"], r["method"], r["preset"]) not in key] + new


def main() -> None:
    from erasure.registry import list_methods

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", default=None, help="methods to count (default: every registered one)")
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--presets", nargs="*", default=None, help="speed presets to count (default: each the method has)")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of results/<out>.json that this call does not count again (each row has its date)")
    p.add_argument("--out", default="rows")
    p.add_argument("--table", action="store_true",
                   help="print the rows table of docs/benchmarks.md from the stored results, count nothing")
    a = p.parse_args()
    if a.table:
        print(markdown(stored_rows()))
        return
    rows, path = [], None
    for method in a.only or list_methods():
        for label in a.models:
            if not supported(method, label):
                continue
            for speed in speed_presets(method):
                if a.presets is None or speed in a.presets:
                    rows.append({**count_run(label, method, speed), "date": time.strftime("%Y-%m-%d")})
                    print(rows[-1], flush=True)
                    path = save(a.out, merged(a.out, rows) if a.merge else rows)  # after every row: a long
                    # count stopped part-way keeps the rows it finished
    print_table(rows, ["model", "method", "preset", "steps", "setup_unet_rows", "final_unet_rows", "unet_rows_per_step",
                       "unet_rows_per_run", "amortised_rows_per_step", "exact", "wall_s"])
    print(path)


def stored_rows(names: tuple[str, ...] = ("rows", "rows_embedded")) -> list[dict]:
    """Every stored row (a later file's row replaces an earlier one's for the same model, method and preset),
    in MODELS order, then the registry's method order, then fast, fast-v1, reference."""
    import json

    from benchmarks.common import RESULTS
    from erasure.registry import list_methods

    rows = {}
    for name in names:
        for r in json.loads((RESULTS / f"{name}.json").read_text())["rows"]:
            rows[(r["model"], r["method"], r["preset"])] = r
    order = list(MODELS), list_methods(), ["fast", "fast-v1", "reference"]
    return sorted(rows.values(), key=lambda r: tuple(o.index(r[k]) for o, k in zip(order, ("model", "method", "preset"))))


def markdown(rows: list[dict]) -> str:
    """docs/benchmarks.md's rows table: UNet rows before step 1, per step, after the last step, per run, amortised."""
    head = ["| model | method | preset | steps | before step 1 | per step (with grad) | after the last step | per run | "
            "per step, amortised |", "|---|---|---|---|---|---|---|---|---|"]
    body = [f"| {r['model']} | {r['method'].upper()} | `{r['preset']}` | {r['steps']:,} | {r['setup_unet_rows']:,} | "
            f"{r['unet_rows_per_step']:g} ({r['grad_rows_per_step']:g}) | {r['final_unet_rows']:,} | "
            f"{r['unet_rows_per_run']:,} | {r['amortised_rows_per_step']:g} |" for r in rows]
    return "\n".join(head + body)


def save(name: str, rows: list[dict]):
    return write_result(name, {"command": "python -m benchmarks.bench_rows", "measure_steps": MEASURE, "rows": rows})


if __name__ == "__main__":
    main()
