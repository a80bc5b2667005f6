"""Model loading and seeded generation for every backend (embedded, SD hub ids, local folders)."""

from .generate import SamplerSettings, generate, grid, initial_latents
from .loader import (
    DTYPES,
    EMBEDDED,
    PRESETS,
    TINY_FLUX,
    ModelUnavailableError,
    check_device,
    load_classifier,
    load_embedded_clip,
    load_pipeline,
    resolve_model,
    torch_dtype,
)

__all__ = [
    "DTYPES", "EMBEDDED", "PRESETS", "TINY_FLUX", "ModelUnavailableError", "SamplerSettings", "check_device", "generate", "grid",
    "initial_latents", "load_classifier", "load_embedded_clip", "load_pipeline", "resolve_model",
    "torch_dtype",
]
