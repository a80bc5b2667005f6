"""Diffusion plumbing the fine-tuning methods share: prompt embeddings, z_t sampling, losses.

Shapes: latents z [B, C, h, w]; text embeddings [B, L, d] with L the tokenizer's context
(77 on SD, shorter on the embedded model: nothing here assumes 77).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler


@torch.no_grad()
def embed_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    """Text-encoder hidden states [N, L, d] for prompts, padded to the tokenizer's context."""
    tok = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    return pipe.text_encoder(tok.input_ids.to(pipe.device))[0]


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


@torch.no_grad()
def sample_until(unet, scheduler: DDIMScheduler, z: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                 guidance: float, k: int) -> torch.Tensor:
    """Run k DDIM steps with classifier-free guidance from z_T; returns z at scheduler.timesteps[k]."""
    emb = torch.cat([uncond.expand(z.shape[0], -1, -1), cond.expand(z.shape[0], -1, -1)])
    for t in scheduler.timesteps[:k]:
        eps_u, eps_c = unet(torch.cat([z, z]), t, encoder_hidden_states=emb).sample.chunk(2)
        z = scheduler.step(eps_u + guidance * (eps_c - eps_u), t, z).prev_sample
    return z


def to_x0(z: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Predicted clean latent x0 = (z - sqrt(1 - a) eps) / sqrt(a)."""
    return (z - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def loss_in_space(pred_eps: torch.Tensor, target_eps: torch.Tensor, z: torch.Tensor, alpha_bar: torch.Tensor,
                  space: str) -> torch.Tensor:
    """MSE between two noise predictions, in eps space or in predicted-x0 space (reference code)."""
    if space == "x0":
        return F.mse_loss(to_x0(z, pred_eps, alpha_bar), to_x0(z, target_eps, alpha_bar))
    return F.mse_loss(pred_eps, target_eps)
