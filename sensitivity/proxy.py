"""The cheap proxy of the spectrum (docs/design.md §2): D(c) = mean over a fixed set of (t, z_t) of
||eps_theta'(z_t, c, t) - eps_theta(z_t, c, t)||^2 (mean over latent elements, so the number does
not grow with resolution). One denoiser forward per model per (t, z_t): no sampling, no CLIP.
On a v-prediction model the output is v; the difference is compared as predicted.
"""

from __future__ import annotations

import torch

from backends.families import family_of
from backends.family import Cond, repeat_rows, to


def proxy_points(pipe, n_timesteps: int = 4, n_latents: int = 2, seed: int = 0,
                 size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed set: timesteps [n_t] at the centres of n_t equal bins of the training range
    (noisiest first; one point sits at T/2) and standard-normal z_t [n_z, C, h, w] at the latent size of
    `size` px (the model's native size by default; the spectrum's `resolution`), drawn on the CPU from
    `seed` (same on CPU and GPU)."""
    n_train = pipe.scheduler.config.num_train_timesteps
    t = ((torch.arange(n_timesteps, 0, -1) - 0.5) * n_train / n_timesteps).floor().long()
    z = family_of(pipe).noise(pipe, n_latents, torch.Generator().manual_seed(seed), size)
    return t, z


@torch.inference_mode()
def proxy_divergence(base, erased, cond: Cond, timesteps: torch.Tensor, latents: torch.Tensor,
                     compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """D(c) for a batch of concepts: the base and erased pipelines, cond of B rows ("emb" [B, L, d])
    -> [B]; every concept sees every (t, z_t).

    A compute_dtype below the weights' runs both denoisers under autocast (weights untouched); the
    difference is taken in float32. The benchmark reports how well the bfloat16 ranking agrees
    with the float32 one."""
    family = family_of(base)
    base_net, erased_net = family.denoiser(base), family.denoiser(erased)
    b, n_t, n_z = len(cond["emb"]), len(timesteps), len(latents)
    device, dtype = cond["emb"].device, base_net.dtype
    # one batch of B * n_t * n_z rows: concept-major, then timestep, then latent
    z = latents.to(device, dtype).repeat(b * n_t, *([1] * (latents.dim() - 1)))
    t = timesteps.to(device).repeat_interleave(n_z).repeat(b)
    c = repeat_rows(to(cond, dtype), n_t * n_z)
    with torch.autocast(device.type, dtype=compute_dtype, enabled=compute_dtype != dtype):
        out_erased = family.predict(erased_net, z, t, c)
        out_base = family.predict(base_net, z, t, c)
    diff = out_erased.float() - out_base.float()
    return diff.pow(2).flatten(1).mean(1).view(b, n_t * n_z).mean(1).cpu()
