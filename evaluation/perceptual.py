"""LPIPS (docs/design.md §4): how far an erased model's images moved from the base model's images for the same
prompts and seeds (0 = identical; small = the edit left the picture alone).

    lpips_distance(erased_images, base_images, net="alex")   # real LPIPS (SD models)
    lpips_distance(erased_images, base_images, net="world")  # embedded stand-in, always offline

"alex" is LPIPS v0.1 of Zhang et al. 2018: torchvision's ImageNet AlexNet (weights from torch hub's
cache, see evaluation.errors) with the learnt linear layers that ship in the `lpips` package.
"world" is the embedded stand-in: the paper's "baseline" LPIPS (no learnt weights) over the shipped
world classifier's three conv blocks,
    d(x, y) = sum_l mean_hw || n(f_l(x)) - n(f_l(y)) ||^2,  n = unit length over channels,
on 32x32 images. Its numbers are comparable only with other "world" numbers.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.loader import load_classifier
from shapesworld.classifier import WorldClassifier
from shapesworld.data import to_tensor
from shapesworld.world import IMAGE_SIZE

from .errors import MetricUnavailableError, hub_checkpoint, load_weights

LPIPS_NETS = ("world", "alex")
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"  # torchvision AlexNet_Weights.IMAGENET1K_V1


@torch.no_grad()
def lpips_distance(a: np.ndarray, b: np.ndarray, net: str = "world", device: str | torch.device = "cpu",
                   batch: int = 32) -> torch.Tensor:
    """Row-paired uint8 [N, H, W, 3] stacks -> [N] LPIPS distances (float32, CPU)."""
    model = _model(net).to(device)  # weights are checked before the images
    _check_pair(a, b)
    out = []
    for i in range(0, len(a), batch):
        x, y = (to_tensor(im[i : i + batch]).to(device) for im in (a, b))  # [B, 3, H, W] in [-1, 1]
        out.append(model(x, y).reshape(-1).float().cpu())
    return torch.cat(out)


class WorldLPIPS(nn.Module):
    """Baseline LPIPS over the conv blocks of a WorldClassifier (images resized to 32x32 first)."""

    def __init__(self, classifier: WorldClassifier):
        super().__init__()
        self.blocks = classifier.features.eval()  # 3 blocks: [B, 32, 16, 16], [B, 64, 8, 8], [B, 128, 4, 4]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] pairs in [-1, 1] -> [B]."""
        x, y = _world_size(x), _world_size(y)
        d = torch.zeros(len(x), device=x.device)
        for block in self.blocks:
            x, y = block(x), block(y)
            d += (_unit(x) - _unit(y)).square().sum(1).mean((1, 2))
        return d


def _unit(f: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> each pixel's channel vector scaled to unit length (LPIPS' normalize_tensor)."""
    return f / (f.norm(dim=1, keepdim=True) + 1e-10)


def _world_size(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
        return x
    return F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)


def _model(net: str) -> nn.Module:
    if net == "world":
        return _world_lpips()
    if net == "alex":
        return _alex_lpips(hub_checkpoint(ALEXNET_URL, "LPIPS (alex)"))
    raise ValueError(f"unknown LPIPS net {net!r}; valid: {', '.join(LPIPS_NETS)}")


@functools.lru_cache(maxsize=1)
def _world_lpips() -> WorldLPIPS:
    return WorldLPIPS(load_classifier())


@functools.lru_cache(maxsize=2)
def _alex_lpips(checkpoint: Path) -> nn.Module:
    """lpips.LPIPS(net="alex") with its trunk from `checkpoint` (torchvision's AlexNet) and its linear
    layers from the lpips package; both loaded as tensors only."""
    try:
        import lpips
    except ImportError as e:
        raise MetricUnavailableError("LPIPS (alex) needs the lpips package; run `pip install -r requirements.txt`") from e
    with warnings.catch_warnings():  # lpips builds the AlexNet with torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    trunk = load_weights(checkpoint)  # torchvision names: features.{i}.weight / .bias
    wanted = {k: f"features.{k.split('.', 1)[1]}" for k in model.net.state_dict()}  # slice{j}.{i}.w -> features.{i}.w
    missing = sorted(v for v in wanted.values() if v not in trunk)
    if missing:
        raise MetricUnavailableError(f"{checkpoint} is not torchvision's AlexNet checkpoint (it lacks {missing[:3]}); "
                                     "delete it and download it again")
    model.net.load_state_dict({k: trunk[v] for k, v in wanted.items()})
    lins = load_weights(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth")  # lin{l}.model.1.weight
    for i, lin in enumerate(model.lins):
        lin.load_state_dict({"model.1.weight": lins[f"lin{i}.model.1.weight"]})
    return model.eval()


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    for im in (a, b):
        if not isinstance(im, np.ndarray) or im.ndim != 4 or im.shape[-1] != 3 or im.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W, 3] arrays, got {getattr(im, 'dtype', type(im))} "
                             f"{getattr(im, 'shape', '')}")
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"LPIPS compares images pairwise: need two non-empty stacks of one shape, got {a.shape} and {b.shape}")
