"""Small helpers shared by the ShapesWorld training scripts."""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from pathlib import Path

import torch


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def lr_at(step: int, total: int, base: float, warmup: int = 100, tail: float = 0.25) -> float:
    """Linear warm-up, constant, then a cosine tail over the last `tail` fraction of training."""
    if step < warmup:
        return base * (step + 1) / warmup
    start = int(total * (1 - tail))
    if step < start:
        return base
    return base * 0.5 * (1 + math.cos(math.pi * (step - start) / max(1, total - start)))


class EMA:
    """Exponential moving average of a module's parameters (the copy is what ships)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), module.parameters()):
            s.lerp_(p.detach(), 1 - self.decay)
        for s, b in zip(self.shadow.buffers(), module.buffers()):
            s.copy_(b)


def versions() -> dict[str, str]:
    import diffusers
    import numpy
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "machine": platform.machine(),
        "threads": str(torch.get_num_threads()),
    }


class Log:
    """Appends JSON lines to a training log and prints a short progress line."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()

    def elapsed(self) -> float:
        return round(time.time() - self.t0, 1)

    def __call__(self, **row) -> None:
        row["elapsed_s"] = round(time.time() - self.t0, 1)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
