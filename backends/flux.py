"""FLUX (flow matching) support: a tiny randomly initialised FluxPipeline built from configs, for
tests and CPU timing of the code path (no download), and the latent packing FLUX samples with.

The tiny pipeline has every component FLUX.1-schnell has (FluxTransformer2DModel with double and
single blocks, a CLIP text encoder for the pooled embedding, a T5 encoder for the sequence, a KL VAE,
the flow-matching Euler scheduler); both tokenizers are the embedded CLIP BPE tokenizer, since a T5
sentencepiece model cannot be built offline (the T5 encoder only needs token ids).
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import torch

from .family import Cond, Denoiser, broadcast
from .offload import execution_device
from .paths import ASSETS


def tiny_flux_pipeline(seed: int = 0, size: int = 32):
    """A FluxPipeline of a few hundred thousand random parameters; images are size x size."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(str(ASSETS / "pipeline" / "tokenizer"))
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=1, num_attention_heads=2, projection_dim=32,
                                                max_position_embeddings=tokenizer.model_max_length))
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                             num_heads=2))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], latent_channels=4,
                        norm_num_groups=8, sample_size=size, shift_factor=0.0, scaling_factor=1.0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer, transformer=transformer)
    for module in (text_encoder, text_encoder_2, vae, transformer):
        module.eval()  # built from configs, they start in training mode (T5 dropout would make sampling random)
    pipe.default_sample_size = size // pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
    return pipe


DEV_GUIDANCE = 3.5  # FluxPipeline's default guidance_scale, for models with a guidance embedding


