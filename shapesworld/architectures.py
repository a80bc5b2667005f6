"""Model configurations of the embedded ShapesWorld models (one place, used by training and tests).

The diffusion pipeline is SD's architecture shrunk: AutoencoderKL (32 px -> 16x16x4 latents,
factor 2), UNet2DConditionModel on 16x16 latents, CLIPTextModel with the real 49,408-token
vocabulary and a short context (docs/design.md §6: no code may assume 77 tokens).
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .tokenizer import TEXT_CONTEXT, VOCAB_SIZE

TEXT_WIDTH = 64

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    sample_size=32,
    mid_block_add_attention=False,  # 16x16 self-attention buys little at factor 2 and doubles the cost
)

UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(48, 96, 96),
    layers_per_block=1,
    attention_head_dim=8,
    cross_attention_dim=TEXT_WIDTH,
    norm_num_groups=16,
)

TEXT_CONFIG = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=TEXT_WIDTH,
    intermediate_size=4 * TEXT_WIDTH,
    projection_dim=TEXT_WIDTH,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=TEXT_CONTEXT,
    hidden_act="quick_gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)

# SD 1.x's noise schedule, so samplers and erasure code see the same timesteps as on SD.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

# Embedded CLIP for alignment scores (open_clip's CLIP class, custom config).
CLIP_CONFIG = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=32, patch_size=4, width=96, layers=4, head_width=32, mlp_ratio=4.0),
    text_cfg=dict(context_length=TEXT_CONTEXT, vocab_size=VOCAB_SIZE, width=32, heads=4, layers=3),
    quick_gelu=True,
)


def new_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE_CONFIG)


def new_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET_CONFIG)


def new_text_encoder() -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))


# Zero terminal SNR (Lin et al. 2023): SD's betas rescaled so that t = 999 is pure noise, which
# needs v-prediction (eps is undefined from pure noise) and samplers that start at t = 999.
# Why: with SD's schedule ~7 % of the signal survives at t = 999, so in training the model read
# the large, low-frequency background off z_t instead of the caption (32 % background accuracy).
ZERO_SNR_CONFIG = dict(rescale_betas_zero_snr=True, prediction_type="v_prediction", timestep_spacing="trailing")


def new_scheduler(zero_snr: bool = False) -> DDIMScheduler:
    return DDIMScheduler(**{**SCHEDULER_CONFIG, **(ZERO_SNR_CONFIG if zero_snr else {})})


def new_clip():
    from open_clip.model import CLIP

    return CLIP(**CLIP_CONFIG)
