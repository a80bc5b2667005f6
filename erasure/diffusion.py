"""Diffusion plumbing the fine-tuning methods share: z_t sampling and losses. The denoiser call itself
is the model family's (`backends.family.Family.predict`), so nothing here knows which model it runs.

Shapes: latents z [B, C, h, w]; conditionings are dicts with "emb" [B, L, d] (L the tokenizer's context:
77 on SD, shorter on the embedded model; nothing here assumes 77).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from backends.family import Cond, cat, expand
from backends.sd import ddim_scheduler, guided_eps  # noqa: F401 - the methods' DDIM pieces, from backends


@torch.no_grad()
def sample_until(family, net, scheduler: DDIMScheduler, z: torch.Tensor, cond: Cond, uncond: Cond,
                 guidance: float, k: int) -> torch.Tensor:
    """Run k DDIM steps with classifier-free guidance from z_T; returns z at scheduler.timesteps[k]."""
    for z_k in guided_ddim(family, net, scheduler, z, cond, uncond, guidance, k):
        z = z_k
    return z


def guided_ddim(family, net, scheduler: DDIMScheduler, z: torch.Tensor, cond: Cond, uncond: Cond, guidance: float,
                k: int):
    """The latent after each of k guided DDIM steps from z_T (a generator; z [B, C, h, w], cond one row or B)."""
    both = cat([expand(uncond, z.shape[0]), expand(cond, z.shape[0])])
    for t in scheduler.timesteps[:k]:
        z = scheduler.step(guided_eps(family, net, z, t, both, guidance), t, z).prev_sample
        yield z


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
