"""CLIP score (docs/design.md §4): 100 * max(cos(image, prompt), 0) of each image with its own prompt, on the
erased concepts' prompts (should drop) and on the kept ones' (should not).

    scorer = evaluation.scorers.get_scorer("embedded")       # or "ViT-L-14/openai" for SD
    split_clip(scorer, images, prompts, is_erased)  # {"erased": {"mean", "std", "n"}, "kept": {...}}
"""

from __future__ import annotations

import numpy as np
import torch

from .scorers import Scorer


def clip_scores(scorer: Scorer, images: np.ndarray, prompts: list[str]) -> dict[str, float]:
    """uint8 [N, H, W, 3] + N prompts -> {"mean", "std", "n"} of the paired scores (0..100)."""
    if len(images) == 0:
        raise ValueError("no images: a CLIP score needs at least one image")
    return _summary(scorer.score(images, prompts))


def split_clip(scorer: Scorer, images: np.ndarray, prompts: list[str], is_erased) -> dict[str, dict]:
    """{"erased": clip_scores of the images whose prompt names an erased concept, "kept": of the
    others}; is_erased: [N] bools, one per image. A side with no images is left out."""
    mask = torch.as_tensor(np.asarray(is_erased, dtype=bool)).reshape(-1)  # [N]
    if len(mask) != len(images) or len(prompts) != len(images) or len(images) == 0:
        raise ValueError(f"need images and one prompt and one is_erased flag per image; got {len(images)} images, "
                         f"{len(prompts)} prompts, {len(mask)} flags")
    s = scorer.score(images, prompts)  # [N], 0..100
    return {name: _summary(s[keep]) for name, keep in (("erased", mask), ("kept", ~mask)) if keep.any()}


def _summary(s: torch.Tensor) -> dict[str, float]:
    """[n] scores -> mean, std (0 for one score) and n."""
    return {"mean": s.mean().item(), "std": s.std().item() if len(s) > 1 else 0.0, "n": len(s)}
