"""The proxy-guided spectrum against the full one, on a vocabulary where full delta is affordable.

    python -m benchmarks.bench_guided                      # world-captions: 1,403 concepts, k = 8
    python -m benchmarks.bench_guided --target heart --out guided_heart   # a second target
    python -m benchmarks.bench_guided --resplit guided_heart   # only re-score the splits of a stored run
    python -m benchmarks.bench_guided --size 60 --k 1 --steps 4 --top 6 --random 3 --out guided_smoke  # code path

Erases `--target` (default "star") from the embedded model with AP (`object,fast`, not timed), then computes over the
`world-captions` vocabulary (1,400 caption phrases plus the target, "" and "a photo"):
1. the proxy-guided spectrum (D(c) for every concept, delta for the targets, the neutral concepts, the
   `--top` concepts of largest D(c), the `--text` of largest text similarity, `--random` others and the
   `--near` nearest to the most damaged), from an empty cache;
2. the full spectrum (delta for every concept), from another empty cache.
Reports the share of concepts the guided run sampled, the recall of the full spectrum's top-10 (by
delta, among the vocabulary's concepts) in the guided run's sampled set and in its own top-10, what its
calibration sample estimated it missed, and both wall times. Bar: recall >= 9/10 with delta sampled for
<= 15 % of >= 1,000 concepts. Writes benchmarks/results/guided.json, with every concept's full-spectrum
delta, D(c) and text_sim (`full`), and the recall other top/random splits of the same sampled count would
have had (`splits`: exact, since a concept's delta does not depend on which others are sampled with it).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from backends import load_pipeline
from erasure import erase
from sensitivity import SpectrumConfig, compute_spectrum
from sensitivity.guided import choose, near
from sensitivity.rows import Models

from .common import RESULTS, print_table, write_result

TOP = 10


def recall(full, guided) -> dict:
    """How many of the full spectrum's top-10 vocabulary concepts the guided run sampled, and how many
    are in its own top-10 (both over concepts of kind "concept": targets and neutral ones are always in)."""
    concepts = full[full["kind"] == "concept"]
    truth = set(concepts.nlargest(TOP, "delta")["concept"])
    sampled = set(guided.loc[guided["sampled"] != "", "concept"])
    ranked = guided[(guided["kind"] == "concept") & guided["delta"].notna()]
    return {"recall_sampled": len(truth & sampled), "recall_top10": len(truth & set(ranked.nlargest(TOP, "delta")["concept"])),
            "missed": sorted(truth - sampled)}


def split_recall(full, features, config: SpectrumConfig, sampled: int) -> list[dict]:
    """For other splits of the same sampled count into top / text / random / near: the concepts `choose` and `near`
    would pick from the full frame (the guided run's pass 1 computes the same D(c), and a sampled concept's
    delta is the full run's) and how many of the full top-10 they hold. features: [n, d] the concepts' text."""
    rows = full.to_dict("records")
    free = sampled - int((full["kind"] != "concept").sum())  # what top + text + random + near share
    truth = set(full[full["kind"] == "concept"].nlargest(TOP, "delta")["concept"])
    shares = [(t, x, n) for t in (0.25, 0.5, 0.75, 1.0) for x in (0, 0.25, 0.5) for n in (0, 0.25) if t + x + n <= 1]
    out = []
    for t, x, n in shares:
        top, text, n_near = round(t * free), round(x * free), round(n * free)
        cfg = dataclasses.replace(config, delta_top=top, delta_text=text, delta_random=free - top - text - n_near)
        picked = choose(rows, cfg)
        picked |= near(rows, picked, features, n_near)
        out.append({"top": top, "text": text, "random": cfg.delta_random, "near": n_near,
                    "recall_sampled": len(truth & {rows[i]["concept"] for i in picked})})
    return out


def text_features(pipe, full, config: SpectrumConfig):
    """[n, d] the text directions of the frame's concepts, as the spectrum's "near" pass sees them."""
    return Models(pipe, None, None, None).concept_features(list(full["concept"]), config.resolved("embedded"))


def resplit(name: str) -> None:
    """Re-score `splits` of a stored run from its full frame (a sampled concept's delta is the full run's)."""
    path = RESULTS / f"{name}.json"
    stored = json.loads(path.read_text())
    row, full = stored["row"], pd.DataFrame(stored["full"])
    base = SpectrumConfig(targets=[row["target"]], vocab=row["vocab"], k=row["k"])
    splits = split_recall(full, text_features(load_pipeline("embedded"), full, base), base, row["sampled"])
    print_table(splits, list(splits[0]))
    print("wrote", write_result(name, {**stored, "splits": splits}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="star", help="the world shape AP erases")
    p.add_argument("--vocab", default="world-captions")
    p.add_argument("--size", type=int, default=None, help="first N concepts of the vocabulary")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--top", type=int, default=130, help="delta for the N concepts of largest D(c)")
    p.add_argument("--random", type=int, default=70, help="and for N others drawn at random (calibration)")
    p.add_argument("--text", type=int, default=0, help="and for the N others of largest text similarity to the target")
    p.add_argument("--near", type=int, default=0, help="and then for the N nearest (in text) to the most damaged")
    p.add_argument("--out", default="guided", help="result name: benchmarks/results/<out>.json")
    p.add_argument("--resplit", metavar="NAME", help="recompute only `splits` of benchmarks/results/NAME.json from "
                   "its stored full frame (no sampling), e.g. after a selection pass was added")
    a = p.parse_args()
    if a.resplit:
        return resplit(a.resplit)
    work = Path(tempfile.mkdtemp(prefix="bench_guided_"))
    try:
        pipe = load_pipeline("embedded")
        run = erase("embedded", "ap", [a.target], "object,fast", work / f"ap_{a.target}", pipe=copy.deepcopy(pipe),
                    checkpoint_every=0).path
        base = SpectrumConfig(targets=[a.target], vocab=a.vocab, size=a.size, k=a.k, steps=a.steps)
        frames, walls = {}, {}
        for name, cfg in (("guided", SpectrumConfig(**{**vars(base), "delta_top": a.top, "delta_random": a.random,
                                                             "delta_near": a.near, "delta_text": a.text})),
                          ("full", base)):
            t0 = time.perf_counter()
            frames[name] = compute_spectrum("embedded", run, cfg, pipe=pipe, cache_root=work / f"cache_{name}")
            walls[name] = round(time.perf_counter() - t0, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    guided, full = frames["guided"], frames["full"]
    calib = guided.attrs["guided"]
    row = {"target": a.target, "vocab": a.vocab, "concepts": len(full), "k": a.k, "top": a.top, "random": a.random,
           "text": a.text, "near": a.near, "sampled": calib["sampled"],
           "sampled_pct": round(100 * calib["sampled"] / len(full), 1),
           **recall(full, guided), "expected_missed": calib["expected_missed"],
           "guided_wall_s": walls["guided"], "full_wall_s": walls["full"],
           "full_over_guided_wall": round(walls["full"] / walls["guided"], 2)}
    print_table([row], list(row))
    bars = {"recall_bar": 9, "sampled_pct_bar": 15.0, "concepts_bar": 1000,
            "passes": row["recall_sampled"] >= 9 and row["sampled_pct"] <= 15.0 and len(full) >= 1000}
    top10 = full[full["kind"] == "concept"].nlargest(TOP, "delta")[["concept", "delta", "proxy_rank"]]
    splits = split_recall(full, text_features(pipe, full, base), base, calib["sampled"])
    print_table(splits, list(splits[0]))
    columns = full[["concept", "kind", "delta", "proxy", "text_sim"]].round(4)
    print("wrote", write_result(a.out, {"row": row, "bars": bars, "full_top10": top10.to_dict("records"),
                                        "splits": splits, "full": columns.to_dict("records")}))


if __name__ == "__main__":
    main()
