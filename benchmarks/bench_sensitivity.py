"""Sensitivity spectrum on the embedded model: the paper's finding, the cache and the proxy.

    python -m benchmarks.bench_sensitivity

1. Erases "star" and "heart" with AP (`object,fast`, the product's default) and "star" with ESD
   (`object,fast`); the erasures are not timed.
2. Spectra over the `world` vocabulary (k = 8): AP-star with an empty cache, then AP-heart and
   ESD-star, which reuse the original model's samples, then AP-star again with both models sampling under
   bfloat16 autocast (`precision="bfloat16"`: a cache of its own, so empty too). Bars: the cached second
   target is >= 1.8x faster; after AP erases star, star has the largest delta and the neutral concepts
   are not in the top quarter. The issue's full-delta bar (2x end to end) is set against the bf16 row,
   the one new path a CPU has; its rank agreement with float32 says what bf16 does to delta. The ESD row
   shows what AP's preservation prevents (look-alike shapes hurt more).
3. Proxy D(c) alone over the first 5,000 clip-words, float32 (reference) and bfloat16 autocast (fast)
   in the same run (bar: <= 60 s on CPU), with the rank agreement of the two.
4. delta sampling speed, the same 64 images (8 world concepts x k seeds, their spectrum prompts) three
   ways in one run: one call per concept (k images per call), one call for all 64 (the spectrum's chunk,
   SpectrumConfig.chunk x k: how every spectrum has sampled since its first version, so this is the
   issue's "today"), and that call in bfloat16 autocast (the bar: 3x the chunk's images/s); images/s of
   each (median of 3 rounds taking the ways in turn; one run of each varied by up to 20 % on a shared
   2-core machine), the ratios, and the largest pixel difference between the first two (batching must not change
   an image). `--rate-only` runs only this part and updates the stored result's `sampling` entry.
Writes benchmarks/results/sensitivity.json and the AP-star spectrum's table and figures to
benchmarks/results/sensitivity/.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from backends import generate, load_pipeline
from backends.precision import autocast
from backends.storage import write_text
from erasure import erase
from sensitivity import SpectrumConfig, compute_spectrum, quick_erasure, save_spectrum, summary
from sensitivity.rows import seed_prompts
from sensitivity.spectrum import spearman

from .common import RESULTS, environment, print_table, write_result

RATE_CONCEPTS = ("star", "heart", "red", "blue", "striped", "outlined", "moon", "cross")  # 8 = SpectrumConfig.chunk


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def spectrum_row(name: str, df, wall: float) -> dict:
    s = summary(df)
    return {"run": name, "concepts": s["concepts"], "wall_s": round(wall, 1), "target_rank": s["target_rank"],
            "null_rank": s["null_rank"], "photo_rank": s["neutral_rank"], "spearman": s["spearman_proxy_delta"],
            "top3": ", ".join(s["top5"][:3])}


def sampling_rate(pipe, concepts=RATE_CONCEPTS, k: int = 8, steps: int = SpectrumConfig.steps, repeats: int = 3) -> dict:
    """Images/s of delta sampling on the base model, the same len(concepts) * k images three ways (see the
    module's part 4): each way once untimed (allocator, thread pools), then `repeats` timed rounds taking
    the ways in turn, so a slow spell of a shared machine falls on all of them; the median wall counts."""
    cfg = SpectrumConfig(targets=["star"], k=k, steps=steps).resolved("embedded")
    per = [(seed_prompts(c, cfg), cfg.seeds()) for c in concepts]  # [n] of (k prompts, k seeds)
    prompts, seeds = [p for ps, _ in per for p in ps], [s for _, ss in per for s in ss]

    def per_concept():
        return np.concatenate([generate(pipe, ps, ss, cfg.sampler(), batch_size=k) for ps, ss in per])

    def chunk():
        return generate(pipe, prompts, seeds, cfg.sampler(), batch_size=len(prompts))

    def chunk_bf16():
        with autocast("bfloat16", "cpu"):  # as the spectrum samples with precision="bfloat16"
            return chunk()

    ways = {"per_concept": per_concept, "chunk": chunk, "chunk_bfloat16": chunk_bf16}
    for fn in ways.values():
        fn()
    images, walls = {}, {name: [] for name in ways}
    for _ in range(repeats):
        for name, fn in ways.items():
            images[name], wall = timed(fn)
            walls[name].append(wall)
    out = {f"{name}_images_per_s": round(len(prompts) / float(np.median(w)), 2) for name, w in walls.items()}
    out["spread_images_per_s"] = {name: [round(len(prompts) / x, 2) for x in w] for name, w in walls.items()}
    for name, base in (("chunk", "per_concept"), ("chunk_bfloat16", "chunk")):
        out[f"{name}_over_{base}"] = round(out[f"{name}_images_per_s"] / out[f"{base}_images_per_s"], 2)
    diff = np.abs(images["chunk"].astype(int) - images["per_concept"].astype(int))
    out |= {"images": len(prompts), "k": k, "steps": steps, "max_pixel_diff_chunk_vs_per_concept": int(diff.max()),
            "repeats": repeats, "bar_over_chunk": 3.0}
    return out


def rate_only() -> None:
    """Part 4 alone, written into the stored result; the other parts keep their numbers and their
    environment record, this part gets its own."""
    path = RESULTS / "sensitivity.json"
    stored = json.loads(path.read_text())
    stored["sampling"] = {"environment": environment(), **sampling_rate(load_pipeline("embedded"))}
    print(stored["sampling"])
    text = json.dumps(stored, indent=2) + "\n"  # as write_result writes, without replacing the stored environment
    print(f"written: {write_text(path, text)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--proxy-words", type=int, default=5000)
    p.add_argument("--rate-only", action="store_true", help="only part 4 (delta sampling speed)")
    a = p.parse_args()
    if a.rate_only:
        return rate_only()
    work = Path(tempfile.mkdtemp(prefix="bench_sensitivity_"))
    try:
        pipe = load_pipeline("embedded")
        runs = {f"AP {t}": erase("embedded", "ap", [t], "object,fast", work / f"ap_{t}", pipe=copy.deepcopy(pipe),
                                 checkpoint_every=0).path for t in ("star", "heart")}
        runs["ESD star"] = quick_erasure("embedded", ["star"], work / "esd_star", pipe=pipe).path
        frames, rows = {}, []
        for name in ("AP star", "AP heart", "ESD star"):  # same vocabulary and seeds: later runs hit the cache
            cfg = SpectrumConfig(targets=[name.split()[1]], vocab="world", k=a.k)
            frames[name], wall = timed(lambda c=cfg, n=name: compute_spectrum(
                "embedded", runs[n], c, pipe=pipe, cache_root=work / "cache"))
            rows.append(spectrum_row(f"spectrum, {name}" + (" (empty cache)" if not rows else ""), frames[name], wall))
        cfg = SpectrumConfig(targets=["star"], vocab="world", k=a.k, precision="bfloat16")  # its own cache: empty
        frames["AP star bf16"], wall = timed(lambda: compute_spectrum("embedded", runs["AP star"], cfg, pipe=pipe,
                                                                      cache_root=work / "cache"))
        rows.append(spectrum_row("spectrum, AP star, bf16 sampling (empty cache)", frames["AP star bf16"], wall))
        proxies = {}
        for dtype in ("float32", "bfloat16"):
            cfg = SpectrumConfig(targets=["star"], vocab="clip-words", size=a.proxy_words, proxy_only=True, chunk=64,
                                 proxy_dtype=dtype)
            proxies[dtype], wall = timed(lambda c=cfg: compute_spectrum("embedded", runs["AP star"], c, pipe=pipe))
            rows.append({"run": f"proxy only, {a.proxy_words} clip-words, {dtype}", "concepts": len(proxies[dtype]),
                         "wall_s": round(wall, 1)})
        agreement = spearman(proxies["float32"]["proxy"], proxies["bfloat16"]["proxy"])
        sampling = sampling_rate(pipe, k=a.k)
        recorded = SpectrumConfig(targets=["star"], vocab="world", k=a.k).resolved("embedded").on_device("cpu")
        out = save_spectrum(frames["AP star"], RESULTS / "sensitivity", recorded, "embedded",
                            "AP object,fast on star (benchmark)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ["run", "concepts", "wall_s", "target_rank", "null_rank", "photo_rank", "spearman", "top3"])
    ap, bf16 = rows[0], rows[3]
    f32, bf = frames["AP star"].set_index("concept")["delta"], frames["AP star bf16"].set_index("concept")["delta"]
    bars = {"cached_second_target_speedup": round(ap["wall_s"] / rows[1]["wall_s"], 2), "speedup_bar": 1.8,
            "full_delta_bfloat16_speedup": round(ap["wall_s"] / bf16["wall_s"], 2), "full_delta_bar": 2.0,
            "delta_rank_agreement_bfloat16_vs_float32": round(spearman(f32, bf[f32.index]), 4),
            "top10_shared_bfloat16_vs_float32": len(set(f32.nlargest(10).index) & set(bf.nlargest(10).index)),
            "proxy_5000_words_s_float32": rows[4]["wall_s"], "proxy_5000_words_s_bfloat16": rows[5]["wall_s"],
            "proxy_float32_over_bfloat16": round(rows[4]["wall_s"] / rows[5]["wall_s"], 2),
            "proxy_rank_agreement_bfloat16_vs_float32": round(agreement, 4), "proxy_bar_s": 60.0,
            "star_is_top_after_ap": ap["target_rank"] == 1,
            "neutral_not_in_top_quarter_after_ap": min(ap["null_rank"], ap["photo_rank"]) > ap["concepts"] // 4}
    print(bars)
    print(sampling)
    path = write_result("sensitivity", {"rows": rows, "bars": bars, "sampling": sampling,
                                        "figures": str(out.relative_to(RESULTS.parent.parent)),
                                        "top10_ap_star": frames["AP star"].nlargest(10, "delta")[["concept", "delta"]]
                                        .to_dict("records")})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
