"""Measure the embedded models against the bars of docs/design.md §7 and write assets/embedded/metrics.json.

    python -m shapesworld.evaluate            # full protocol (about 3 CPU-minutes)
    python -m shapesworld.evaluate --seeds 2  # quicker look while training
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from backends import SamplerSettings, generate, load_classifier, load_embedded_clip, load_pipeline
from backends.loader import ASSETS

from .captions import prompt
from .data import label_indices, make_dataset, to_tensor
from .train_clip import zero_shot
from .world import ATTRIBUTES, BACKGROUNDS, COLOURS, SHAPES, STYLES

HELDOUT_SEED = 100  # render seed of the held-out real images (never trained on)


def prompt_sets(seeds: int) -> dict[str, list[tuple[str, dict[str, str], int]]]:
    """name -> [(prompt, labels it names, seed)]; seeds are 0..seeds-1 for every prompt."""
    pairs = list(itertools.product(COLOURS, SHAPES))
    sets = {
        "colour_shape": [(prompt(s, c), {"shape": s, "colour": c}) for c, s in pairs],
        # background and style prompts: every pair with each value, half the seeds to bound cost
        "with_background": [(prompt(s, c, background=b), {"shape": s, "colour": c, "background": b})
                            for (c, s), b in itertools.product(pairs, BACKGROUNDS)],
        "with_style": [(prompt(s, c, style=st), {"shape": s, "colour": c, "style": st})
                       for (c, s), st in itertools.product(pairs, STYLES)],
    }
    n_seeds = {"colour_shape": seeds, "with_background": max(1, seeds // 4), "with_style": max(1, seeds // 4)}
    return {k: [(p, lab, sd) for p, lab in v for sd in range(n_seeds[k])] for k, v in sets.items()}


def generated_accuracy(pipe, classifier, items, settings: SamplerSettings) -> dict[str, float]:
    """Classifier top-1 per named attribute over images generated for `items`."""
    images = generate(pipe, [p for p, _, _ in items], [s for _, _, s in items], settings)
    probs = classifier.predict(to_tensor(images))
    acc = {}
    for attr in ATTRIBUTES:
        rows = [(i, lab[attr]) for i, (_, lab, _) in enumerate(items) if attr in lab]
        if rows:
            idx = torch.tensor([i for i, _ in rows])
            y = torch.tensor([ATTRIBUTES[attr].index(v) for _, v in rows])
            acc[attr] = (probs[attr][idx].argmax(-1) == y).float().mean().item()
    return acc


def heldout_real(classifier, clip) -> tuple[dict[str, float], dict[str, float]]:
    images, scenes = make_dataset(2000, seed=HELDOUT_SEED)
    x = to_tensor(images)
    probs = classifier.predict(x)
    y = label_indices(scenes)
    cls = {k: (probs[k].argmax(-1).numpy() == y[k]).mean().item() for k in ATTRIBUTES}
    return cls, zero_shot(clip, x, scenes)


def asset_megabytes() -> float:
    return sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file()) / 1e6


def evaluate(seeds: int, steps: int, guidance: float) -> dict:
    t0 = time.time()
    torch.manual_seed(0)
    pipe, classifier = load_pipeline(), load_classifier()
    clip, _ = load_embedded_clip()
    settings = SamplerSettings(steps=steps, guidance=guidance)
    generated = {name: generated_accuracy(pipe, classifier, items, settings) | {"images": len(items)}
                 for name, items in prompt_sets(seeds).items()}
    cls, zs = heldout_real(classifier, clip)
    return {
        "command": f"python -m shapesworld.evaluate --seeds {seeds} --steps {steps} --guidance {guidance}",
        "sampler": {"scheduler": "DDIM", "steps": steps, "guidance": guidance, "seeds_per_prompt": seeds},
        "generated_top1": generated,
        "classifier_heldout_top1": cls,
        "clip_zero_shot_heldout_top1": zs,
        "heldout_images": 2000,
        "assets_mb": round(asset_megabytes(), 2),
        "eval_wall_time_s": round(time.time() - t0, 1),
        "torch": torch.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--out", type=Path, default=ASSETS / "metrics.json")
    a = p.parse_args()
    metrics = evaluate(a.seeds, a.steps, a.guidance)
    text = json.dumps(metrics, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
