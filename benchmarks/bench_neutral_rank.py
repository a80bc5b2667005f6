"""Finding (a) on several targets: where do the target and the neutral concepts rank in the spectrum?

    python -m benchmarks.bench_neutral_rank                       # star, heart, diamond, moon; k = 8
    python -m benchmarks.bench_neutral_rank --targets red shadowed --k 4

For each target AP (`object,fast`; `style,fast` for a style word) erases it from the embedded model, then
the spectrum over the `world` vocabulary is computed twice from one sample cache: with each world word
drawn in captions the world was trained on (`world_prompts`, the default: "a red circle", "a red square"
...) and with the bare template ("a red", the spectrum before that setting). Per target and prompt form:
the target's rank, the ranks of "" and "a photo", the top 5, and the concepts that are not world shapes
among the top 5. Beside it, which concepts the *base* model's images do not show (the world classifier's
head for the word's attribute recognises it in fewer than half of its images), per prompt form.
Writes benchmarks/results/neutral_rank.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from backends import SamplerSettings, generate, load_classifier, load_pipeline
from erasure import erase
from sensitivity import SpectrumConfig, compute_spectrum, summary
from sensitivity.rows import seed_prompts
from sensitivity.vocab import NEUTRAL
from shapesworld.captions import STYLE_WORDS
from shapesworld.data import to_tensor
from shapesworld.world import ATTRIBUTES, SHAPES

from .common import print_table, write_result

STYLE_OF = {w: s for s, w in STYLE_WORDS.items()} | {s: s for s in STYLE_WORDS}


def attribute_of(word: str) -> tuple[str, str] | None:
    """(classifier head, class) of a world word ("shadowed" -> ("style", "shadow")), None for other concepts."""
    word = STYLE_OF.get(word, word)
    return next(((head, word) for head, values in ATTRIBUTES.items() if word in values), None)


def shown(pipe, classifier, config: SpectrumConfig, concepts: list[str]) -> dict[str, float]:
    """Per world word: the share of the base model's spectrum images of it (same prompts and seeds) in which
    the classifier's head for its attribute recognises it."""
    words = [c for c in concepts if c not in NEUTRAL and attribute_of(c)]
    items = [(c, p, s) for c in words for p, s in zip(seed_prompts(c, config), config.seeds())]
    images = generate(pipe, [p for _, p, _ in items], [s for *_, s in items], config.sampler())
    pred = classifier.predict(to_tensor(images))
    hits = {}
    for i, (c, _, _) in enumerate(items):
        head, value = attribute_of(c)
        hits.setdefault(c, []).append(int(pred[head][i].argmax()) == ATTRIBUTES[head].index(value))
    return {c: round(100 * float(np.mean(h)), 1) for c, h in hits.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=["star", "heart", "diamond", "moon"])
    p.add_argument("--k", type=int, default=8)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_neutral_"))
    pipe, classifier = load_pipeline("embedded"), load_classifier()
    rows, unseen = [], {}
    try:
        for target in a.targets:
            preset = "style,fast" if target in STYLE_OF else "object,fast"
            run = erase("embedded", "ap", [target], preset, work / target, pipe=copy.deepcopy(pipe),
                        checkpoint_every=0).path
            for form in (True, False):
                cfg = SpectrumConfig(targets=[target], vocab="world", k=a.k, world_prompts=form)
                t0 = time.perf_counter()
                df = compute_spectrum("embedded", run, cfg, pipe=pipe, cache_root=work / "cache")
                s = summary(df)
                key = "captions" if form else "bare"
                if (key, target) not in unseen:
                    seen = shown(pipe, classifier, cfg.resolved("embedded"), list(df["concept"]))
                    unseen[(key, target)] = sorted(c for c, v in seen.items() if v < 50)
                top5 = s["top5"]
                rows.append({"target": target, "prompts": key, "concepts": s["concepts"], "target_rank": s["target_rank"],
                             "null_rank": s["null_rank"], "photo_rank": s["neutral_rank"],
                             "top5": ", ".join(c or '""' for c in top5),
                             "top5_not_shapes": ", ".join(c or '""' for c in top5 if c not in SHAPES),
                             "not_shown_by_base": ", ".join(unseen[(key, target)]), "wall_s": round(time.perf_counter() - t0, 1)})
                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ["target", "prompts", "target_rank", "null_rank", "photo_rank", "top5", "not_shown_by_base"])
    config = dataclasses.asdict(SpectrumConfig(targets=["<target>"], vocab="world", k=a.k))
    print("wrote", write_result("neutral_rank", {"config": config, "sampler": vars(SamplerSettings(steps=config["steps"],
                                                guidance=config["guidance"])), "rows": rows}))


if __name__ == "__main__":
    main()
