"""Does leaving the target's inflections out of AP's search space stop AP preserving its own target?

    python -m benchmarks.bench_search_exclusion                 # erase "shadowed", 2 seeds per prompt
    python -m benchmarks.bench_search_exclusion --style outline

AP (`style,fast`) erases a rendering style's caption word twice on the embedded model: with only the
literal word left out of its search space (the rule before session 17, `exclude_inflections=False`) and
with every word sharing its stem left out too (the default; "shadow" when erasing "shadowed",
docs/design.md §3.3), both searching every world word (`--centres 100`), so they differ only by those
words. Per run: the world classifier's style head on "a {style} {colour} {shape}" prompts x seeds (ESR-1
on the erased style; for each kept style the share still drawn in it and the share drawn in the erased
style, the leak), the shapes kept, the search space, and the final argmax
concept. Writes benchmarks/results/search_exclusion.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from backends import SamplerSettings, generate, load_classifier, load_pipeline
from erasure import erase
from erasure.diagnostics import summary
from shapesworld.captions import STYLE_WORDS, prompt
from shapesworld.data import to_tensor
from shapesworld.world import COLOURS, SHAPES, STYLES

from .common import print_table, write_result

EVAL = SamplerSettings(steps=20, guidance=5.0)  # the report's sampler


def style_breakdown(pipe, classifier, erased: str, seeds: int) -> dict:
    """Per style: the share of its images the style head assigns to it and to the erased style; shape kept."""
    items = [(st, sh, prompt(sh, c, style=st), sd) for st in STYLES for sh in SHAPES for c in COLOURS
             for sd in range(seeds)]
    images = generate(pipe, [p for *_, p, _ in items], [sd for *_, sd in items], EVAL)
    pred = classifier.predict(to_tensor(images))
    style, shape = pred["style"].argmax(-1).numpy(), pred["shape"].argmax(-1).numpy()
    styles, shapes = np.array([st for st, *_ in items]), np.array([SHAPES.index(sh) for _, sh, *_ in items])
    out = {"esr1": round(100 * float((style[styles == erased] != STYLES.index(erased)).mean()), 1),
           "shape_kept": round(100 * float((shape == shapes).mean()), 1)}
    for st in STYLES:
        if st != erased:
            mine = styles == st
            out[f"{st}_kept"] = round(100 * float((style[mine] == STYLES.index(st)).mean()), 1)
            out[f"{st}_leak"] = round(100 * float((style[mine] == STYLES.index(erased)).mean()), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", default="shadow", choices=STYLES)
    p.add_argument("--seeds", type=int, default=2, help="seeds per prompt")
    p.add_argument("--centres", type=int, default=100, help="n_centres: 100 = every world word, so the two runs "
                   "differ only by the excluded words (the profile's 16 let k-means drop them or not)")
    a = p.parse_args()
    word, classifier = STYLE_WORDS[a.style], load_classifier()
    work = Path(tempfile.mkdtemp(prefix="bench_exclusion_"))
    rows = [{"run": "base", **style_breakdown(load_pipeline("embedded"), classifier, a.style, a.seeds)}]
    try:
        for exclude in (False, True):
            pipe = load_pipeline("embedded")
            t0 = time.perf_counter()
            run = erase("embedded", "ap", [word], "style,fast", work / f"ap_{exclude}", pipe=pipe, checkpoint_every=0,
                        snapshot_every=0, exclude_inflections=exclude, n_centres=a.centres)
            wall = time.perf_counter() - t0
            start = next(e for e in run.events() if e["kind"] == "start")["extra"]
            diag = summary(json.loads((run.path / "search.json").read_text()))
            rows.append({"run": f"AP, exclude_inflections={exclude}", "wall_s": round(wall, 1),
                         **style_breakdown(pipe, classifier, a.style, a.seeds),
                         "searched": ", ".join(start["search"][f"a {word}"]),
                         "excluded": ", ".join(start["excluded"][f"a {word}"]), "final_top": diag["top"][0],
                         "entropy_ratio": diag["entropy_ratio"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kept = [s for s in STYLES if s != a.style]
    print_table(rows, ["run", "esr1", *[f"{s}_{k}" for s in kept for k in ("kept", "leak")], "shape_kept",
                       "final_top", "entropy_ratio", "wall_s"])
    path = write_result("search_exclusion", {"style": a.style, "word": word, "seeds": a.seeds, "n_centres": a.centres,
                                             "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
