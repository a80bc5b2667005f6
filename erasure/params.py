"""Parameter groups: named predicates over UNet parameter names (docs/design.md §3).

Names follow diffusers' UNet2DConditionModel: cross-attention is `attn2`, the time embedding
MLP is `time_embedding`, the output layers are `conv_norm_out` / `conv_out`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import PARAM_GROUPS


def _is_xattn(name: str) -> bool:
    return ".attn2." in name


def _is_noxattn(name: str) -> bool:
    # ESD's reference choice for nudity: everything but cross-attention, time embedding and output.
    return not (_is_xattn(name) or name.startswith(("time_embedding.", "conv_norm_out.", "conv_out.")))


PREDICATES: dict[str, Callable[[str], bool]] = {
    "xattn": _is_xattn,
    "noxattn": _is_noxattn,
    "kv": lambda n: ".attn2.to_k." in n or ".attn2.to_v." in n,
    "full": lambda n: True,
}
assert set(PREDICATES) == set(PARAM_GROUPS)


def select_parameters(model: torch.nn.Module, group: str) -> dict[str, torch.nn.Parameter]:
    """Mark exactly the group's parameters trainable (and freeze the rest); return them by name."""
    if group not in PREDICATES:
        raise ValueError(f"unknown parameter group {group!r}; valid: {', '.join(PREDICATES)}")
    chosen = {}
    for name, p in model.named_parameters():
        keep = PREDICATES[group](name)
        p.requires_grad_(keep)
        if keep:
            chosen[name] = p
    if not chosen:
        raise ValueError(f"parameter group {group!r} selects no tensors of {type(model).__name__}")
    return chosen
