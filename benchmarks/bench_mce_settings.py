"""MCE settings on the embedded model: the README's MCE table and the comment in erasure/methods/mce.py.

    python -m benchmarks.bench_mce_settings                          # every setting below
    python -m benchmarks.bench_mce_settings --settings '[{"beta": 1.0}]'

Each setting overrides MCE's `object,fast` preset on the embedded profile (masks on FFN, norm and resnet
GroupNorm channels, beta 0.1; SEED below restores the published sites and beta), erases "star", and is scored like bench_erasure
(ESR-1 on star, PSR-1 on the other shapes, 8 seeds). The binarised masks follow float rounding, so
the thread count (OMP_NUM_THREADS) changes the result; it is recorded with the rows.
Writes benchmarks/results/mce_settings.json, merging: a row replaces the stored row of the same setting
and thread count, and rows of other settings are kept (so separate runs add up to one table).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from backends import SamplerSettings, load_classifier, load_pipeline
from erasure import erase
from erasure.masks import SEED_KINDS, masked_fraction
from evaluation import world_erasure_report

from .common import RESULTS, print_table, write_result

SEED = {"sites": list(SEED_KINDS), "beta": 0.01}  # the published mask sites and beta (the embedded profile's until session 6)
SETTINGS = [{}, {"seed": 1}, {"seed": 2}] + [{**SEED, **s} for s in (
    {}, {"seed": 1}, {"seed": 2}, {"beta": 0.003}, {"beta": 0.1}, {"beta": 1.0}, {"beta": 1.0, "steps": 300},
    {"batch": 8}, {"init_logit": 0.5}, {"lr": 1.0, "lr_norm": 1.0}, {"lr": 0.1, "lr_norm": 0.1},
    {"lr": 0.1, "lr_norm": 0.1, "seed": 1}, {"steps": 400}, {"ddim_steps": 8},
    {"relaxation": "straight_through"}, {"relaxation": "hard_concrete"},
    {"relaxation": "hard_concrete", "init_logit": 3.0}, {"relaxation": "hard_concrete", "beta": 0.001},
    {"relaxation": "hard_concrete", "init_logit": 0.0, "lr": 1.0, "lr_norm": 1.0})] + [
    {"sites": ["ffn", "norm", "resnet"], "beta": 0.01}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", type=json.loads, default=SETTINGS, help="JSON list of override dicts")
    p.add_argument("--seeds", type=int, default=8)
    a = p.parse_args()
    sampler, classifier = SamplerSettings(steps=20, guidance=5.0), load_classifier()
    rows = []
    for overrides in a.settings:
        torch.manual_seed(0)
        pipe = load_pipeline("embedded")
        t0 = time.perf_counter()
        run = erase("embedded", "mce", ["star"], "object,fast", tempfile.mkdtemp(prefix="mce_"), pipe=pipe,
                    checkpoint_every=0, **overrides)
        wall = time.perf_counter() - t0
        r = world_erasure_report(pipe, classifier, ["star"], a.seeds, sampler)
        rows.append({"setting": json.dumps(overrides, sort_keys=True), "threads": torch.get_num_threads(),
                     "wall_s": round(wall, 1), "esr1": round(r["esr1"], 1), "psr1": round(r["psr1"], 1),
                     "masked_pct": round(100 * masked_fraction(run.result()), 2), "per_shape_top1": r["per_shape_top1"]})
        print_table(rows[-1:], ["setting", "threads", "wall_s", "esr1", "psr1", "masked_pct"])
        stored = merged(rows, a.seeds)  # written after every setting: a stopped sweep keeps what it measured
        write_result("mce_settings", {"seeds": a.seeds, "sampler": vars(sampler), "rows": stored})
    print("wrote", RESULTS / "mce_settings.json")


def merged(rows: list[dict], seeds: int) -> list[dict]:
    """Stored rows of the same seed count, with `rows` replacing those of the same setting and threads."""
    path = RESULTS / "mce_settings.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = [r for r in old.get("rows", []) if old.get("seeds") == seeds and "threads" in r]
    new = {(r["setting"], r["threads"]) for r in rows}
    return [r for r in keep if (r["setting"], r["threads"]) not in new] + rows


if __name__ == "__main__":
    main()