class FluxFamily:
    """A flow-matching transformer on packed latent tokens, conditioned on T5 tokens and a pooled CLIP
    embedding. Its denoiser predicts a velocity; MCE trains it through its few-step sampler, and the
    eps-prediction methods (ESD, AP, UCE, CA) do not apply (their specs leave this family out)."""

    name = "flux"
    pipeline_classes: tuple[str, ...] = ("FluxPipeline",)
    component = "transformer"

    def denoiser(self, pipe) -> Denoiser:
        return pipe.transformer

    @torch.no_grad()
    def encode(self, pipe, prompts: list[str]) -> Cond:
        """{"emb": [N, L, d_t5], "pooled": [N, d_clip]}; the text token ids are all zero (predict)."""
        emb, pooled, _ = pipe.encode_prompt(prompts, prompt_2=None, device=execution_device(pipe),
                                            max_sequence_length=self.max_sequence_length(pipe))
        return {"emb": emb, "pooled": pooled}

    def predict(self, net, z: torch.Tensor, t: torch.Tensor, cond: Cond, guidance: float = DEV_GUIDANCE) -> torch.Tensor:
        """The velocity at packed latents z [B, seq, 4C] (a square latent, 2 x 2 tokens packed) and
        timesteps t [B] on the 0..1000 scale (sigma * 1000), with the ids the pipeline gives: image
        tokens by row and column, text tokens all zero. A guidance-embedding model (FLUX.1-dev) gets
        `guidance` through it (its pipeline's default unless the sampler sets one). The spectrum's
        proxy and the few-step sampler both call this."""
        from diffusers import FluxPipeline

        n, side = len(z), math.isqrt(z.shape[1])
        cond = broadcast(cond, n)
        img_ids = FluxPipeline._prepare_latent_image_ids(1, side, side, z.device, z.dtype)
        txt_ids = torch.zeros(cond["emb"].shape[1], 3, device=z.device, dtype=z.dtype)
        g = torch.full((n,), guidance, device=z.device, dtype=torch.float32) if net.config.guidance_embeds else None
        return net(hidden_states=z, timestep=(t / 1000).to(z.dtype), guidance=g, pooled_projections=cond["pooled"],
                   encoder_hidden_states=cond["emb"], txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]

    def prediction_type(self, pipe) -> str:
        return "flow"

    def native_size(self, pipe) -> int:
        return pipe.default_sample_size * pipe.vae_scale_factor

    def latent_size(self, pipe, size: int | None = None) -> int:
        """Side of the unpacked latent of a `size` px image (native by default): even, so it packs 2 x 2."""
        return 2 * ((size or self.native_size(pipe)) // (pipe.vae_scale_factor * 2))

    def noise(self, pipe, n: int, gen: torch.Generator, size: int | None = None) -> torch.Tensor:
        """[n, h/2 * w/2, 4C]: drawn unpacked [n, C, h, w] from gen, then packed."""
        channels = pipe.transformer.config.in_channels // 4
        side = self.latent_size(pipe, size)
        z = torch.randn((n, channels, side, side), generator=gen)
        return pipe._pack_latents(z, n, channels, side, side).to(execution_device(pipe), pipe.transformer.dtype)

    def initial_latents(self, pipe, seeds: list[int], height: int, width: int) -> torch.Tensor:
        """z_T per seed, drawn unpacked [C, h, w] on the CPU (same noise for every model and device), then
        packed into FLUX's token sequence [B, h/2 * w/2, 4C]."""
        channels = pipe.transformer.config.in_channels // 4
        h, w = self.latent_size(pipe, height), self.latent_size(pipe, width)
        z = torch.stack([torch.randn((channels, h, w), generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        return pipe._pack_latents(z, len(seeds), channels, h, w).to(execution_device(pipe), pipe.transformer.dtype)

    def pipeline_inputs(self, cond: Cond, negative: Cond) -> dict:
        return {"prompt_embeds": cond["emb"], "pooled_prompt_embeds": cond["pooled"]}  # guidance-distilled

    def max_sequence_length(self, pipe) -> int:
        """T5 tokens per prompt: FLUX.1-schnell (no guidance embedding) was trained with 256, FLUX.1-dev
        with 512 (FluxPipeline's default, which would give schnell 256 padding tokens it never saw)."""
        return 512 if pipe.transformer.config.guidance_embeds else 256

    def text_inputs(self, pipe) -> dict:
        return {"max_sequence_length": self.max_sequence_length(pipe)}

    def few_step_sampler(self, pipe, steps: int, guidance: float, size: int | None = None):
        return FluxSampler(pipe, steps, guidance, size)


class FluxSampler:
    """FLUX: Euler steps of the flow-matching ODE on diffusers' schedule (the pipeline's sigmas and
    resolution shift). FLUX.1-schnell is guidance-distilled, so there is no classifier-free guidance;
    a model with a guidance embedding (FLUX.1-dev) gets `guidance` through it, as its pipeline does.
    The same interface as backends.sd.UNetSampler."""

    component = "transformer"

    def __init__(self, pipe, steps: int, guidance: float, size: int | None = None):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        self.pipe, self.guidance, self.size = pipe, guidance, size  # size: px, None = native
        seq = (FLUX.latent_size(pipe, size) // 2) ** 2  # packed image tokens: the schedule's shift depends on them
        sc = pipe.scheduler.config
        mu = calculate_shift(seq, sc.get("base_image_seq_len", 256), sc.get("max_image_seq_len", 4096),
                             sc.get("base_shift", 0.5), sc.get("max_shift", 1.15))
        scheduler = copy.deepcopy(pipe.scheduler)  # set_timesteps mutates it; the pipeline's stays as it was
        retrieve_timesteps(scheduler, steps, execution_device(pipe), sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        self.timesteps = scheduler.timesteps  # [steps], sigma * 1000
        self.sigmas = scheduler.sigmas.to(execution_device(pipe))  # [steps + 1], ending at 0

    @property
    def model(self) -> torch.nn.Module:
        return self.pipe.transformer

    def embed(self, prompts: list[str]) -> Cond:
        return FLUX.encode(self.pipe, prompts)

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return FLUX.noise(self.pipe, n, gen, self.size)

    def sample(self, cond: Cond, z: torch.Tensor, grad: bool = False, use_checkpoint: bool = True) -> torch.Tensor:
        n = len(z)
        with block_checkpointing(self.model, grad and use_checkpoint):
            for i, t in enumerate(self.timesteps):
                v = FLUX.predict(self.model, z, t.expand(n), cond, self.guidance)
                z = z + (self.sigmas[i + 1] - self.sigmas[i]) * v
        return z


@contextlib.contextmanager
def block_checkpointing(model: Denoiser, on: bool):
    """Activation checkpointing per transformer block (each double and single block), not per call: a
    checkpointed call recomputes all of FLUX's 57 blocks at once in the backward pass, so its peak holds
    a whole call's activations; per block it holds one block's (diffusers' own block checkpointing)."""
    was = model.gradient_checkpointing
    if on and not was:
        model.enable_gradient_checkpointing()
    try:
        yield
    finally:
        if on and not was:
            model.disable_gradient_checkpointing()


FLUX = FluxFamily()
