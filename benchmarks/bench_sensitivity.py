"""Sensitivity spectrum on the embedded model: the paper's finding, the cache and the proxy.

    python -m benchmarks.bench_sensitivity

1. Erases "star" and "heart" with AP (`object,fast`, the product's default) and "star" with ESD
   (`object,fast`); the erasures are not timed.
2. Spectra over the `world` vocabulary (k = 8): AP-star with an empty cache, then AP-heart and
   ESD-star, which reuse the original model's samples. Bars: the cached second target is >= 1.8x
   faster; after AP erases star, star has the largest delta and the neutral concepts are not in the
   top quarter. The ESD row shows what AP's preservation prevents (look-alike shapes hurt more).
3. Proxy D(c) alone over the first 5,000 clip-words, float32 (reference) and bfloat16 autocast (fast)
   in the same run (bar: <= 60 s on CPU), with the rank agreement of the two.
Writes benchmarks/results/sensitivity.json and the AP-star spectrum's table and figures to
benchmarks/results/sensitivity/.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import time
from pathlib import Path

from backends import load_pipeline
from erasure import erase
from sensitivity import SpectrumConfig, compute_spectrum, quick_erasure, save_spectrum, summary
from sensitivity.spectrum import spearman

from .common import RESULTS, print_table, write_result


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def spectrum_row(name: str, df, wall: float) -> dict:
    s = summary(df)
    return {"run": name, "concepts": s["concepts"], "wall_s": round(wall, 1), "target_rank": s["target_rank"],
            "null_rank": s["null_rank"], "photo_rank": s["neutral_rank"], "spearman": s["spearman_proxy_delta"],
            "top3": ", ".join(s["top5"][:3])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--proxy-words", type=int, default=5000)
    a = p.parse_args()
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
        proxies = {}
        for dtype in ("float32", "bfloat16"):
            cfg = SpectrumConfig(targets=["star"], vocab="clip-words", size=a.proxy_words, proxy_only=True, chunk=64,
                                 proxy_dtype=dtype)
            proxies[dtype], wall = timed(lambda c=cfg: compute_spectrum("embedded", runs["AP star"], c, pipe=pipe))
            rows.append({"run": f"proxy only, {a.proxy_words} clip-words, {dtype}", "concepts": len(proxies[dtype]),
                         "wall_s": round(wall, 1)})
        agreement = spearman(proxies["float32"]["proxy"], proxies["bfloat16"]["proxy"])
        out = save_spectrum(frames["AP star"], RESULTS / "sensitivity", SpectrumConfig(
            targets=["star"], vocab="world", k=a.k).resolved("embedded"), "embedded", "AP object,fast on star (benchmark)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ["run", "concepts", "wall_s", "target_rank", "null_rank", "photo_rank", "spearman", "top3"])
    ap = rows[0]
    bars = {"cached_second_target_speedup": round(rows[0]["wall_s"] / rows[1]["wall_s"], 2), "speedup_bar": 1.8,
            "proxy_5000_words_s_float32": rows[3]["wall_s"], "proxy_5000_words_s_bfloat16": rows[4]["wall_s"],
            "proxy_float32_over_bfloat16": round(rows[3]["wall_s"] / rows[4]["wall_s"], 2),
            "proxy_rank_agreement_bfloat16_vs_float32": round(agreement, 4), "proxy_bar_s": 60.0,
            "star_is_top_after_ap": ap["target_rank"] == 1,
            "neutral_not_in_top_quarter_after_ap": min(ap["null_rank"], ap["photo_rank"]) > ap["concepts"] // 4}
    print(bars)
    path = write_result("sensitivity", {"rows": rows, "bars": bars, "figures": str(out.relative_to(RESULTS.parent.parent)),
                                        "top10_ap_star": frames["AP star"].nlargest(10, "delta")[["concept", "delta"]]
                                        .to_dict("records")})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
