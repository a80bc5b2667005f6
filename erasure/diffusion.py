"""Diffusion plumbing the fine-tuning methods share: prompt embeddings, z_t sampling, losses.

Shapes: latents z [B, C, h, w]; text embeddings [B, L, d] with L the tokenizer's context
(77 on SD, shorter on the embedded model: nothing here assumes 77).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from backends.prompts import embed_prompts  # noqa: F401 - the methods' conditioning, from backends


def ddim_scheduler(pipe, steps: int) -> DDIMScheduler:
    """A DDIM scheduler with the pipeline's noise schedule, set to `steps` steps."""
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    return scheduler


def predict(unet, z: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """eps(z, t, emb); `emb` is broadcast over the batch when it has one row."""
    if emb.shape[0] == 1 and z.shape[0] > 1:
        emb = emb.expand(z.shape[0], -1, -1)
    return unet(z, t, encoder_hidden_states=emb).sample


def guided_eps(unet, z: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guided eps; `emb` [2B, L, d] holds the unconditional rows first, then the
    conditional ones (one UNet call on the doubled batch)."""
    eps_u, eps_c = predict(unet, torch.cat([z, z]), t, emb).chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


@torch.no_grad()
def sample_until(unet, scheduler: DDIMScheduler, z: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                 guidance: float, k: int) -> torch.Tensor:
    """Run k DDIM steps with classifier-free guidance from z_T; returns z at scheduler.timesteps[k]."""
    emb = torch.cat([uncond.expand(z.shape[0], -1, -1), cond.expand(z.shape[0], -1, -1)])
    for t in scheduler.timesteps[:k]:
        z = scheduler.step(guided_eps(unet, z, t, emb, guidance), t, z).prev_sample
    return z


def to_x0(z: torch.Tensor, out: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str = "epsilon") -> torch.Tensor:
    """Predicted clean latent from a UNet output: eps gives (z - sqrt(1 - a) eps) / sqrt(a), v gives
    sqrt(a) z - sqrt(1 - a) v (the only form defined at a zero-SNR timestep, where a = 0)."""
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * z - (1 - alpha_bar).sqrt() * out
    if prediction_type != "epsilon":
        raise ValueError(f"prediction type {prediction_type!r} is not supported; use 'epsilon' or 'v_prediction'")
    return (z - (1 - alpha_bar).sqrt() * out) / alpha_bar.sqrt()


def loss_in_space(pred: torch.Tensor, target: torch.Tensor, z: torch.Tensor, alpha_bar: torch.Tensor,
                  space: str, prediction_type: str = "epsilon") -> torch.Tensor:
    """MSE between two UNet outputs, as predicted (eps or v) or in predicted-x0 space (reference code).

    The ESD/AP targets are linear combinations of UNet outputs, so they carry over to v-prediction
    unchanged; only the x0 conversion has to know which quantity the UNet predicts."""
    if space == "x0":
        return F.mse_loss(to_x0(z, pred, alpha_bar, prediction_type), to_x0(z, target, alpha_bar, prediction_type))
    return F.mse_loss(pred, target)
