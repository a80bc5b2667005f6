"""Few-step samplers a method can back-propagate through, one per denoiser family (MCE, docs/design.md §3).

Both expose the same four things, so a method never asks which model it trains:
    component   the pipeline attribute of the denoiser ("unet" | "transformer")
    embed(p)    prompts -> conditioning, a dict of batch-first tensors (rows can be cached and concatenated)
    noise(n, g) z_T from a CPU generator ([n, C, h, w] for the UNet, packed [n, h/2*w/2, 4C] for FLUX)
    sample(c,z) the final latents of the sampler from z_T; with grad=True gradients flow through every
                step and each denoiser call can be checkpointed (activations recomputed in backward)
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from .diffusion import ddim_scheduler, embed_prompts, guided_eps


def few_step_sampler(pipe, steps: int, guidance: float):
    """The sampler that matches `pipe`: guided DDIM on a UNet, flow-matching Euler on FLUX."""
    from backends.flux import is_flux

    return FluxSampler(pipe, steps, guidance) if is_flux(pipe) else UNetSampler(pipe, steps, guidance)


def cat(conds: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate conditioning dicts along the batch."""
    return {k: torch.cat([c[k] for c in conds]) for k in conds[0]}


def rows(cond: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Split a conditioning dict into one dict per prompt (each with a batch of 1)."""
    n = len(next(iter(cond.values())))
    return [{k: v[i : i + 1] for k, v in cond.items()} for i in range(n)]


def _call(fn, x: torch.Tensor, grad: bool, use_checkpoint: bool) -> torch.Tensor:
    return checkpoint(fn, x, use_reentrant=False) if grad and use_checkpoint else fn(x)


class UNetSampler:
    """Stable-Diffusion-style UNet: DDIM with classifier-free guidance against the empty prompt."""

    component = "unet"

    def __init__(self, pipe, steps: int, guidance: float):
        self.pipe, self.guidance = pipe, guidance
        self.scheduler = ddim_scheduler(pipe, steps)
        self.null = embed_prompts(pipe, [""])  # [1, L, d]

    @property
    def model(self) -> torch.nn.Module:
        return self.pipe.unet

    def embed(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return {"emb": embed_prompts(self.pipe, prompts)}  # [N, L, d]

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        cfg = self.model.config
        z = torch.randn((n, cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=gen)
        return z.to(self.pipe.device, self.model.dtype) * self.scheduler.init_noise_sigma

    def sample(self, cond: dict[str, torch.Tensor], z: torch.Tensor, grad: bool = False,
               use_checkpoint: bool = True) -> torch.Tensor:
        both = torch.cat([self.null.expand(len(z), -1, -1), cond["emb"]])  # [2B, L, d]: uncond, cond
        for t in self.scheduler.timesteps:
            def eps(x, t=t):
                return guided_eps(self.model, x, t, both, self.guidance)

            z = self.scheduler.step(_call(eps, z, grad, use_checkpoint), t, z).prev_sample
        return z


class FluxSampler:
    """FLUX: Euler steps of the flow-matching ODE on diffusers' schedule (the pipeline's sigmas and
    resolution shift). FLUX.1-schnell is guidance-distilled, so there is no classifier-free guidance;
    a model with a guidance embedding (FLUX.1-dev) gets `guidance` through it, as its pipeline does."""

    component = "transformer"
    MAX_SEQUENCE_LENGTH = 512  # FluxPipeline's default, so the masks train on the prompts the app samples

    def __init__(self, pipe, steps: int, guidance: float):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        from backends.generate import native_size

        self.pipe, self.guidance = pipe, guidance
        size = native_size(pipe)
        self.h = self.w = 2 * (size // (pipe.vae_scale_factor * 2))  # unpacked latent side
        self.img_ids = pipe._prepare_latent_image_ids(1, self.h // 2, self.w // 2, pipe.device, self.model.dtype)
        seq = (self.h // 2) * (self.w // 2)
        sc = pipe.scheduler.config
        mu = calculate_shift(seq, sc.get("base_image_seq_len", 256), sc.get("max_image_seq_len", 4096),
                             sc.get("base_shift", 0.5), sc.get("max_shift", 1.15))
        scheduler = copy.deepcopy(pipe.scheduler)  # set_timesteps mutates it; the pipeline's stays as it was
        retrieve_timesteps(scheduler, steps, pipe.device, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        self.timesteps = scheduler.timesteps  # [steps], sigma * 1000
        self.sigmas = scheduler.sigmas.to(pipe.device)  # [steps + 1], ending at 0
        self.txt_ids = None

    @property
    def model(self) -> torch.nn.Module:
        return self.pipe.transformer

    def embed(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            emb, pooled, txt_ids = self.pipe.encode_prompt(prompts, prompt_2=None, device=self.pipe.device,
                                                           max_sequence_length=self.MAX_SEQUENCE_LENGTH)
        self.txt_ids = txt_ids  # [L, 3], the same for every prompt
        return {"emb": emb, "pooled": pooled}  # [N, L, d_t5], [N, d_clip]

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        channels = self.model.config.in_channels // 4
        z = torch.randn((n, channels, self.h, self.w), generator=gen)
        return self.pipe._pack_latents(z, n, channels, self.h, self.w).to(self.pipe.device, self.model.dtype)

    def sample(self, cond: dict[str, torch.Tensor], z: torch.Tensor, grad: bool = False,
               use_checkpoint: bool = True) -> torch.Tensor:
        if self.txt_ids is None:
            raise RuntimeError("call embed() before sample(): FLUX needs the text token ids")
        n = len(z)
        guidance = None
        if self.model.config.guidance_embeds:
            guidance = torch.full((n,), self.guidance, device=z.device, dtype=torch.float32)
        for i, t in enumerate(self.timesteps):
            def velocity(x, t=t):
                return self.model(hidden_states=x, timestep=(t / 1000).expand(n).to(x.dtype), guidance=guidance,
                                  pooled_projections=cond["pooled"], encoder_hidden_states=cond["emb"],
                                  txt_ids=self.txt_ids, img_ids=self.img_ids, return_dict=False)[0]

            z = z + (self.sigmas[i + 1] - self.sigmas[i]) * _call(velocity, z, grad, use_checkpoint)
        return z
