"""MCE settings on the embedded model: the README's MCE table and the comment in erasure/mce.py.

    python -m benchmarks.bench_mce_settings                          # every setting below
    python -m benchmarks.bench_mce_settings --settings '[{"beta": 1.0}]'

Each setting overrides MCE's `object,fast` preset, erases "star", and is scored like bench_erasure
(ESR-1 on star, PSR-1 on the other shapes, 8 seeds). The binarised masks follow float rounding, so
the thread count (OMP_NUM_THREADS) changes the result; it is recorded with the rows.
Writes benchmarks/results/mce_settings.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from backends import SamplerSettings, load_classifier, load_pipeline
from erasure import erase
from evaluation import world_erasure_report

from .common import print_table, write_result

SETTINGS = [{}, {"beta": 0.003}, {"beta": 0.1}, {"beta": 1.0}, {"beta": 1.0, "steps": 300}, {"batch": 8},
            {"init_logit": 0.5}, {"lr": 1.0, "lr_norm": 1.0}, {"relaxation": "straight_through"}]


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
        erase("embedded", "mce", ["star"], "object,fast", tempfile.mkdtemp(prefix="mce_"), pipe=pipe,
              checkpoint_every=0, **overrides)
        wall = time.perf_counter() - t0
        r = world_erasure_report(pipe, classifier, ["star"], a.seeds, sampler)
        rows.append({"setting": json.dumps(overrides) or "{}", "wall_s": round(wall, 1), "esr1": round(r["esr1"], 1),
                     "psr1": round(r["psr1"], 1), "per_shape_top1": r["per_shape_top1"]})
        print_table(rows[-1:], ["setting", "wall_s", "esr1", "psr1"])
    print("wrote", write_result("mce_settings", {"seeds": a.seeds, "sampler": vars(sampler), "rows": rows}))


if __name__ == "__main__":
    main()
