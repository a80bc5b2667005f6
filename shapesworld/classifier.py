"""The world's attribute classifier: one head per attribute (the ResNet-50 stand-in for ESR/PSR)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .world import ATTRIBUTES


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class WorldClassifier(nn.Module):
    """Images [B, 3, 32, 32] in [-1, 1] -> {attribute: logits [B, n_classes]}."""

    def __init__(self, width: int = 32, classes: dict[str, tuple[str, ...]] | None = None):
        super().__init__()
        self.classes = {k: tuple(v) for k, v in (classes or ATTRIBUTES).items()}  # head -> class names
        self.features = nn.Sequential(_block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width))
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 16, 128), nn.ReLU(inplace=True), nn.Dropout(0.2))
        self.heads = nn.ModuleDict({k: nn.Linear(128, len(v)) for k, v in self.classes.items()})
        self.width = width

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(self.features(x))  # [B, 128]
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
        """Class probabilities per attribute, batched; eval mode, no grad."""
        self.eval()
        outs = [self(x[i : i + batch]) for i in range(0, len(x), batch)]
        return {k: torch.cat([o[k] for o in outs]).softmax(-1) for k in self.classes}

    def save(self, folder: Path) -> None:
        from .weights import half_floats, save_safetensors

        folder.mkdir(parents=True, exist_ok=True)
        cfg = {"width": self.width, "classes": {k: list(v) for k, v in self.classes.items()}}
        (folder / "config.json").write_text(json.dumps(cfg, indent=2))
        save_safetensors(half_floats(self.state_dict()), folder / "model.safetensors")  # fp16 on disk

    @classmethod
    def load(cls, folder: Path, classes: dict[str, tuple[str, ...]] | None = None) -> WorldClassifier:
        """The classifier saved in `folder`; `classes` (default: ShapesWorld's) must match its heads."""
        from safetensors.torch import load_file

        cfg = json.loads((Path(folder) / "config.json").read_text())
        if cfg["classes"] != {k: list(v) for k, v in (classes or ATTRIBUTES).items()}:
            raise ValueError(f"classifier at {folder} was trained on other classes than this world's")
        model = cls(cfg["width"], classes)
        model.load_state_dict(load_file(Path(folder) / "model.safetensors"))
        return model.eval()
