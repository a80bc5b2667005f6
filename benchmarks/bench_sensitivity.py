"""Sensitivity spectrum on the embedded model: the paper's finding, the cache and the proxy.

    python -m benchmarks.bench_sensitivity

1. Erases "star" and "heart" with ESD (fast preset; not timed).
2. Spectrum of the star erasure over the `world` vocabulary (k = 8) with an empty cache, then of
   the heart erasure over the same vocabulary: the second reuses the original model's samples.
   Bar: the second is >= 1.8x faster; the erased shape has the largest delta and the neutral
   concepts are not at the top.
3. Proxy D(c) alone (default fixed set: 2 timesteps x 1 latent) over the first 5,000 clip-words
   (bar: <= 60 s on CPU); its Spearman correlation to delta is reported for the world spectra.
Writes benchmarks/results/sensitivity.json and the spectrum's figures to benchmarks/results/sensitivity/.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from backends import load_pipeline
from sensitivity import SpectrumConfig, compute_spectrum, quick_erasure, save_spectrum, summary

from .common import RESULTS, print_table, write_result


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--proxy-words", type=int, default=5000)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_sensitivity_"))
    try:
        pipe = load_pipeline("embedded")
        runs = {t: quick_erasure("embedded", [t], work / t, pipe=pipe).path for t in ("star", "heart")}
        frames, rows = {}, []
        for target in ("star", "heart"):  # same vocabulary and seeds: the second run hits the cache
            cfg = SpectrumConfig(targets=[target], vocab="world", k=a.k)
            frames[target], wall = timed(lambda c=cfg, t=target: compute_spectrum(
                "embedded", runs[t], c, pipe=pipe, cache_root=work / "cache"))
            s = summary(frames[target])
            rows.append({"run": f"spectrum, target {target}", "concepts": s["concepts"], "wall_s": round(wall, 1),
                         "target_rank": s["target_rank"], "null_rank": s["null_rank"],
                         "photo_rank": s["neutral_rank"], "spearman": s["spearman_proxy_delta"]})
        cfg = SpectrumConfig(targets=["star"], vocab="clip-words", size=a.proxy_words, proxy_only=True, chunk=64)
        proxy, wall = timed(lambda: compute_spectrum("embedded", runs["star"], cfg, pipe=pipe))
        rows.append({"run": f"proxy only, {a.proxy_words} clip-words", "concepts": len(proxy), "wall_s": round(wall, 1)})
        out = save_spectrum(frames["star"], RESULTS / "sensitivity", SpectrumConfig(targets=["star"], vocab="world",
                            k=a.k).resolved("embedded"), "embedded", "ESD fast on star (benchmark)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ["run", "concepts", "wall_s", "target_rank", "null_rank", "photo_rank", "spearman"])
    cold, warm = rows[0]["wall_s"], rows[1]["wall_s"]
    bars = {"cached_second_target_speedup": round(cold / warm, 2), "speedup_bar": 1.8,
            "proxy_5000_words_s": rows[2]["wall_s"], "proxy_bar_s": 60.0,
            "star_is_top": rows[0]["target_rank"] == 1,
            "neutral_not_in_top_quarter": min(rows[0]["null_rank"], rows[0]["photo_rank"]) > rows[0]["concepts"] // 4}
    print(bars)
    path = write_result("sensitivity", {"rows": rows, "bars": bars, "figures": str(out / "figures"),
                                        "top10_star": frames["star"].nlargest(10, "delta")[["concept", "delta"]]
                                        .to_dict("records")})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
