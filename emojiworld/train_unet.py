"""Train EmojiWorld's UNet and CLIP text encoder jointly, measuring concept accuracy as it learns.

    python -m emojiworld.train_unet --work .train/emoji/c100 --concepts 100 --steps 4000 --eval-every 1000

ShapesWorld's recipe (train_unet.py there) from its third phase on: zero-terminal-SNR schedule with
v-prediction (the caption, not z_T, must decide the background), min-SNR-gamma loss weights, EMA,
10 % caption dropout. Every --eval-every steps the EMA weights sample "a {concept}" for every concept
(DDIM 25 steps, guidance 5, the app's settings) and the world classifier in <work>/classifier judges
them: that learning curve (<work>/curve.jsonl) is what the concept count, width and steps of the shipped
model are chosen from. Training state is saved every --save-every steps; --resume continues it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTokenizer

from shapesworld.architectures import UNET_CONFIG, new_scheduler, new_text_encoder
from shapesworld.classifier import WorldClassifier
from shapesworld.data import to_tensor
from shapesworld.tokenizer import TEXT_CONTEXT, write_clip_tokenizer
from shapesworld.train_unet import caption_ids, diffusion_step, encode_latents, save_pipeline
from shapesworld.training import EMA, Log, lr_at, seed_everything, versions
from shapesworld.weights import save_safetensors

from .captions import prompt, sample_caption
from .data import make_dataset
from .subsets import DEMO, chosen, model_set
from .train_classifier import classes_for
from .world import BACKGROUNDS, STYLES


def new_unet(widths: tuple[int, ...]) -> UNet2DConditionModel:
    return UNet2DConditionModel(**{**UNET_CONFIG, "block_out_channels": widths})


@torch.no_grad()
def concept_accuracy(unet, text_encoder, tokenizer, vae, names, classifier, seeds: int, classes=None) -> dict:
    """Classifier concept top-1 over "a {name}" x seeds images from the current weights; `classes`: the
    classifier's concept names when they are more than `names` (default: the same list)."""
    from diffusers import StableDiffusionPipeline

    from backends.generate import SamplerSettings, generate

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=new_scheduler(zero_snr=True), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = [prompt(n) for n in names for _ in range(seeds)]
    images = generate(pipe, prompts, [s for _ in names for s in range(seeds)], SamplerSettings(25, 5.0))
    pred = classifier.predict(to_tensor(images))["concept"].argmax(-1).numpy()
    index = {n: i for i, n in enumerate(classes or names)}
    hit = pred == np.repeat([index[n] for n in names], seeds)
    per_concept = hit.reshape(len(names), seeds).mean(1)
    return {"concept_top1": float(hit.mean()), "concepts_at_least_half": float((per_concept >= 0.5).mean()),
            "images": len(prompts)}


