"""The GPU path is the same code: one AP step on an SD-1.4-sized UNet with random weights (CPU)."""

import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from backends.loader import ASSETS
from erasure import erase


@pytest.mark.slow
def test_one_ap_step_on_an_sd14_sized_unet(tmp_path, embedded_pipe):
    torch.manual_seed(0)
    # SD 1.4 UNet shapes (diffusers defaults + cross-attention 768); 32x32 latents keep the CPU step short
    unet = UNet2DConditionModel(sample_size=32, cross_attention_dim=768)
    assert sum(p.numel() for p in unet.parameters()) > 850e6
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=1,
                                                num_attention_heads=12, max_position_embeddings=77))
    tokenizer = CLIPTokenizer.from_pretrained(ASSETS / "pipeline" / "tokenizer", model_max_length=77)
    pipe = StableDiffusionPipeline(vae=embedded_pipe.vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=embedded_pipe.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    before = {n: p.detach().clone() for n, p in unet.named_parameters() if ".attn2." in n}
    run = erase("sd-1.4", "ap", ["star"], "object", tmp_path / "run", pipe=pipe, steps=1, ddim_steps=2,
                vocab="world", k_closest=8, n_centres=4, n_iter=1, lr=1e-4)
    result = run.result()
    assert set(result) == {f"unet.{n}" for n in before}
    assert result["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape == (320, 768)
    assert any(not torch.equal(result[f"unet.{n}"], before[n]) for n in before)
    step = [e for e in run.events() if e["kind"] == "step"][0]
    assert step["losses"]["total"] >= 0 and step["concept"]
