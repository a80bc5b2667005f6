"""The SDXL family: a UNet conditioned on two CLIP text encoders (their penultimate hidden states side
by side, [B, 77, 768 + 1280] on SDXL 1.0) plus the second encoder's pooled embedding and six size ids
(original size, crop corner, target size), sampled with classifier-free guidance like SD.

`tiny_sdxl_pipeline` builds a StableDiffusionXLPipeline of random weights from configs (no download),
so the SDXL code path is tested and timed offline; like `flux-tiny-random` it draws noise, not pictures.
"""

from __future__ import annotations

import torch

from .family import Cond, broadcast, expand
from .offload import execution_device
from .paths import ASSETS
from .sd import SDFamily


class SDXLFamily(SDFamily):
    """SD's UNet family (latents, noise, sizes, sampler) with SDXL's conditioning."""

    name = "sdxl"
    pipeline_classes: tuple[str, ...] = ("StableDiffusionXLPipeline",)

    @torch.no_grad()
    def encode(self, pipe, prompts: list[str]) -> Cond:
        emb, _, pooled, _ = pipe.encode_prompt(prompts, device=execution_device(pipe), num_images_per_prompt=1,
                                               do_classifier_free_guidance=False)
        size = self.native_size(pipe)
        # the ids the pipeline itself passes at its native size: no crop, original = target size
        time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=emb.dtype, device=emb.device)
        return {"emb": emb, "pooled": pooled, "time_ids": time_ids.expand(len(prompts), -1)}  # [N, L, d], [N, p], [N, 6]

    def predict(self, net, z: torch.Tensor, t: torch.Tensor, cond: Cond) -> torch.Tensor:
        cond = {k: v.to(net.dtype) for k, v in broadcast(cond, len(z)).items()}  # as SD's predict
        return net(z, t, encoder_hidden_states=cond["emb"],
                   added_cond_kwargs={"text_embeds": cond["pooled"], "time_ids": cond["time_ids"]}).sample

    def pipeline_inputs(self, cond: Cond, negative: Cond) -> dict:
        negative = expand(negative, len(cond["emb"]))
        return {"prompt_embeds": cond["emb"], "pooled_prompt_embeds": cond["pooled"],
                "negative_prompt_embeds": negative["emb"], "negative_pooled_prompt_embeds": negative["pooled"]}


SDXL = SDXLFamily()


def tiny_sdxl_pipeline(seed: int = 0, size: int = 32):
    """A StableDiffusionXLPipeline of about a million random parameters; images are size x size. Both
    tokenizers are the embedded CLIP BPE tokenizer; the UNet has SDXL's blocks (text-time added
    conditioning, linear projections, a two-layer transformer block) at a width of 32."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(str(ASSETS / "pipeline" / "tokenizer"))

    def text_config(width: int) -> CLIPTextConfig:
        return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                              num_hidden_layers=2, num_attention_heads=2, projection_dim=width,
                              max_position_embeddings=tokenizer.model_max_length)

    text_encoder, text_encoder_2 = CLIPTextModel(text_config(16)), CLIPTextModelWithProjection(text_config(16))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], latent_channels=4,
                        norm_num_groups=8, sample_size=size)
    unet = UNet2DConditionModel(sample_size=size // 2, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=4,
                                transformer_layers_per_block=(1, 2), cross_attention_dim=32,  # 16 + 16: both encoders
                                projection_class_embeddings_input_dim=6 * 4 + 16, norm_num_groups=8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
                                     add_watermarker=False)
    for module in (text_encoder, text_encoder_2, vae, unet):
        module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
