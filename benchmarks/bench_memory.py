"""Activation memory of real-size models, from configs with random weights (memory does not depend on
the weights), on the CPU: what the run-start estimate (erasure.memory) sees on a GPU.

    python -m benchmarks.bench_memory

- FLUX.1-schnell: one full-width double block and one single block (bf16, MCE's masks on them), the bytes
  autograd saves per block and per block input, measured at 512 and 1024 px (and at three small sizes, to
  check the run-start estimate's fit against the direct measurement); FLUX's 19 + 38 blocks and its
  weights (counted on the meta device) give each MCE configuration's total.
- SD 1.4: the full-size UNet (859.5 M parameters, float32) at 512 px, ESD's training call and MCE's guided
  sampler call.
- AP's search space over 32k words of `clip-words` with SD 1.4's embedding shape ([77, 768]; a one-layer
  text encoder of that width, since the encoder's depth does not change what the build holds): the peak
  anonymous memory (RssAnon, sampled every 2 ms; the memory-mapped cache's pages are file-backed and
  reclaimable) of the first build, which embeds and stores every word, and of a second build from the cache,
  each in a fresh process, beyond the loaded text encoder.
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from erasure import memory
from erasure.masks import Masker, mask_sites

from .common import print_table, write_result

GiB = memory.GiB
FLUX_DOUBLE, FLUX_SINGLE, FLUX_TEXT = 19, 38, 256  # FLUX.1-schnell's blocks and T5 tokens
FLUX_WIDTH = dict(attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                  in_channels=64, axes_dims_rope=(16, 56, 56), guidance_embeds=False)


def count_params(build) -> int:
    """Parameters of a model built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def flux_weights() -> dict:
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    return {
        "transformer": count_params(lambda: FluxTransformer2DModel(num_layers=FLUX_DOUBLE, num_single_layers=FLUX_SINGLE,
                                                                   **FLUX_WIDTH)),
        "text_encoder_2": count_params(lambda: T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240,
                                                                       num_layers=24, num_heads=64,
                                                                       feed_forward_proj="gated-gelu"))),
        "text_encoder": count_params(lambda: CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072,
                                                                          num_attention_heads=12, projection_dim=768))),
        "vae": count_params(lambda: AutoencoderKL(latent_channels=16, block_out_channels=[128, 256, 512, 512],
                                                  down_block_types=["DownEncoderBlock2D"] * 4,
                                                  up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2)),
    }


def flux_profiles(sides: list[int]) -> tuple[list[int], list[memory.CallProfile]]:
    """Saved bytes of one differentiated call of a 1 + 1 block FLUX at full width, per packed latent side."""
    from diffusers import FluxTransformer2DModel

    from backends.flux import FLUX

    torch.manual_seed(0)
    net = FluxTransformer2DModel(num_layers=1, num_single_layers=1, **FLUX_WIDTH).to(torch.bfloat16).eval()
    net.requires_grad_(False)
    masker = Masker(net, mask_sites(net), 1.0, "transformer").to(dtype=torch.float32)
    cond = {"emb": torch.randn(1, FLUX_TEXT, 4096, dtype=torch.bfloat16),
            "pooled": torch.randn(1, 768, dtype=torch.bfloat16)}
    out = []
    for side in sides:  # side x side packed tokens: a (16 side) px image
        z = torch.randn(1, side * side, 64, dtype=torch.bfloat16)
        t0 = time.perf_counter()
        out.append(memory.profile(net, lambda z=z: FLUX.predict(net, z, torch.full((1,), 500.0), cond)))
        print(f"  FLUX blocks at {16 * side} px: {out[-1].total / GiB:.3f} GiB saved ({time.perf_counter() - t0:.0f} s)")
    masker.remove()
    return [s * s for s in sides], out


def flux_full(p: memory.CallProfile) -> memory.CallProfile:
    """The 19 + 38 block model's profile from one double block (blocks[0]) and one single block (blocks[1])."""
    double, single = p.blocks
    per_input = p.inputs / 2  # both blocks take the same hidden states (text + image tokens) and temb
    return memory.CallProfile(p.outside, per_input * (FLUX_DOUBLE + FLUX_SINGLE),
                              (double,) * FLUX_DOUBLE + (single,) * FLUX_SINGLE)


def fit_check(tokens: list[int], profiles: list[memory.CallProfile], probes: int = 3) -> list[dict]:
    """The run-start estimate's extrapolation (a quadratic through `probes` small sizes) against direct
    measurements at the larger sizes."""
    out = []
    for n, measured in zip(tokens[probes:], profiles[probes:]):
        fit = memory.extrapolate(profiles[:probes], tokens[:probes], n)
        out.append({"tokens": n, "measured_gib": measured.total / GiB, "fitted_gib": fit.total / GiB,
                    "relative_error": abs(fit.total - measured.total) / measured.total})
    return out


