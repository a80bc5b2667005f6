"""The run-start memory estimate against a GPU's measured peak (needs CUDA; a few minutes on one H200).

    python -m benchmarks.gpu_memory_check            # on a GPU machine
    python -m benchmarks.gpu_memory_check --smoke    # the same code path on the CPU, narrow models, no peak

Each configuration is one real training step (`erase`, steps=1) on a pipeline built from configs with
random weights: full-width FLUX blocks (2 double + 4 single, bf16) under MCE, and SD 1.4's full UNet
(float32) under ESD and MCE, with small text encoders of the real widths and a VAE with the real
8x downsampling. It compares what the estimate said the run adds (erasure.memory, the start event's
`extra["memory"]["added"]`) with what it added: torch.cuda.max_memory_allocated during the run minus
the memory allocated before it. Writes benchmarks/results/gpu_memory_check.json.
"""

from __future__ import annotations

import argparse
import gc
import tempfile

import torch

from .common import Peak, print_table, write_result

GiB = 2**30


def tokenizer(length: int):
    from transformers import CLIPTokenizer

    from backends.paths import ASSETS

    return CLIPTokenizer.from_pretrained(str(ASSETS / "pipeline" / "tokenizer"), model_max_length=length)


def vae(latent_channels: int, narrow: bool):
    from diffusers import AutoencoderKL

    widths = [8, 16, 32, 32] if narrow else [32, 64, 64, 64]  # 4 blocks: the real 8x factor, few weights
    # the real latent scaling (FLUX's 16-channel VAE also shifts), so the pipelines can decode what they draw
    factors = {"scaling_factor": 0.3611, "shift_factor": 0.1159} if latent_channels == 16 else {"scaling_factor": 0.18215}
    return AutoencoderKL(latent_channels=latent_channels, block_out_channels=widths, norm_num_groups=8,
                         down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, **factors)


def flux_pipe(narrow: bool):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    heads, joint = (2, 64) if narrow else (24, 4096)
    tok = tokenizer(77)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=256, num_hidden_layers=1,
                                        num_attention_heads=12, projection_dim=768, max_position_embeddings=77))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=joint, d_kv=64, d_ff=256, num_layers=1, num_heads=2))
    net = FluxTransformer2DModel(num_layers=2, num_single_layers=4, attention_head_dim=128, num_attention_heads=heads,
                                 joint_attention_dim=joint, pooled_projection_dim=768, in_channels=64,
                                 axes_dims_rope=(16, 56, 56), guidance_embeds=False)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True), vae=vae(16, narrow),
                        text_encoder=clip, tokenizer=tok, text_encoder_2=t5, tokenizer_2=tok, transformer=net)
    pipe.default_sample_size = 128  # 1024 px, FLUX.1-schnell's native size
    return pipe


def sd_pipe(narrow: bool):
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tokenizer(77)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=256, num_hidden_layers=1,
                                        num_attention_heads=12, max_position_embeddings=77))
    unet = (UNet2DConditionModel(sample_size=64, cross_attention_dim=768, block_out_channels=(32, 64, 64, 64),
                                 attention_head_dim=2) if narrow else
            UNet2DConditionModel(sample_size=64, cross_attention_dim=768))  # SD 1.4's shapes: 859.5 M parameters
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    return StableDiffusionPipeline(vae=vae(4, narrow), text_encoder=clip, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


# (name, pipeline builder, dtype, method, settings)
CONFIGS = [
    ("FLUX 2+4 blocks, MCE 1024 px, micro_batch 1", flux_pipe, torch.bfloat16, "mce", {"micro_batch": 1}),
    ("FLUX 2+4 blocks, MCE 1024 px, batch 4 at once", flux_pipe, torch.bfloat16, "mce", {"micro_batch": 0}),
    ("FLUX 2+4 blocks, MCE 512 px, micro_batch 1", flux_pipe, torch.bfloat16, "mce", {"micro_batch": 1, "resolution": 512}),
    ("SD 1.4 UNet, ESD xattn 512 px", sd_pipe, torch.float32, "esd", {}),
    ("SD 1.4 UNet, MCE 512 px, micro_batch 1", sd_pipe, torch.float32, "mce", {"micro_batch": 1}),
]


def one(name, build, dtype, method, settings, device: str, narrow: bool) -> dict:
    from erasure import erase

    torch.manual_seed(0)
    dtype = torch.float32 if narrow else dtype  # bf16 matmuls are emulated (slow) on most CPUs
    pipe = build(narrow).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    events = []
    small = dict(steps=1, batch=4, ddim_steps=4, checkpoint_every=0, snapshot_every=0) if method == "mce" else \
        dict(steps=1, checkpoint_every=0, snapshot_every=0)
    cuda = device.startswith("cuda")
    if narrow:  # the smoke run: the code path at a size a CPU steps through in seconds
        settings = {**settings, "resolution": 128}
    with tempfile.TemporaryDirectory() as out, Peak(device) as peak:
        # the model id names the family's traits only: "sd-1.4" / "flux-schnell" (the pipeline is the one given)
        model = "flux-schnell" if build is flux_pipe else "sd-1.4"
        erase(model, method, ["star"], "object", f"{out}/run", pipe=pipe, callback=events.append, device=device,
              **small, **settings)
    estimate = events[0].extra["memory"]
    row = {"config": name, "estimated_added_gib": estimate["added"] / GiB,
           "estimated_activations_gib": estimate["activations"] / GiB}
    if cuda:
        row |= {"measured_added_gib": peak.bytes / GiB, "estimate_over_measured": estimate["added"] / peak.bytes}
    del pipe
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    print(row)
    return row


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--smoke", action="store_true", help="narrow models on the CPU: the code path, no peak")
    args = args.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this check needs a CUDA GPU; use --smoke to run its code path on the CPU")
    device = "cpu" if args.smoke else "cuda"
    rows = [one(*c, device=device, narrow=args.smoke) for c in CONFIGS]
    columns = ["config", "estimated_added_gib", "estimated_activations_gib", "measured_added_gib",
               "estimate_over_measured"]
    print_table(rows, columns)
    if not args.smoke:
        write_result("gpu_memory_check", {"rows": rows})


if __name__ == "__main__":
    main()
