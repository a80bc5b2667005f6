"""Train the embedded UNet and CLIP text encoder jointly on VAE latents of ShapesWorld.

    python -m shapesworld.train_unet --out assets/embedded/pipeline

Recipe (docs/design.md §6, measured while planning): AdamW lr 1e-3 with warm-up and a cosine tail,
min-SNR-gamma=5 loss weighting, EMA 0.998, 10 % caption dropout (for classifier-free
guidance), captions re-sampled every step from the exact scene labels. The VAE must be
trained first (it lives in <out>/vae). Checkpoints every --save-every steps; --resume
continues from the last one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline
from transformers import CLIPTokenizer

from .architectures import TEXT_CONTEXT, new_scheduler, new_text_encoder, new_unet
from .captions import sample_caption
from .data import make_dataset, to_tensor
from .tokenizer import write_clip_tokenizer
from .training import EMA, Log, lr_at, seed_everything, versions
from .weights import save_safetensors

STATE = Path(".train") / "unet_state"
LOG = Path(".train") / "unet.jsonl"


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: np.ndarray, batch: int = 500) -> torch.Tensor:
    """uint8 [N, 32, 32, 3] -> scaled latents [N, 4, 16, 16] (posterior mode)."""
    out = [vae.encode(to_tensor(images[i : i + batch])).latent_dist.mode() for i in range(0, len(images), batch)]
    return torch.cat(out) * vae.config.scaling_factor


def min_snr_weights(scheduler, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023), shape [B].

    eps-loss: min(SNR, gamma) / SNR. v-loss: min(SNR + 1, gamma) / (SNR + 1), i.e. the x0-space
    weight is min(SNR + 1, gamma) rather than min(SNR, gamma), so that the zero-SNR timestep
    (the one that must learn to follow the caption) keeps weight 1 instead of 0."""
    ac = scheduler.alphas_cumprod[t]
    snr = ac / (1 - ac)
    if scheduler.config.prediction_type == "v_prediction":
        return torch.clamp(snr + 1, max=gamma) / (snr + 1)
    return torch.clamp(snr, max=gamma) / snr


def target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict: the noise, or v = sqrt(a) eps - sqrt(1 - a) x0."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return noise


def diffusion_step(unet, text_encoder, scheduler, x0, noise, t, ids, snr_gamma: float, opt, emas) -> torch.Tensor:
    """One optimiser step of the joint UNet + text encoder on latents x0 [B, 4, h, w] noised by `noise` at
    timesteps t [B] under captions `ids` [B, context]: min-SNR-weighted loss, gradients clipped to 1, the
    EMAs (UNet's, text encoder's) updated. Returns the loss."""
    pred = unet(scheduler.add_noise(x0, noise, t), t, text_encoder(ids)[0]).sample
    per = (pred - target(scheduler, x0, noise, t)).pow(2).mean(dim=(1, 2, 3))
    loss = (min_snr_weights(scheduler, t, snr_gamma) * per).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
    opt.step()
    for ema, module in zip(emas, (unet, text_encoder)):
        ema.update(module)
    return loss


def save_pipeline(out: Path, unet, text_encoder, tokenizer, vae, scheduler) -> None:
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    # transformers 5 writes the tokenizer as tokenizer.json (3.6 MB) alone; the folder keeps the files
    # CLIPTokenizer loads (vocab.json + merges.txt, written as training wrote them) and drops that copy,
    # which keeps the assets small
    write_clip_tokenizer(out / "tokenizer", tokenizer.model_max_length)
    (out / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)