def flux_rows(weights_bytes: float) -> tuple[list[dict], list[dict]]:
    sides = [8, 16, 24, 32, 64]  # 128, 256, 384 px probes; 512 and 1024 px measured
    tokens, profiles = flux_profiles(sides)
    check = fit_check(tokens, profiles)
    rows = []
    for px in (512, 1024):
        p = flux_full(profiles[sides.index(px // 16)])  # measured at this size
        for name, mode, rows_per_pass in (("no checkpointing, batch 4 at once", "none", 4),
                                          ("checkpoint per call, batch 4 at once", "call", 4),
                                          ("checkpoint per block, batch 4 at once", "block", 4),
                                          ("checkpoint per block, micro_batch 1 (4 accumulated)", "block", 1)):
            act = memory.activation_bytes(p, rows_per_pass, 4, mode)
            rows.append({"model": "FLUX.1-schnell bf16", "px": px, "config": f"MCE 4 steps, {name}",
                         "activations_gib": act / GiB, "weights_gib": weights_bytes / GiB,
                         "total_gib": (act + weights_bytes) / GiB, "fits_80gb": act + weights_bytes < 80e9})
    return rows, check


def sd_rows() -> tuple[list[dict], list[dict]]:
    from diffusers import UNet2DConditionModel

    from backends.sd import SD
    from erasure.params import select_parameters

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()  # SD 1.4's shapes
    weights = sum(p.numel() * 4 for p in unet.parameters()) + (123_060_480 + 83_653_863) * 4  # + CLIP-L text, VAE
    emb = {"emb": torch.randn(1, 77, 768)}
    rows, checks = [], []
    for name, setup in (("ESD xattn, batch 1 (2 calls held)", "xattn"), ("MCE 4 steps, guided, per-call checkpoint", "mce")):
        if setup == "xattn":
            select_parameters(unet, "xattn")
            masker, rows_, calls, mode = None, 1, memory.GRAPH_CALLS, "none"
        else:
            unet.requires_grad_(False)
            masker, rows_, calls, mode = Masker(unet, mask_sites(unet), 1.0, "unet"), 2, 4, "call"  # CFG: 2 rows
        profiles, tokens = [], []
        for side in (8, 16, 24, 32, 64):  # 64, 128, 192 px probes; 256 and 512 px measured
            z = torch.randn(1, 4, side, side)
            t0 = time.perf_counter()
            profiles.append(memory.profile(unet, lambda z=z: SD.predict(unet, z, torch.full((1,), 500), emb)))
            tokens.append(side * side)
            print(f"  SD UNet ({setup}) at {8 * side} px: {profiles[-1].total / GiB:.3f} GiB ({time.perf_counter() - t0:.0f} s)")
        if masker is not None:
            masker.remove()
        checks += [{"model": f"SD 1.4 UNet ({setup})", **c} for c in fit_check(tokens, profiles)]
        p = profiles[-1]  # measured at 512 px
        act = memory.activation_bytes(p, rows_, calls, mode)
        frozen = sum(p.numel() * 4 for p in unet.parameters()) if setup == "xattn" else 0
        rows.append({"model": "SD 1.4 fp32", "px": 512, "config": name, "activations_gib": act / GiB,
                     "weights_gib": (weights + frozen) / GiB, "total_gib": (act + weights + frozen) / GiB,
                     "fits_80gb": act + weights + frozen < 80e9})
    return rows, checks


SPACE_WORDS = 32_000


def rss_anon() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


def space_worker(cache: str, words: int) -> None:
    """In its own process: one search-space build, printing its peak memory as JSON."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from backends import load_pipeline, word_store
    from backends.paths import ASSETS
    from backends.sd import SD
    from backends.vocab import get_vocabulary
    from erasure.methods.search import build_search_space

    torch.manual_seed(0)
    base = load_pipeline("embedded")
    tokenizer = CLIPTokenizer.from_pretrained(str(ASSETS / "pipeline" / "tokenizer"), model_max_length=77)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=768,
                                           num_hidden_layers=1, num_attention_heads=12, max_position_embeddings=77)).eval()
    pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=encoder, tokenizer=tokenizer, unet=SD.denoiser(base),
                                   scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    vocab = get_vocabulary("clip-words", words)
    word_store.CACHE_ROOT = Path(cache)
    baseline, peak, done = rss_anon(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    t0 = time.perf_counter()
    chosen, R, _, _ = build_search_space(pipe, vocab, "star", "{concept}", 1000, 100, {"star"})
    seconds = time.perf_counter() - t0
    done.set()
    thread.join()
    disk = sum(f.stat().st_size for f in Path(cache).rglob("*.safetensors"))
    print(json.dumps({"words": len(vocab), "seconds": seconds, "peak_beyond_encoder_gib": (peak[0] - baseline) / GiB,
                      "centres_gib": R.numel() * R.element_size() / GiB, "cache_on_disk_gib": disk / GiB,
                      "float32_whole_table_gib": len(vocab) * 77 * 768 * 4 / GiB}))


def space_rows() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for build in ("first build (embeds and stores every word)", "second build (from the cache)"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--space-worker", cache,
                                  str(SPACE_WORDS)], capture_output=True, text=True, check=True)
            rows.append({"build": build, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(f"  search space, {build}: {rows[-1]['peak_beyond_encoder_gib']:.3f} GiB peak")
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--space-worker"]:
        return space_worker(sys.argv[2], int(sys.argv[3]))
    space = space_rows()  # first, in fresh processes, while this one holds no large model
    counts = flux_weights()
    flux_bytes = 2 * sum(counts.values())  # bf16
    rows, check = flux_rows(flux_bytes)
    check = [{"model": "FLUX 1 + 1 full-width blocks", **c} for c in check]
    sd, sd_check = sd_rows()
    rows, check = rows + sd, check + sd_check
    columns = ["model", "px", "config", "activations_gib", "weights_gib", "total_gib", "fits_80gb"]
    print_table(rows, columns)
    print("the estimate's fit (3 small probes) against direct measurement:")
    print_table(check, ["model", "tokens", "measured_gib", "fitted_gib", "relative_error"])
    print_table(space, ["build", "words", "seconds", "peak_beyond_encoder_gib", "centres_gib", "cache_on_disk_gib",
                        "float32_whole_table_gib"])
    write_result("memory", {"flux_parameters": counts, "fit_check": check, "rows": rows, "search_space": space})


if __name__ == "__main__":
    main()
