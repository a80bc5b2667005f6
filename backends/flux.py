"""FLUX (flow matching) support: a tiny randomly initialised FluxPipeline built from configs, for
tests and CPU timing of the code path (no download), and the latent packing FLUX samples with.

The tiny pipeline has every component FLUX.1-schnell has (FluxTransformer2DModel with double and
single blocks, a CLIP text encoder for the pooled embedding, a T5 encoder for the sequence, a KL VAE,
the flow-matching Euler scheduler); both tokenizers are the embedded CLIP BPE tokenizer, since a T5
sentencepiece model cannot be built offline (the T5 encoder only needs token ids).
"""

from __future__ import annotations

import torch

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


def denoiser(pipe) -> torch.nn.Module:
    """The network that denoises: FLUX's transformer or Stable Diffusion's UNet."""
    return pipe.transformer if is_flux(pipe) else pipe.unet


def is_flux(pipe) -> bool:
    return hasattr(pipe, "transformer") and type(pipe.transformer).__name__.startswith("Flux")


def flux_latents(pipe, seeds: list[int], height: int, width: int) -> torch.Tensor:
    """z_T per seed, drawn unpacked [C, h, w] on the CPU (same noise for every model and device), then
    packed into FLUX's token sequence [B, h/2 * w/2, 4C]."""
    channels = pipe.transformer.config.in_channels // 4
    h = 2 * (height // (pipe.vae_scale_factor * 2))
    w = 2 * (width // (pipe.vae_scale_factor * 2))
    z = torch.stack([torch.randn((channels, h, w), generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    return pipe._pack_latents(z, len(seeds), channels, h, w).to(pipe.device, pipe.transformer.dtype)
