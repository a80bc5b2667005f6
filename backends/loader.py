"""One loader for every backend (docs/design.md §1): the embedded ShapesWorld pipeline, hub repo ids and
local diffusers folders all go through `load_pipeline`; only the model id differs.

Weights are loaded as safetensors only and no remote code is ever trusted.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from .building import serialised
from .families import family_named, family_of
from .family import Family
from .offload import DoesNotFitError, components, place
from .offload import check_mode as offload_mode
from .offload import plan as offload_plan
from .paths import ASSETS, EMBEDDED, EMOJI, EMOJI_ASSETS

PRESETS = {
    EMBEDDED: str(ASSETS / "pipeline"),
    EMOJI: str(EMOJI_ASSETS / "pipeline"),
    "sd-1.4": "CompVis/stable-diffusion-v1-4",
    "sd-2.1": "stabilityai/stable-diffusion-2-1",
    "sdxl-1.0": "stabilityai/stable-diffusion-xl-base-1.0",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
}


def listed_presets() -> list[str]:
    """The presets a model picker offers: every hub preset, and a shipped one once its pipeline is in
    assets/ (EmojiWorld's appears when its trained UNet ships)."""
    return [name for name, source in PRESETS.items()
            if not Path(source).is_absolute() or (Path(source) / "model_index.json").is_file()]


# Random weights built from configs (backends.flux, backends.sdxl): each family's code path offline, for
# tests and timing. They draw noise, not pictures, so the app does not list them.
TINY_FLUX = "flux-tiny-random"
TINY_SDXL = "sdxl-tiny-random"
_TINY = {TINY_FLUX: ("backends.flux", "tiny_flux_pipeline", "FluxPipeline"),
         TINY_SDXL: ("backends.sdxl", "tiny_sdxl_pipeline", "StableDiffusionXLPipeline")}
HUB_HOST = "huggingface.co"
# Weight dtypes by name (configs, run records, the CLI and the app name them as strings).
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelUnavailableError(RuntimeError):
    """The requested model cannot be loaded here; the message says how to make it available."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the user asked for ("embedded", "sd-1.4", a repo id or a folder)
    source: str  # local folder or hub repo id
    is_local: bool

    @property
    def is_embedded(self) -> bool:
        return self.name == EMBEDDED


MAX_MODEL_CHARS = 1024  # longer than any folder path or repo id a user means


def resolve_model(model: str) -> ModelSpec:
    """Map a preset name, local folder or hub repo id to where its weights live."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a preset ({', '.join(PRESETS)}), a local folder or a hub repo id")
    model = model.strip()
    if len(model) > MAX_MODEL_CHARS or not model.isprintable():
        raise ValueError(f"model must be a preset ({', '.join(PRESETS)}), a local folder or a hub repo id "
                         f"'owner/name' (at most {MAX_MODEL_CHARS} printable characters)")
    if model in _TINY:
        module, builder, _ = _TINY[model]
        return ModelSpec(model, f"{module}.{builder}", True)
    source = PRESETS.get(model, model)
    path = Path(source).expanduser()
    if model == EMOJI and not (path / "model_index.json").is_file():
        raise ModelUnavailableError(
            "EmojiWorld's UNet is still in training (assets/emoji/README.md), so no pipeline ships yet; to try the "
            "committed kept state, export it: `python -m emojiworld.export --out assets/emoji/pipeline`")
    if _exists(path):
        if not (path / "model_index.json").is_file():
            raise ModelUnavailableError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        return ModelSpec(model, str(path), True)
    if model == EMBEDDED:
        raise ModelUnavailableError(f"the embedded model is missing from {path}; restore assets/ from the repository")
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise ModelUnavailableError(
            f"model {model!r} is neither a preset ({', '.join(PRESETS)}), an existing folder, nor a hub repo id 'owner/name'"
        )
    return ModelSpec(model, source, False)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system, or one it cannot look up, is no folder
        return False


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' that this machine has; otherwise a ValueError saying what to pass."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d{1,2})?", device.strip()):
        shown = device if isinstance(device, str) and len(device) <= 30 else type(device).__name__
        raise ValueError(f"unknown device {shown!r}; use cpu, cuda or cuda:N")
    device = device.strip()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but no CUDA GPU is visible; use the cpu device")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s); "
                             f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable(spec: ModelSpec, reason: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"model {spec.name!r} ({spec.source}) is not available: {reason}. To use it, download it on a machine "
        f"with internet access (`huggingface-cli download {spec.source}`, after accepting its licence on "
        f"https://huggingface.co/{spec.source} if it is gated) into the Hugging Face cache, or pass the path of a "
        "local diffusers folder. The embedded model ('embedded') always works offline."
    )


def torch_dtype(name: str) -> torch.dtype:
    """"bfloat16" -> torch.bfloat16; an unknown name raises an error listing the valid ones."""
    if not isinstance(name, str) or name not in DTYPES:
        name = name if isinstance(name, str) and len(name) <= 30 else type(name).__name__
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[name]


