"""Mixed precision, one setting for erasure runs and spectra (docs/design.md §3.1, "precision").

`precision` names the autocast region around a job's forwards, independently of the weights' dtype:
"auto" is bfloat16 on a GPU that computes in it natively and float32 (no autocast) elsewhere, so every
stored CPU number reproduces; "bfloat16" asks for it anywhere. float16 is not offered: training in it
needs loss scaling, which bf16's float32 range makes unnecessary.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "float32", "bfloat16")
AUTOCAST = {"bfloat16": torch.bfloat16}  # resolved precision -> autocast dtype (float32: none)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r} (float16 is not "
                         "offered: training in it needs loss scaling; use bfloat16)")


def resolve_precision(precision: str, device) -> str:
    """"auto" -> "bfloat16" on a GPU that computes in it natively, else "float32" (on a CPU whether bf16 pays
    depends on the chip, docs/design.md §3.1); an explicit bfloat16 on a GPU without it is refused with the fix."""
    check_precision(precision)
    device = torch.device(device)
    native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        return "bfloat16" if native else "float32"
    if precision == "bfloat16" and device.type == "cuda" and not native:
        raise ValueError("this GPU has no native bfloat16 (it is older than Ampere): set precision=float32 "
                         "(erasure CLI: --set precision=float32; spectrum CLI: --precision float32)")
    return precision


def autocast(precision: str, device):
    """The autocast region of a resolved `precision` on `device`; nothing for float32."""
    dtype = AUTOCAST.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
