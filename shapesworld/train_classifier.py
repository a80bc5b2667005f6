"""Train the world classifier on rendered images with blur/noise/shift augmentation.

    python -m shapesworld.train_classifier --out assets/embedded/classifier

Augmentation makes it robust to the softness of generated images without ever seeing the
generator, so it stays an independent judge.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .classifier import WorldClassifier
from .data import label_indices, make_dataset, to_tensor
from .training import Log, lr_at, seed_everything, versions
from .world import ATTRIBUTES


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x: [B, 3, 32, 32] in [-1, 1]. Random shift (+-2 px), blur, noise, brightness."""
    b = x.shape[0]
    shift = torch.randint(-2, 3, (2,), generator=gen).tolist()
    x = torch.roll(F.pad(x, (2, 2, 2, 2), mode="replicate"), shifts=shift, dims=(2, 3))[:, :, 2:-2, 2:-2]
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    mix = torch.rand(b, 1, 1, 1, generator=gen)
    x = x * (1 - mix) + blurred * mix
    x = x * (1 + 0.1 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2)
    x = x + 0.08 * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return x.clamp(-1, 1)


@torch.no_grad()
def accuracy(model: WorldClassifier, x: torch.Tensor, y: dict[str, torch.Tensor]) -> dict[str, float]:
    probs = model.predict(x)
    return {k: (probs[k].argmax(-1) == y[k]).float().mean().item() for k in ATTRIBUTES}


def fit(model: WorldClassifier, x_all: torch.Tensor, y_all: dict[str, torch.Tensor], steps: int, batch: int,
        lr: float, gen: torch.Generator, log: Log) -> None:
    """Train `model` on images [N, 3, 32, 32] in [-1, 1] with labels {head: [N]} (every head of the model),
    augmented; AdamW, warm-up then a cosine tail over the second half. Leaves it in eval mode."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=50, tail=0.5)
        idx = torch.randint(0, len(x_all), (batch,), generator=gen)
        logits = model(augment(x_all[idx], gen))
        loss = sum(F.cross_entropy(logits[k], y_all[k][idx], label_smoothing=0.05) for k in model.classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            log(step=step, loss=loss.item())
    model.eval()


def train(out: Path, steps: int, batch: int, lr: float, seed: int) -> dict:
    gen = seed_everything(seed)
    images, scenes = make_dataset(20000, seed=3)
    x_all, y_all = to_tensor(images), {k: torch.from_numpy(v) for k, v in label_indices(scenes).items()}
    val_images, val_scenes = make_dataset(2000, seed=100)
    x_val, y_val = to_tensor(val_images), {k: torch.from_numpy(v) for k, v in label_indices(val_scenes).items()}
    model = WorldClassifier().train()
    t0 = time.time()
    fit(model, x_all, y_all, steps, batch, lr, gen, Log(Path(".train") / "classifier.jsonl"))
    val = accuracy(model, x_val, y_val)
    model.save(out)
    summary = {
        "command": f"python -m shapesworld.train_classifier --out {out} --steps {steps}",
        "steps": steps, "batch": batch, "lr": lr, "seed": seed, "train_images": 20000,
        "heldout_accuracy": val, "wall_time_s": round(time.time() - t0, 1), "versions": versions(),
    }
    (out.parent / "training").mkdir(exist_ok=True)
    (out.parent / "training" / "classifier.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("assets/embedded/classifier"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(json.dumps(train(a.out, a.steps, a.batch, a.lr, a.seed), indent=2))


if __name__ == "__main__":
    main()
