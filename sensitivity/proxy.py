"""The cheap proxy of the spectrum (docs/design.md §2): D(c) = mean over a fixed set of (t, z_t) of
||eps_theta'(z_t, c, t) - eps_theta(z_t, c, t)||^2 (mean over latent elements, so the number does
not grow with resolution). One UNet forward per model per (t, z_t): no sampling, no CLIP.
On a v-prediction model the UNet's output is v; the difference is compared as predicted.
"""

from __future__ import annotations

import torch


def proxy_points(unet, scheduler, n_timesteps: int = 4, n_latents: int = 2, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed set: timesteps [n_t] at the centres of n_t equal bins of the training range
    (noisiest first; one point sits at T/2) and standard-normal z_t [n_z, C, h, w] drawn on the
    CPU from `seed` (same on CPU and GPU)."""
    n_train = scheduler.config.num_train_timesteps
    t = ((torch.arange(n_timesteps, 0, -1) - 0.5) * n_train / n_timesteps).floor().long()
    size = unet.config.sample_size
    z = torch.randn((n_latents, unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(seed))
    return t, z


@torch.inference_mode()
def proxy_divergence(base_unet, erased_unet, emb: torch.Tensor, timesteps: torch.Tensor, latents: torch.Tensor,
                     compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """D(c) for a batch of concepts: emb [B, L, d] -> [B]; every concept sees every (t, z_t).

    A compute_dtype below the weights' runs both UNets under autocast (weights untouched); the
    difference is taken in float32. The benchmark reports how well the bfloat16 ranking agrees
    with the float32 one."""
    b, n_t, n_z = emb.shape[0], len(timesteps), len(latents)
    device, dtype = emb.device, base_unet.dtype
    # one batch of B * n_t * n_z rows: concept-major, then timestep, then latent
    z = latents.to(device, dtype).repeat(b * n_t, 1, 1, 1)
    t = timesteps.to(device).repeat_interleave(n_z).repeat(b)
    e = emb.to(dtype).repeat_interleave(n_t * n_z, dim=0)
    with torch.autocast(device.type, dtype=compute_dtype, enabled=compute_dtype != dtype):
        out_erased = erased_unet(z, t, encoder_hidden_states=e).sample
        out_base = base_unet(z, t, encoder_hidden_states=e).sample
    diff = out_erased.float() - out_base.float()
    return diff.pow(2).mean(dim=(1, 2, 3)).view(b, n_t * n_z).mean(1).cpu()