def train(a: argparse.Namespace) -> None:
    gen, rng = seed_everything(a.seed), np.random.default_rng(a.seed)
    names = model_set(a.concepts) if a.with_demo else chosen(a.concepts)
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(a.work / "tokenizer", TEXT_CONTEXT))
    vae = AutoencoderKL.from_pretrained(a.vae).eval()
    images, scenes = make_dataset(names, a.per_concept * len(names), seed=2, **draw_of(a))
    latents = encode_latents(vae, images)  # [N, 4, 16, 16]
    scheduler = new_scheduler(zero_snr=True)
    demo = set(chosen(DEMO))  # drawn demo_weight times as often: their bar is higher (docs/design.md §6)
    weights = torch.tensor([a.demo_weight if s.concept in demo else 1.0 for s in scenes]) if a.demo_weight != 1 else None
    unet, text_encoder = new_unet(tuple(a.widths)).train(), new_text_encoder().train()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    ema_u, ema_t = EMA(unet, a.ema), EMA(text_encoder, a.ema)
    state = a.work / "state"
    start = _load_state(state, unet, text_encoder, ema_u, ema_t, opt, gen, rng) if a.resume else 0
    warm = 0  # the step a fresh optimiser starts at (its learning rate warms up again from there)
    if a.resume and not start and a.keep is not None:  # a new machine: continue from the committed weights
        start = warm = _load_kept(a.keep, unet, text_encoder, ema_u, ema_t, gen, rng)
        if (a.keep / "curve.jsonl").exists() and not (a.work / "curve.jsonl").exists():
            (a.work / "curve.jsonl").write_text((a.keep / "curve.jsonl").read_text())
    classifier = WorldClassifier.load(a.work / "classifier", classes_for(names)) if a.eval_every else None
    log, cache = Log(a.work / "unet.jsonl"), {}
    for step in range(start, a.steps):
        rewarm = min(1.0, (step - warm + 1) / 100) if warm else 1.0
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, warmup=100, tail=0.25) * rewarm
        idx = torch.multinomial(weights, a.batch, replacement=True, generator=gen) if weights is not None else \
            torch.randint(0, len(latents), (a.batch,), generator=gen)
        caps = ["" if rng.random() < a.dropout else sample_caption(scenes[i], rng) for i in idx.tolist()]
        ids = torch.tensor([caption_ids(tokenizer, c, cache) for c in caps])  # [B, TEXT_CONTEXT]
        x0, noise = latents[idx], torch.randn(latents[idx].shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (a.batch,), generator=gen)
        loss = diffusion_step(unet, text_encoder, scheduler, x0, noise, t, ids, a.snr_gamma, opt, (ema_u, ema_t))
        if step % 25 == 0:
            log(step=step, loss=loss.item(), lr=opt.param_groups[0]["lr"])
        if (step + 1) % a.save_every == 0 or step + 1 == a.steps:
            _save_state(state, step + 1, unet, text_encoder, ema_u, ema_t, opt, gen, rng)
            if a.keep is not None:
                _keep(a.keep, step + 1, ema_u, ema_t, gen, rng, a)
        if classifier is not None and ((step + 1) % a.eval_every == 0 or step + 1 == a.steps):
            t0 = time.time()
            acc = concept_accuracy(ema_u.shadow, ema_t.shadow, tokenizer, vae, names, classifier, a.eval_seeds)
            row = {"step": step + 1, "concepts": len(names), "widths": a.widths, "batch": a.batch, **acc,
                   "eval_s": round(time.time() - t0, 1), "train_elapsed_s": log.elapsed()}
            with (a.work / "curve.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            print("EVAL", row, flush=True)
    save_pipeline(a.work / "pipeline", ema_u.shadow, ema_t.shadow, tokenizer, vae, scheduler)
    (a.work / "unet.json").write_text(json.dumps({**_settings(a), "concepts_used": len(names),
                                                  "unet_params": sum(p.numel() for p in unet.parameters()),
                                                  "versions": versions()}, indent=2))


def draw_of(a: argparse.Namespace) -> dict:
    """How training scenes are drawn (sample_scene's keywords); {} for the world's default draw."""
    draw = {}
    if a.pose != 1:
        draw["pose"] = a.pose
    if a.colour_p is not None:
        rest = (1 - a.colour_p) / (len(STYLES) - 1)
        draw["style_p"] = [a.colour_p] + [rest] * (len(STYLES) - 1)
    if a.plain_p is not None:
        rest = (1 - a.plain_p) / (len(BACKGROUNDS) - 1)
        draw["background_p"] = [a.plain_p] + [rest] * (len(BACKGROUNDS) - 1)
    return draw


def _settings(a: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "resume"}


def _keep(folder: Path, step: int, ema_u, ema_t, gen, rng, a: argparse.Namespace) -> None:
    """The small state a commit carries between machines (docs/design.md §6): the EMA weights in bfloat16
    (~13 MB), the step, random states, settings and learning curve. A new machine resumes from it with the
    weights and their EMA both set to these and a fresh optimiser (warmed up again over 100 steps): not
    bit-exact, which the model card says, but no 100 MB optimiser state in the repository."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in [("ema_unet", ema_u.shadow), ("ema_te", ema_t.shadow)]:
        save_safetensors({k: v.to(torch.bfloat16) for k, v in m.state_dict().items()}, folder / f"{name}.safetensors")
    save_safetensors({"gen": gen.get_state()}, folder / "gen.safetensors")
    curve = a.work / "curve.jsonl"
    if curve.exists():
        (folder / "curve.jsonl").write_text(curve.read_text())
    (folder / "meta.json").write_text(json.dumps({"step": step, "rng": rng.bit_generator.state,
                                                  "settings": _settings(a)}, indent=1))


def kept_weights(folder: Path, name: str) -> dict[str, torch.Tensor]:
    """One model's kept EMA weights ("ema_unet" or "ema_te"), stored in bfloat16, as float32."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(folder / f"{name}.safetensors").items()}


def _load_kept(folder: Path, unet, te, ema_u, ema_t, gen, rng) -> int:
    from safetensors.torch import load_file

    if not (folder / "meta.json").exists():
        return 0
    for name, models in [("ema_unet", (unet, ema_u.shadow)), ("ema_te", (te, ema_t.shadow))]:
        weights = kept_weights(folder, name)
        for m in models:
            m.load_state_dict(weights)
    gen.set_state(load_file(folder / "gen.safetensors")["gen"])
    meta = json.loads((folder / "meta.json").read_text())
    rng.bit_generator.state = meta["rng"]
    print(f"resumed from the kept state at step {meta['step']} (weights = their EMA, optimiser restarted)", flush=True)
    return int(meta["step"])


def _save_state(folder: Path, step, unet, te, ema_u, ema_t, opt, gen, rng) -> None:
    """Like shapesworld.train_unet._save_state, in a folder of the run's own."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in [("unet", unet), ("te", te), ("ema_unet", ema_u.shadow), ("ema_te", ema_t.shadow)]:
        save_safetensors(m.state_dict(), folder / f"{name}.safetensors")
    torch.save({"opt": opt.state_dict(), "gen": gen.get_state()}, folder / "opt.pt")
    (folder / "meta.json").write_text(json.dumps({"step": step, "rng": rng.bit_generator.state}))


def _load_state(folder: Path, unet, te, ema_u, ema_t, opt, gen, rng) -> int:
    from safetensors.torch import load_file

    if not (folder / "meta.json").exists():
        return 0
    for name, m in [("unet", unet), ("te", te), ("ema_unet", ema_u.shadow), ("ema_te", ema_t.shadow)]:
        m.load_state_dict(load_file(folder / f"{name}.safetensors"))
    extra = torch.load(folder / "opt.pt", weights_only=True)
    opt.load_state_dict(extra["opt"])
    gen.set_state(extra["gen"])
    meta = json.loads((folder / "meta.json").read_text())
    rng.bit_generator.state = meta["rng"]
    return int(meta["step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path(".train/emoji/c100"))
    p.add_argument("--vae", type=Path, default=Path("assets/emoji/pipeline/vae"))
    p.add_argument("--concepts", type=int, default=100)
    p.add_argument("--widths", type=int, nargs="+", default=[48, 96, 96], help="UNet block_out_channels")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--snr-gamma", type=float, default=5.0)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--per-concept", type=int, default=200, help="training renders per concept")
    p.add_argument("--with-demo", action="store_true", help="also learn the demo concepts (subsets.model_set)")
    p.add_argument("--demo-weight", type=float, default=1.0, help="how much more often demo concepts are drawn")
    p.add_argument("--pose", type=float, default=1.0, help="share of the world's pose jitter (1: all, 0: none)")
    p.add_argument("--colour-p", type=float, default=None, help="share of scenes in the colour style (rest even)")
    p.add_argument("--plain-p", type=float, default=None, help="share of scenes on the plain background (rest even)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=1000, help="0: no learning-curve evaluation")
    p.add_argument("--eval-seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue <work>/state, or else the --keep state")
    p.add_argument("--keep", type=Path, default=None,
                   help="also write the small committable state here at every save (and resume from it on a new machine)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    train(a)


if __name__ == "__main__":
    main()
