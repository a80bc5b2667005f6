"""Erasure on the embedded model: ESD, UCE, CA, MCE and AP (with AP's preservation variants), side by side.

    python -m benchmarks.bench_erasure                 # everything, reference preset included (slow)
    python -m benchmarks.bench_erasure --skip-reference
    python -m benchmarks.bench_erasure --rows "AP (fast)" "AP (reference)" --seeds 16   # the speed bar only
    python -m benchmarks.bench_erasure --rows "ESD (fast)" UCE "CA (fast)" "AP (fast)" "MCE (fast)" \
        --out erasure_methods                                                            # one row per method
    python -m benchmarks.bench_erasure --rows "ESD (fast)" "ESD (fast, batch 4 x 50 steps)" \
        "ESD (fast, batch 4 x 100 steps)" "AP (fast)" "AP (fast, batch 4 x 150 steps)" \
        "AP (fast, batch 4 x 300 steps)" --seeds 16 --out erasure_batch        # training on 4 (z_t, t) per step

Each row erases one shape (default "star") and scores ESR-1/5 on it and PSR-1/5 on the other
shapes with the world classifier over "a {colour} {shape}" prompts x seeds, and the embedded CLIP's
score of each image with its prompt, averaged over the erased shape's prompts (clip_e) and the
other shapes' (clip_k). The `fast` and `reference` AP presets run in the same invocation and their
wall-time ratio is reported.
Writes benchmarks/results/erasure.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from backends import SamplerSettings, load_classifier, load_pipeline
from erasure import erase
from evaluation import world_erasure_report
from evaluation.scorers import get_scorer

from .common import print_table, write_result

ROWS = [  # name, method, presets, overrides
    ("ESD (fast)", "esd", "object,fast", {}),
    ("UCE", "uce", "object", {}),
    ("CA (fast)", "ca", "object,fast", {}),
    ("MCE (fast)", "mce", "object,fast", {}),
    ("AP: preserve nothing", "ap", "object,fast", {"preserve": "none"}),
    ("AP: preserve \"\"", "ap", "object,fast", {"preserve": "neutral"}),
    ("AP: preserve \"heart\"", "ap", "object,fast", {"preserve": "fixed", "fixed_concept": "heart"}),
    ("AP (fast)", "ap", "object,fast", {}),
    ("AP (fast-v1)", "ap", "object,fast-v1", {}),  # the previous fast: the same schedule, z_t sampled per draw
    ("AP (reference)", "ap", "object,reference", {}),
    # issue "batch everywhere it is free": the same number of (z_t, t) rows as the fast preset, in batches of 4
    # per step (a quarter of the updates), and twice that; compared with their batch-1 row in `batch_vs_one`
    ("ESD (fast, batch 4 x 50 steps)", "esd", "object,fast", {"batch": 4, "steps": 50}),
    ("ESD (fast, batch 4 x 100 steps)", "esd", "object,fast", {"batch": 4, "steps": 100}),
    ("AP (fast, batch 4 x 150 steps)", "ap", "object,fast", {"batch": 4, "steps": 150}),
    ("AP (fast, batch 4 x 300 steps)", "ap", "object,fast", {"batch": 4, "steps": 300}),
]


METRICS = ("esr1", "esr5", "psr1", "psr5", "clip_erased", "clip_kept")
COLUMNS = ["method", "steps", "wall_s", "esr1", "esr5", "psr1", "psr5", "clip_erased", "clip_kept"]


def _metrics(report: dict) -> dict:
    return {k: round(report[k], 1) for k in METRICS}


def run_row(name, method, presets, overrides, target, seeds, settings, classifier, scorer, workdir: Path) -> dict:
    pipe = load_pipeline("embedded")
    t0 = time.perf_counter()
    run = erase("embedded", method, [target], presets, workdir / name.replace(" ", "_").replace('"', ""), pipe=pipe,
                checkpoint_every=0, **overrides)
    wall = time.perf_counter() - t0
    report = world_erasure_report(pipe, classifier, [target], seeds, settings, scorer)
    cfg = run.record["config"]
    row = {"method": name, "steps": cfg["steps"], "lr": cfg["lr"], "wall_s": round(wall, 1), **_metrics(report),
           "per_shape_top1": report["per_shape_top1"]}
    if method == "mce":  # MCE's point: how few neurons it needed
        from erasure.masks import masked_fraction

        row["masked_pct"] = round(100 * masked_fraction(run.result()), 2)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="star")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--rows", nargs="+", metavar="NAME", help=f"only these rows (of: {'; '.join(r[0] for r in ROWS)})")
    p.add_argument("--out", default="erasure", help="result name: benchmarks/results/<out>.json")
    a = p.parse_args()
    unknown = set(a.rows or []) - {r[0] for r in ROWS}
    if unknown:
        p.error(f"unknown row(s) {sorted(unknown)}; valid: {'; '.join(r[0] for r in ROWS)}")
    torch.manual_seed(0)
    settings = SamplerSettings(steps=20, guidance=5.0)
    classifier, scorer = load_classifier(), get_scorer("embedded")
    base = world_erasure_report(load_pipeline("embedded"), classifier, [a.target], a.seeds, settings, scorer)
    rows = [{"method": "SD (base)", "steps": 0, "wall_s": 0.0, **_metrics(base), "per_shape_top1": base["per_shape_top1"]}]
    workdir = Path(tempfile.mkdtemp(prefix="bench_erasure_"))
    try:
        for name, method, presets, overrides in ROWS:
            if (a.skip_reference and "reference" in presets) or (a.rows and name not in a.rows):
                continue
            rows.append(run_row(name, method, presets, overrides, a.target, a.seeds, settings, classifier, scorer,
                                workdir))
            print_table(rows[-1:], COLUMNS)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for r in rows:
        r["psr1_drop_vs_base"] = round(rows[0]["psr1"] - r["psr1"], 1)
    print()
    print_table(rows, [*COLUMNS, "psr1_drop_vs_base"])
    byname = {r["method"]: r for r in rows}
    summary = {}
    if "AP (reference)" in byname and "AP (fast)" in byname:
        fast, ref = byname["AP (fast)"], byname["AP (reference)"]
        summary = {"reference_over_fast_wall": round(ref["wall_s"] / fast["wall_s"], 2),
                   "esr1_gap": round(abs(ref["esr1"] - fast["esr1"]), 1), "psr1_gap": round(abs(ref["psr1"] - fast["psr1"]), 1)}
        print(f"\nfast vs reference: {summary}")
    batched = batch_vs_one(byname)
    if batched:
        print(f"\nbatch 4 vs batch 1: {batched}")
    print("wrote", write_result(a.out, {"target": a.target, "seeds": a.seeds, "sampler": vars(settings), "rows": rows,
                                            "fast_vs_reference": summary, "batch_vs_one": batched}))


def batch1_name(name: str) -> str | None:
    """The batch-1 row a batched row is compared with ("AP (fast, batch 4 x 150 steps)" -> "AP (fast)"), or None."""
    return name.split(", batch")[0] + ")" if ", batch" in name else None


def batch_vs_one(byname: dict) -> dict:
    """Each batched row against the batch-1 row of its method measured in the same run ("ESD (fast)" or
    "AP (fast)"): wall-time ratio and ESR-1 / PSR-1 differences (positive = the batched row is higher)."""
    out = {}
    for name, row in byname.items():
        one = byname.get(batch1_name(name))
        if one is not None:
            out[name] = {"wall_over_batch1": round(row["wall_s"] / one["wall_s"], 2),
                         "esr1_diff": round(row["esr1"] - one["esr1"], 1), "psr1_diff": round(row["psr1"] - one["psr1"], 1)}
    return out


if __name__ == "__main__":
    main()
