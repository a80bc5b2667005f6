"""The one error of metrics that cannot run here, and the check for the weights they need.

Pretrained backbones (LPIPS' AlexNet, FID's InceptionV3, the Imagenette ResNet-50) live in torch
hub's checkpoint cache. They are never downloaded behind the user's back: a missing file raises
MetricUnavailableError, before any work, with the command that makes it available.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch


class MetricUnavailableError(RuntimeError):
    """A metric cannot be computed here (usually: missing weights offline); the message says how to fix it."""


def hub_checkpoint(url: str, metric: str) -> Path:
    """Path of `url`'s file in torch hub's checkpoint cache (where torchvision downloads to), or
    MetricUnavailableError saying how to put it there."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / Path(urlparse(url).path).name
    if path.is_file():
        return path
    raise MetricUnavailableError(
        f"{metric} needs the pretrained weights {path.name}, which are not in torch hub's cache ({folder}) and are "
        "never downloaded by this project. On a machine with internet access run "
        f"`python -c \"import torch; torch.hub.load_state_dict_from_url('{url}')\"` and copy the file into {folder} "
        "(torch.hub.get_dir()/checkpoints; set TORCH_HOME to use another cache folder)."
    )


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A .pth state dict, tensors only (weights_only=True), on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)