@serialised  # diffusers builds models under a process-wide patch (backends.building)
def load_pipeline(model: str = EMBEDDED, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  offload: str = "auto"):
    """Load a text-to-image pipeline; device and dtype are explicit (CPU/float32 by default).

    `offload` (backends.offload): "none" moves it to `device` whole and refuses one larger than the GPU's
    free memory; "model" keeps it in CPU memory and moves one model at a time to `device` while it runs;
    "auto" offloads only when it does not fit whole. Erasure loads with "none": it trains the denoiser."""
    from diffusers import DiffusionPipeline

    offload_mode(offload)
    spec = resolve_model(model)
    if spec.name in _TINY:
        module, builder, _ = _TINY[spec.name]
        pipe = getattr(importlib.import_module(module), builder)()  # built in float32
        return place_pipeline(pipe if dtype == torch.float32 else pipe.to(dtype=dtype), device, offload)
    kwargs = dict(dtype=dtype, use_safetensors=True)
    if _pipeline_class(spec) == "StableDiffusionPipeline":
        kwargs.update(safety_checker=None, requires_safety_checker=False)  # the app blurs with NudeNet instead
    if spec.is_local:
        pipe = DiffusionPipeline.from_pretrained(spec.source, local_files_only=True, **kwargs)
    else:
        pipe = _load_from_hub(spec, kwargs)
    pipe.set_progress_bar_config(disable=True)
    slice_large_decodes(pipe)
    return place_pipeline(pipe, device, offload)


def place_pipeline(pipe, device, offload: str = "none"):
    """Move `pipe` to `device` whole or offloaded (backends.offload.plan), after checking it fits."""
    return place(pipe, device, _checked_plan(pipe, device, offload))


def _checked_plan(pipe, device, offload: str) -> str:
    try:
        return offload_plan(pipe, device, offload)
    except DoesNotFitError as e:  # one error type for every model that cannot be loaded here
        raise ModelUnavailableError(str(e)) from None


def weight_bytes(pipe, device=None) -> int:
    """Bytes of every parameter and buffer of the pipeline's modules (only those on `device` if given)."""
    return sum(t.numel() * t.element_size() for m in components(pipe).values() for t in [*m.parameters(), *m.buffers()]
               if device is None or t.device == torch.device(device))


def check_weights_fit(pipe, device) -> None:
    """A pipeline larger than its GPU's free memory is refused before `.to(device)` (a CUDA
    out-of-memory error half-way through the move would leave nothing usable), saying what to change."""
    _checked_plan(pipe, device, "none")


SLICE_FROM_PX = 256  # images this large decode one at a time


def slice_large_decodes(pipe) -> None:
    """Large images decode one latent at a time: a batch of 64 latents at 512 px would take ~50 GiB of
    VAE activations in float32 at once, and activations grow with the batch; one at a time, the same images."""
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "use_slicing") and family_of(pipe).native_size(pipe) >= SLICE_FROM_PX:
        vae.enable_slicing()


def _load_from_hub(spec: ModelSpec, kwargs: dict):
    from diffusers import DiffusionPipeline

    try:  # a copy in the local cache works offline
        return DiffusionPipeline.from_pretrained(spec.source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as cached_error:
        if not _hub_reachable():
            reason = "it is not in the local Hugging Face cache and the hub cannot be reached (offline)"
            raise _unavailable(spec, reason) from cached_error
    try:
        return DiffusionPipeline.from_pretrained(spec.source, **kwargs)
    except Exception as e:  # gated repo, missing safetensors, network failure mid-download ...
        raise _unavailable(spec, f"download failed ({type(e).__name__}: {e})") from e


def model_family(model: str) -> Family:
    """The family `model` belongs to, known without loading its weights (docs/design.md §1)."""
    return family_named(_pipeline_class(resolve_model(model)))


def _pipeline_class(spec: ModelSpec) -> str | None:
    """model_index.json's class: from the folder, the hub cache, or (neither at hand) the repo's name."""
    if spec.name in _TINY:
        return _TINY[spec.name][2]
    index = Path(spec.source) / "model_index.json" if spec.is_local else _cached_index(spec.source)
    if index is not None:
        return json.loads(index.read_text()).get("_class_name")
    name = spec.source.lower()
    return "FluxPipeline" if "flux" in name else "StableDiffusionXLPipeline" if "-xl" in name else "StableDiffusionPipeline"


def _cached_index(repo: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "model_index.json")
    return Path(found) if isinstance(found, str) else None


@serialised
def load_classifier(device: str | torch.device = "cpu"):
    """The embedded world classifier (one head per attribute)."""
    from shapesworld.classifier import WorldClassifier

    return WorldClassifier.load(ASSETS / "classifier").to(device)


@serialised
def load_embedded_clip(device: str | torch.device = "cpu", folder: Path = ASSETS / "clip"):
    """An embedded world's open_clip CLIP (ShapesWorld's by default; EmojiWorld's in assets/emoji/clip) and
    its tokenizer function (texts -> ids)."""
    from open_clip.model import CLIP
    from safetensors.torch import load_file

    from shapesworld.tokenizer import tokenize

    cfg = json.loads((folder / "open_clip_config.json").read_text())
    model = CLIP(**cfg["model_cfg"])
    model.load_state_dict(load_file(folder / "open_clip_model.safetensors"))
    return model.eval().to(device), tokenize
