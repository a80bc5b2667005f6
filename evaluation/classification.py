"""ESR-k / PSR-k (docs/design.md §4): did the erased classes vanish, and did the kept ones survive?

ESR-k = share of images of erased classes whose class is *not* in the classifier's top-k;
PSR-k = share of images of kept classes whose class *is* in the top-k.
"""

from __future__ import annotations

import itertools

import torch

from backends import SamplerSettings, generate
from shapesworld.captions import prompt
from shapesworld.data import to_tensor
from shapesworld.world import COLOURS, SHAPES


def erasure_rates(probs: torch.Tensor, labels: torch.Tensor, erased: set[int], ks: tuple[int, ...] = (1, 5)) -> dict:
    """probs [N, classes], labels [N] -> {"esr1", "psr1", "esr5", "psr5", ...} in percent."""
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError("probs must be [N, classes] with one label per row")
    is_erased = torch.tensor([int(y) in erased for y in labels])
    out = {}
    for k in ks:
        hit = (probs.topk(k, dim=-1).indices == labels[:, None]).any(-1)
        out[f"esr{k}"] = 100 * (~hit[is_erased]).float().mean().item() if is_erased.any() else float("nan")
        out[f"psr{k}"] = 100 * hit[~is_erased].float().mean().item() if (~is_erased).any() else float("nan")
    return out


def world_erasure_report(pipe, classifier, erased_shapes: list[str], seeds: int = 8,
                         settings: SamplerSettings | None = None, scorer=None) -> dict:
    """ESR/PSR over "a {colour} {shape}" prompts for every shape x colour x seed (seeds 0..seeds-1);
    20 DDIM steps with guidance 5 unless `settings` says otherwise. With a CLIP `scorer`
    (evaluation.scorers), also the mean CLIP score of each image with its own prompt, over the
    erased shapes' prompts ("clip_erased") and the kept ones' ("clip_kept")."""
    settings = settings or SamplerSettings(steps=20, guidance=5.0)
    unknown = set(erased_shapes) - set(SHAPES)
    if unknown:
        raise ValueError(f"unknown shapes {sorted(unknown)}; valid: {', '.join(SHAPES)}")
    items = [(s, c, sd) for s, c, sd in itertools.product(SHAPES, COLOURS, range(seeds))]
    images = generate(pipe, [prompt(s, c) for s, c, _ in items], [sd for _, _, sd in items], settings)
    probs = classifier.predict(to_tensor(images))["shape"]
    labels = torch.tensor([SHAPES.index(s) for s, _, _ in items])
    report = erasure_rates(probs, labels, {SHAPES.index(s) for s in erased_shapes})
    top1 = probs.argmax(-1) == labels
    report["per_shape_top1"] = {s: 100 * top1[labels == i].float().mean().item() for i, s in enumerate(SHAPES)}
    report["images"] = len(items)
    if scorer is not None:
        clip = scorer.score(images, [prompt(s, c) for s, c, _ in items])  # [N], 0..100
        is_erased = torch.tensor([s in erased_shapes for s, _, _ in items])
        report["clip_erased"] = clip[is_erased].mean().item()
        report["clip_kept"] = clip[~is_erased].mean().item()
    return report