def train(a: argparse.Namespace) -> dict:
    gen = seed_everything(a.seed)
    rng = np.random.default_rng(a.seed)
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(a.out / "tokenizer", TEXT_CONTEXT))
    vae = AutoencoderKL.from_pretrained(a.out / "vae").eval()
    images, scenes = make_dataset(a.images, seed=2)
    latents = encode_latents(vae, images)
    scheduler = new_scheduler(a.zero_snr)
    unet, text_encoder = new_unet().train(), new_text_encoder().train()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    ema_u, ema_t = EMA(unet, a.ema), EMA(text_encoder, a.ema)
    start, phases, init = 0, [], {}
    if a.resume and (STATE / "meta.json").exists():
        start = _load_state(unet, text_encoder, ema_u, ema_t, opt, gen, rng)
        phases = json.loads((STATE / "meta.json").read_text()).get("phases", [])
    elif a.init_from:  # a new phase from an earlier run's weights: fresh optimizer, steps from 0
        phases, init = _load_weights(a.init_from, unet, text_encoder, ema_u, ema_t)
    phases.append({"from_step": start, "to_step": start, **init, "settings": _settings(a)})
    log = Log(LOG)
    token_cache: dict[str, list[int]] = {}
    for step in range(start, a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, warmup=100, tail=0.25)
        idx = torch.randint(0, len(latents), (a.batch,), generator=gen)
        caps = ["" if rng.random() < a.dropout else sample_caption(scenes[i], rng, a.bg_p) for i in idx.tolist()]
        ids = torch.tensor([caption_ids(tokenizer, c, token_cache) for c in caps])  # [B, TEXT_CONTEXT]
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        if a.offset_noise:  # per-channel constant noise: low frequencies cannot leak through z_T
            noise = noise + a.offset_noise * torch.randn((a.batch, x0.shape[1], 1, 1), generator=gen)
        t = _timesteps(scheduler, a, gen)
        loss = diffusion_step(unet, text_encoder, scheduler, x0, noise, t, ids, a.snr_gamma, opt, (ema_u, ema_t))
        if step % 25 == 0:
            log(step=step, loss=loss.item(), lr=opt.param_groups[0]["lr"])
        if (step + 1) % a.save_every == 0 or step + 1 == a.steps:
            save_pipeline(a.out, ema_u.shadow, ema_t.shadow, tokenizer, vae, scheduler)
            phases[-1]["to_step"] = step + 1
            _save_state(step + 1, unet, text_encoder, ema_u, ema_t, opt, gen, rng, phases)
    return write_summary(a, unet, text_encoder, phases)


def total_wall_time(log: Path = LOG) -> tuple[float, int]:
    """Seconds over every segment of the log (elapsed restarts at each resume) and segment count."""
    total, last, segments = 0.0, 0.0, 1
    for line in log.read_text().splitlines():
        elapsed = json.loads(line)["elapsed_s"]
        if elapsed < last:  # a resumed process started a new segment
            total, segments = total + last, segments + 1
        last = elapsed
    return total + last, segments


def write_summary(a: argparse.Namespace, unet=None, text_encoder=None, phases: list[dict] | None = None) -> dict:
    if unet is None:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = UNet2DConditionModel.from_pretrained(a.out / "unet")
        text_encoder = CLIPTextModel.from_pretrained(a.out / "text_encoder")
    wall, segments = total_wall_time()
    summary = {
        "command": f"python -m shapesworld.train_unet --out {a.out} --steps {a.steps}",
        **_settings(a),
        "unet_params": sum(p.numel() for p in unet.parameters()),
        "text_encoder_params": sum(p.numel() for p in text_encoder.parameters()),
        "wall_time_s": round(wall, 1), "process_segments": segments, "versions": versions(),
        "phases": phases if phases is not None else json.loads((STATE / "meta.json").read_text()).get("phases", []),
    }
    (a.out.parent / "training").mkdir(exist_ok=True)
    (a.out.parent / "training" / "unet.json").write_text(json.dumps(summary, indent=2))
    return summary


