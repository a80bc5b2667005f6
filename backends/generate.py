"""Seeded generation shared by the app, sensitivity and evaluation.

The initial noise z_T of each seed is drawn on the CPU from `torch.Generator(seed)`, so the
same seed gives the same z_T for the original and the erased model and on CPU or GPU
(docs/design.md §2: delta(c) compares images from the *same* initial noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cancel import Cancelled
from .families import family_of

MAX_SAMPLER_STEPS = 1000  # a sampler step count beyond this is a mistake, not a setting


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 25  # denoising steps (DDIM for the embedded model)
    guidance: float = 5.0  # classifier-free guidance scale
    height: int | None = None  # pixels; None = the model's native size
    width: int | None = None

    def check(self) -> None:
        if not 1 <= self.steps <= MAX_SAMPLER_STEPS:
            raise ValueError(f"steps must be in 1..{MAX_SAMPLER_STEPS}, got {self.steps}")
        if not 0.0 <= self.guidance <= 50.0:
            raise ValueError(f"guidance must be in 0..50, got {self.guidance}")


def native_size(pipe) -> int:
    return family_of(pipe).native_size(pipe)


def size_unit(pipe) -> int:
    """The smallest step of image sides (px) the denoiser takes: the VAE's factor times the UNet's
    downsamplings (SD 1.4: 8 x 8 = 64), or times FLUX's 2 x 2 latent packing (16)."""
    family = family_of(pipe)
    levels = len(getattr(family.denoiser(pipe).config, "down_block_types", ())) or 1
    return pipe.vae_scale_factor * (2 if family.name == "flux" else 2 ** (levels - 1))


MAX_RESOLUTION = 4096  # px: 4x FLUX's native side


def check_resolution(resolution) -> None:
    """A `resolution` setting, before any model is at hand: 0 (native) or a side in px up to MAX_RESOLUTION."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 0 <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be 0 (the model's native size) or a side in px up to {MAX_RESOLUTION}, "
                         f"got {resolution!r}")


def resolve_size(pipe, resolution: int) -> int:
    """The image side a `resolution` setting means on this model: its native size for 0, else the
    setting itself if the denoiser takes it (a ValueError naming the sizes it does take otherwise)."""
    if not resolution:
        return native_size(pipe)
    unit = size_unit(pipe)
    if resolution < unit or resolution % unit:
        raise ValueError(f"resolution {resolution} px does not fit this model: use a multiple of {unit} px "
                         f"(its native size is {native_size(pipe)} px; 0 means native)")
    return resolution


def initial_latents(pipe, seeds: list[int], height: int, width: int) -> torch.Tensor:
    """z_T per seed, [len(seeds), C, h, w], drawn on CPU in float32 then moved to the pipe
    (FLUX: packed into its token sequence; see the family's initial_latents)."""
    return family_of(pipe).initial_latents(pipe, seeds, height, width)


def generate(pipe, prompts: list[str], seeds: list[int], settings: SamplerSettings = SamplerSettings(),
             batch_size: int = 64, cancel=None, progress=None) -> np.ndarray:
    """Images for (prompts[i], seeds[i]) pairs as uint8 [N, H, W, 3]. `cancel` (erasure.CancelToken)
    stops the sampler at its next step with erasure.Cancelled (a shared machine's Stop button);
    `progress(done, total)` is called after every sampler step (steps of all batches)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
    text = family_of(pipe).text_inputs(pipe)  # encoded as training encodes them (FLUX: its T5 length)
    starts = range(0, len(prompts), batch_size)
    parts = []
    for b, i in enumerate(starts):
        hook = _on_step(cancel, progress, b * settings.steps, len(starts) * settings.steps)
        parts.append(_images(pipe, seeds[i : i + batch_size], settings, prompt=prompts[i : i + batch_size], **text,
                             **({} if hook is None else {"callback_on_step_end": hook})))
    return np.concatenate(parts)


def _on_step(cancel, progress, offset: int, total: int):
    """A diffusers step-end callback that raises Cancelled once `cancel` is set (checked every step) and
    reports offset + steps done of `total`; None when there is neither."""
    if cancel is None and progress is None:
        return None

    def on_step_end(pipe, step: int, timestep, kwargs: dict) -> dict:
        if cancel is not None:
            cancel.give_way()
            if cancel.cancelled:
                raise Cancelled(f"sampling cancelled at step {step + 1}")
        if progress is not None:
            progress(offset + step + 1, total)
        return kwargs

    return on_step_end


def generate_from_embeddings(pipe, embeds: dict, negative: dict, seeds: list[int],
                             settings: SamplerSettings = SamplerSettings(), batch_size: int = 64) -> np.ndarray:
    """Images for (embeds[i], seeds[i]) as uint8 [N, H, W, 3]: prompts given as text-encoder outputs
    (embeds [N, ...]; negative [1, ...], the unconditional branch of guidance), e.g. searched token
    embeddings that no text spells. `embeds` and `negative` are the family's conditionings
    (backends.family.Cond: {"emb": ...}, plus SDXL's pooled embedding and size ids)."""
    n = len(embeds["emb"])
    if n != len(seeds):
        raise ValueError(f"got {n} prompt embeddings but {len(seeds)} seeds; pass one seed per prompt")
    family, out = family_of(pipe), []
    for i in range(0, n, batch_size):
        batch = {k: v[i : i + batch_size] for k, v in embeds.items()}
        out.append(_images(pipe, seeds[i : i + batch_size], settings, **family.pipeline_inputs(batch, negative)))
    return np.concatenate(out)


def _images(pipe, seeds: list[int], settings: SamplerSettings, **inputs) -> np.ndarray:
    """One pipeline call from the seeds' z_T; `inputs` are the prompts (text or embeddings)."""
    settings.check()
    h = settings.height or native_size(pipe)
    w = settings.width or native_size(pipe)
    images = pipe(**inputs, latents=initial_latents(pipe, seeds, h, w), num_inference_steps=settings.steps,
                  guidance_scale=settings.guidance, height=h, width=w, output_type="np").images
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def grid(images: np.ndarray, cols: int) -> np.ndarray:
    """[N, H, W, 3] -> one image of rows x cols tiles (missing tiles white)."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    canvas = np.full((rows * h, cols * w, c), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        canvas[r * h : (r + 1) * h, k * w : (k + 1) * w] = im
    return canvas
