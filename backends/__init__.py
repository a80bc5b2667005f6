"""Model loading and seeded generation for every backend (embedded, SD hub ids, local folders)."""

from .families import denoiser, family_of
from .generate import SamplerSettings, generate, grid, initial_latents
from .loader import (
    DTYPES,
    EMBEDDED,
    PRESETS,
    TINY_FLUX,
    TINY_SDXL,
    ModelUnavailableError,
    check_device,
    load_classifier,
    load_embedded_clip,
    load_pipeline,
    model_family,
    resolve_model,
    torch_dtype,
)

__all__ = [
    "DTYPES", "EMBEDDED", "PRESETS", "TINY_FLUX", "TINY_SDXL", "ModelUnavailableError", "SamplerSettings", "check_device",
    "denoiser", "family_of", "generate", "grid", "initial_latents", "load_classifier", "load_embedded_clip",
    "load_pipeline", "model_family", "resolve_model", "torch_dtype",
]
