"""ESR-k / PSR-k for SD models (docs/design.md §4): the 10 Imagenette classes, prompts "Image of {class}",
judged by torchvision's ImageNet ResNet-50 (IMAGENET1K_V2 weights, from torch hub's cache; see
evaluation.errors). The embedded model uses the world classifier instead (classification.py).

    probs = imagenette_probs(images)                          # [N, 10], order of IMAGENETTE_CLASSES
    erasure_rates(probs, imagenette_labels(classes), {imagenette_labels(["church"])[0]})
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from .classification import erasure_rates
from .errors import hub_checkpoint, load_weights

IMAGENETTE_CLASSES = ("tench", "English springer", "cassette player", "chain saw", "church",
                      "French horn", "garbage truck", "gas pump", "golf ball", "parachute")
IMAGENETTE_IMAGENET_INDICES = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)  # ImageNet-1k class ids, same order
IMAGENETTE_PROMPT = "Image of {}"
RESNET50_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"  # torchvision ResNet50_Weights.IMAGENET1K_V2


def imagenette_prompts(classes: tuple[str, ...] | list[str] = IMAGENETTE_CLASSES) -> list[str]:
    """["Image of tench", ...]."""
    imagenette_labels(classes)  # rejects unknown names
    return [IMAGENETTE_PROMPT.format(c) for c in classes]


def imagenette_labels(classes: tuple[str, ...] | list[str]) -> torch.Tensor:
    """Class names -> [N] indices into IMAGENETTE_CLASSES (the columns of imagenette_probs)."""
    unknown = sorted(set(classes) - set(IMAGENETTE_CLASSES))
    if unknown:
        raise ValueError(f"unknown Imagenette classes {unknown}; valid: {', '.join(IMAGENETTE_CLASSES)}")
    return torch.tensor([IMAGENETTE_CLASSES.index(c) for c in classes], dtype=torch.long)


@torch.no_grad()
def imagenet_logits(images: np.ndarray, device: str | torch.device = "cpu", batch: int = 32) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> ResNet-50 logits [N, 1000] (float32, CPU), torchvision's V2 preprocessing
    (resize 232, centre crop 224, ImageNet normalisation)."""
    model, preprocess = _resnet50(hub_checkpoint(RESNET50_URL, "Imagenette ESR/PSR (ResNet-50)"))
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    model = model.to(device)
    out = []
    for i in range(0, len(images), batch):
        x = preprocess(torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).to(device))  # [B, 3, 224, 224]
        out.append(model(x).float().cpu())
    return torch.cat(out)


def imagenette_probs(images: np.ndarray, device: str | torch.device = "cpu", batch: int = 32) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> [N, 10] probabilities over the Imagenette classes only (softmax of their
    ImageNet logits), columns in the order of IMAGENETTE_CLASSES: top-k is among these 10."""
    return imagenette_from_logits(imagenet_logits(images, device, batch))


def imagenette_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """ImageNet logits [N, 1000] -> [N, 10] softmax over the Imagenette columns."""
    return logits[:, list(IMAGENETTE_IMAGENET_INDICES)].softmax(-1)


def imagenette_erasure_rates(images: np.ndarray, classes: list[str], erased: list[str], ks: tuple[int, ...] = (1, 5),
                             device: str | torch.device = "cpu") -> dict:
    """ESR-k / PSR-k of images generated from imagenette_prompts(classes), one class name per image."""
    labels = imagenette_labels(classes)
    erased_ids = set(imagenette_labels(erased).tolist())
    return erasure_rates(imagenette_probs(images, device), labels, erased_ids, ks)


@functools.lru_cache(maxsize=2)
def _resnet50(checkpoint: Path):
    """(model in eval mode, its preprocessing transform); weights loaded as tensors only."""
    from torchvision.models import ResNet50_Weights, resnet50

    model = resnet50(weights=None)
    model.load_state_dict(load_weights(checkpoint))
    return model.eval(), ResNet50_Weights.IMAGENET1K_V2.transforms()
