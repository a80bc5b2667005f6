"""Train EmojiWorld's judge: concept, background and style heads on rendered images.

    python -m emojiworld.train_classifier --out .train/emoji/classifier [--concepts 100]

The same network and augmentation as ShapesWorld's classifier (it never sees generated images), with
a concept head over the chosen concepts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from shapesworld.classifier import WorldClassifier
from shapesworld.data import to_tensor
from shapesworld.train_classifier import fit
from shapesworld.training import Log, seed_everything, versions

from .data import label_indices, make_dataset
from .subsets import chosen
from .world import BACKGROUNDS, STYLES

HELDOUT_SEED = 100  # render seed of held-out images (never trained on)


def classes_for(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {"concept": names, "background": BACKGROUNDS, "style": STYLES}


@torch.no_grad()
def accuracy(model: WorldClassifier, x: torch.Tensor, y: dict[str, torch.Tensor]) -> dict[str, float]:
    probs = model.predict(x)
    return {k: (probs[k].argmax(-1) == y[k]).float().mean().item() for k in model.classes}


def train(out: Path, names: tuple[str, ...], steps: int, batch: int, lr: float, seed: int, per_concept: int) -> dict:
    gen = seed_everything(seed)
    n = per_concept * len(names)
    images, scenes = make_dataset(names, n, seed=3)
    x_all, y_all = to_tensor(images), {k: torch.from_numpy(v) for k, v in label_indices(scenes, names).items()}
    val_images, val_scenes = make_dataset(names, 4 * len(names), seed=HELDOUT_SEED)
    x_val = to_tensor(val_images)
    y_val = {k: torch.from_numpy(v) for k, v in label_indices(val_scenes, names).items()}
    model = WorldClassifier(classes=classes_for(names)).train()
    t0 = time.time()
    fit(model, x_all, y_all, steps, batch, lr, gen, Log(out.parent / "classifier.jsonl"))
    val = accuracy(model, x_val, y_val)
    model.save(out)
    summary = {
        "command": f"python -m emojiworld.train_classifier --out {out} --steps {steps} --concepts {len(names)}",
        "concepts": len(names), "steps": steps, "batch": batch, "lr": lr, "seed": seed, "train_images": n,
        "heldout_images": len(x_val), "heldout_accuracy": val, "wall_time_s": round(time.time() - t0, 1),
        "versions": versions(),
    }
    (out.parent / "classifier.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(".train/emoji/classifier"))
    p.add_argument("--concepts", type=int, default=0, help="how many concepts (0: every one), spread over groups")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-concept", type=int, default=200, help="training renders per concept")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(json.dumps(train(a.out, chosen(a.concepts), a.steps, a.batch, a.lr, a.seed, a.per_concept), indent=2))


if __name__ == "__main__":
    main()
