"""FID (docs/design.md §4): Frechet distance between Gaussians fitted to two image sets' features.

    fid(erased_images, base_or_real_images, features="inception")  # standard FID (SD models, COCO prompts)
    fid(erased_images, base_images, features="world")              # embedded stand-in, always offline

"inception" is the standard FID network (the TF InceptionV3 port of pytorch-fid: 299x299 bilinear
input, 2048-d pool features), weights from torch hub's cache (see evaluation.errors). "world" uses the
shipped world classifier's 128-d penultimate activations (eval mode) on 32x32 images; its numbers are
comparable only with other "world" numbers. The matrix square root is done in float64 torch with
symmetric eigendecompositions (no scipy).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.building import serialised
from backends.loader import load_classifier
from shapesworld.classifier import WorldClassifier
from shapesworld.world import IMAGE_SIZE

from .errors import MetricUnavailableError, hub_checkpoint, load_weights

FID_FEATURES = ("world", "inception")
FID_INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2); mu [d], sigma [d, d] symmetric PSD."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"need means [d] and covariances [d, d] of one d; got {tuple(mu1.shape)}, "
                         f"{tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}")
    root1 = _sqrtm_psd(sigma1)  # [d, d]
    # (S1 S2)^1/2 is similar to (S1^1/2 S2 S1^1/2)^1/2, which is symmetric PSD: same trace
    inner = root1 @ sigma2 @ root1
    tr_cross = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_cross
    return max(value.item(), 0.0)  # >= 0 in exact arithmetic; round-off can dip below


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD [d, d] -> its symmetric square root (negative round-off eigenvalues clamped to 0)."""
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, d] features -> (mean [d], unbiased covariance [d, d]), float64."""
    f = torch.as_tensor(features, dtype=torch.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors [N, d] per set, got shape {tuple(f.shape)}")
    return f.mean(0), torch.cov(f.T)


def fid(images_a: np.ndarray, images_b: np.ndarray, features: str = "world", device: str | torch.device = "cpu",
        batch: int = 64) -> float:
    """FID between two uint8 [N, H, W, 3] sets (N >= 2 each; sizes may differ)."""
    _extractor(features)  # missing weights are reported before any work
    for name, im in (("images_a", images_a), ("images_b", images_b)):
        if not isinstance(im, np.ndarray) or im.ndim != 4 or im.shape[-1] != 3 or im.dtype != np.uint8:
            raise ValueError(f"{name} must be a uint8 [N, H, W, 3] array")
        if len(im) < 2:
            raise ValueError(f"FID needs at least 2 images per set; {name} has {len(im)}")
    stats = [feature_stats(fid_features(im, features, device, batch)) for im in (images_a, images_b)]
    return frechet_distance(*stats[0], *stats[1])


@torch.no_grad()
def fid_features(images: np.ndarray, features: str = "world", device: str | torch.device = "cpu",
                 batch: int = 64) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> [N, 128] ("world") or [N, 2048] ("inception") float32 features on the CPU;
    keep the base model's stats (feature_stats) to compare many runs against them."""
    net = _extractor(features).to(device)
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float().div(255).to(device)  # [B, 3, H, W]
        out.append(net(x).float().cpu())
    return torch.cat(out)


def _extractor(features: str) -> nn.Module:
    if features == "world":
        return _world_features()
    if features == "inception":
        return _fid_inception(hub_checkpoint(FID_INCEPTION_URL, "FID (inception)"))
    raise ValueError(f"unknown FID features {features!r}; valid: {', '.join(FID_FEATURES)}")


class _WorldFeatures(nn.Module):
    """[B, 3, H, W] in 0..1 -> [B, 128]: the world classifier's trunk output (before the heads)."""

    def __init__(self, classifier: WorldClassifier):
        super().__init__()
        self.classifier = classifier.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.classifier.trunk(self.classifier.features(x * 2 - 1))  # trained on [-1, 1] (to_tensor)


class _InceptionFeatures(nn.Module):
    """[B, 3, H, W] in 0..1 -> [B, 2048] pool3 features of the FID InceptionV3 (pytorch-fid's recipe)."""

    def __init__(self, trunk: nn.Sequential):
        super().__init__()
        self.trunk = trunk.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.trunk(2 * x - 1).flatten(1)


@functools.lru_cache(maxsize=1)
@serialised
def _world_features() -> _WorldFeatures:
    return _WorldFeatures(load_classifier())


@functools.lru_cache(maxsize=2)
@serialised  # builds InceptionV3 (backends.building)
def _fid_inception(checkpoint: Path) -> _InceptionFeatures:
    """The FID InceptionV3 with its state dict loaded from `checkpoint` as tensors only."""
    net = _fid_inception_net()
    net.load_state_dict(load_weights(checkpoint))
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
             "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]
    return _InceptionFeatures(nn.Sequential(*(getattr(net, n) for n in names)))


def _fid_inception_net() -> nn.Module:
    """pytorch-fid's fid_inception_v3 without its download: torchvision's InceptionV3 with the FID blocks."""
    try:
        from pytorch_fid import inception as fi
    except ImportError as e:
        raise MetricUnavailableError("FID (inception) needs pytorch-fid; run `pip install -r requirements.txt`") from e
    net = fi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    a_in, a_pool = (192, 256, 288), (32, 64, 64)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = (fi.FIDInceptionA(c, pool_features=p) for c, p in zip(a_in, a_pool))
    net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e = (fi.FIDInceptionC(768, channels_7x7=c) for c in (128, 160, 160, 192))
    net.Mixed_7b, net.Mixed_7c = fi.FIDInceptionE_1(1280), fi.FIDInceptionE_2(2048)
    return net