def _settings(a: argparse.Namespace) -> dict:
    """The run's training settings as JSON-ready values (without the process-control flags)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in ("resume", "summary_only")}


def _timesteps(scheduler, a: argparse.Namespace, gen: torch.Generator) -> torch.Tensor:
    """Uniform timesteps, with a fraction `high_t` drawn from the noisiest 30 % instead.

    Why: SD's schedule leaves ~7 % of the signal at t = 999, so the large, low-frequency
    background leaks through the noise during training and the model learns to read it off
    z_t instead of the caption; the first sampling steps are where the text must decide it."""
    n_train = scheduler.config.num_train_timesteps
    t = torch.randint(0, n_train, (a.batch,), generator=gen)
    if not a.high_t:  # draw nothing more: keeps the random stream of runs made before --high-t existed
        return t
    high = torch.rand(a.batch, generator=gen) < a.high_t
    t[high] = torch.randint(int(0.7 * n_train), n_train, (int(high.sum()),), generator=gen)
    return t


def caption_ids(tokenizer, caption: str, cache: dict[str, list[int]]) -> list[int]:
    if caption not in cache:
        cache[caption] = tokenizer(caption, padding="max_length", max_length=TEXT_CONTEXT, truncation=True).input_ids
    return cache[caption]


def _save_state(step, unet, te, ema_u, ema_t, opt, gen, rng, phases: list[dict]) -> None:
    """Training state for --resume (own files, safetensors + a weights-only optimizer dump)."""
    STATE.mkdir(parents=True, exist_ok=True)
    for name, m in [("unet", unet), ("te", te), ("ema_unet", ema_u.shadow), ("ema_te", ema_t.shadow)]:
        save_safetensors(m.state_dict(), STATE / f"{name}.safetensors")
    torch.save({"opt": opt.state_dict(), "gen": gen.get_state()}, STATE / "opt.pt")
    meta = json.loads((STATE / "meta.json").read_text()) if (STATE / "meta.json").exists() else {}
    meta.update({"step": step, "rng": rng.bit_generator.state, "phases": phases})
    (STATE / "meta.json").write_text(json.dumps(meta))


def _load_weights(folder: Path, unet, te, ema_u, ema_t) -> tuple[list[dict], dict]:
    """Weights (raw and EMA) of a saved training state; returns its phases and where it came from."""
    from safetensors.torch import load_file

    for name, m in [("unet", unet), ("te", te), ("ema_unet", ema_u.shadow), ("ema_te", ema_t.shadow)]:
        m.load_state_dict(load_file(folder / f"{name}.safetensors"))
    meta = json.loads((folder / "meta.json").read_text())
    return meta.get("phases", []), {"init_from": str(folder), "init_step": int(meta["step"])}


def _load_state(unet, te, ema_u, ema_t, opt, gen, rng) -> int:
    _load_weights(STATE, unet, te, ema_u, ema_t)
    extra = torch.load(STATE / "opt.pt", weights_only=True)
    opt.load_state_dict(extra["opt"])
    gen.set_state(extra["gen"])
    meta = json.loads((STATE / "meta.json").read_text())
    rng.bit_generator.state = meta["rng"]
    return int(meta["step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("assets/embedded/pipeline"))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--snr-gamma", type=float, default=5.0)
    p.add_argument("--dropout", type=float, default=0.1, help="caption dropout for CFG")
    p.add_argument("--images", type=int, default=40000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--bg-p", type=float, default=None, help="how often captions name the background (default: 0.3-0.6)")
    p.add_argument("--offset-noise", type=float, default=0.0, help="std of per-channel constant noise")
    p.add_argument("--high-t", type=float, default=0.0, help="fraction of timesteps drawn from the noisiest 30%%")
    p.add_argument("--zero-snr", action="store_true", help="zero-terminal-SNR schedule with v-prediction")
    p.add_argument("--init-from", type=Path, default=None, help="start from the weights of a saved training state")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--summary-only", action="store_true", help="rewrite training/unet.json from the log")
    a = p.parse_args()
    print(write_summary(a) if a.summary_only else train(a))


if __name__ == "__main__":
    main()
