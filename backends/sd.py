"""The Stable Diffusion family (SD 1.x, 2.x and the embedded model): a UNet predicting eps or v from
one text encoder's hidden states, sampled with classifier-free guidance against the empty prompt.

Also the DDIM pieces every UNet family shares (`ddim_scheduler`, `guided_eps`, `UNetSampler`): SDXL
differs only in its conditioning, which `Family.predict` hides.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler
from torch.utils.checkpoint import checkpoint

from .family import Cond, Denoiser, broadcast, cat, expand
from .offload import execution_device
from .prompts import embed_prompts


class SDFamily:
    name = "sd"
    pipeline_classes: tuple[str, ...] = ("StableDiffusionPipeline",)
    component = "unet"

    def denoiser(self, pipe) -> Denoiser:
        return pipe.unet

    def encode(self, pipe, prompts: list[str]) -> Cond:
        return {"emb": embed_prompts(pipe, prompts)}  # [N, L, d]

    def predict(self, net, z: torch.Tensor, t: torch.Tensor, cond: Cond) -> torch.Tensor:
        # in the weights' dtype: AP's search centres are float32 word-store rows, and with half-precision
        # weights and autocast off nothing else casts them (the cast passes the search's gradient)
        return net(z, t, encoder_hidden_states=broadcast(cond, len(z))["emb"].to(net.dtype)).sample

    def prediction_type(self, pipe) -> str:
        return pipe.scheduler.config.get("prediction_type", "epsilon")

    def latent_size(self, pipe) -> int:
        return self.denoiser(pipe).config.sample_size

    def native_size(self, pipe) -> int:
        return self.latent_size(pipe) * pipe.vae_scale_factor

    def noise(self, pipe, n: int, gen: torch.Generator, size: int | None = None) -> torch.Tensor:
        net = self.denoiser(pipe)
        side = size // pipe.vae_scale_factor if size else self.latent_size(pipe)
        z = torch.randn((n, net.config.in_channels, side, side), generator=gen)
        return z.to(execution_device(pipe), net.dtype)

    def initial_latents(self, pipe, seeds: list[int], height: int, width: int) -> torch.Tensor:
        net = self.denoiser(pipe)
        shape = (net.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
        z = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        return z.to(execution_device(pipe), net.dtype)

    def pipeline_inputs(self, cond: Cond, negative: Cond) -> dict:
        return {"prompt_embeds": cond["emb"], "negative_prompt_embeds": expand(negative, len(cond["emb"]))["emb"]}

    def text_inputs(self, pipe) -> dict:
        return {}

    def few_step_sampler(self, pipe, steps: int, guidance: float, size: int | None = None):
        return UNetSampler(self, pipe, steps, guidance, size)


def ddim_scheduler(pipe, steps: int) -> DDIMScheduler:
    """A DDIM scheduler with the pipeline's noise schedule, set to `steps` steps."""
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    return scheduler


def guided_eps(family, net, z: torch.Tensor, t: torch.Tensor, both: Cond, guidance: float) -> torch.Tensor:
    """Classifier-free guided output; `both` [2B, ...] holds the unconditional rows first, then the
    conditional ones (one denoiser call on the doubled batch)."""
    eps_u, eps_c = family.predict(net, torch.cat([z, z]), t, both).chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


class UNetSampler:
    """Guided DDIM on a UNet family, differentiable (MCE, docs/design.md §3). Every few-step sampler
    exposes the same four things, so a method never asks which model it trains:
        component   the pipeline attribute of the denoiser ("unet" | "transformer")
        embed(p)    prompts -> conditioning, a dict of batch-first tensors (rows can be cached and concatenated)
        noise(n, g) z_T from a CPU generator ([n, C, h, w] for a UNet, packed [n, h/2*w/2, 4C] for FLUX)
        sample(c,z) the final latents of the sampler from z_T; with grad=True gradients flow through every
                    step and each denoiser call can be checkpointed (activations recomputed in backward)
    """

    def __init__(self, family, pipe, steps: int, guidance: float, size: int | None = None):
        self.family, self.pipe, self.guidance, self.size = family, pipe, guidance, size  # size: px, None = native
        self.component = family.component
        self.scheduler = ddim_scheduler(pipe, steps)
        self.null = family.encode(pipe, [""])  # [1, ...]

    @property
    def model(self) -> torch.nn.Module:
        return self.family.denoiser(self.pipe)

    def embed(self, prompts: list[str]) -> Cond:
        return self.family.encode(self.pipe, prompts)

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return self.family.noise(self.pipe, n, gen, self.size) * self.scheduler.init_noise_sigma

    def sample(self, cond: Cond, z: torch.Tensor, grad: bool = False, use_checkpoint: bool = True) -> torch.Tensor:
        both = cat([expand(self.null, len(z)), cond])  # [2B, ...]: uncond, cond
        for t in self.scheduler.timesteps:
            def eps(x, t=t):
                return guided_eps(self.family, self.model, x, t, both, self.guidance)

            z = self.scheduler.step(call(eps, z, grad, use_checkpoint), t, z).prev_sample
        return z


def call(fn, x: torch.Tensor, grad: bool, use_checkpoint: bool) -> torch.Tensor:
    """fn(x), checkpointed when it is differentiated and checkpointing is on."""
    return checkpoint(fn, x, use_reentrant=False) if grad and use_checkpoint else fn(x)


SD = SDFamily()
