"""How the worlds' weights are written (safetensors, atomically): used by the classifier (the world floor)
and by every training script."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """Atomic write: a crash never leaves a half-written weights file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)


def half_floats(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store float tensors as fp16 (our own loaders cast back to fp32 in load_state_dict)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
