"""Train EmojiWorld's CLIP, the spectrum's scorer on the `emoji` model: the embedded CLIP's architecture
(open_clip's CLIP, shapesworld.architectures.CLIP_CONFIG) on EmojiWorld captions.

    python -m emojiworld.train_clip --work .train/emoji/clip --concepts 600 --with-demo --steps 6000 \\
        --threads 1 --keep assets/emoji/training/clip_kept --resume

The concepts are the UNet's (`--concepts 600 --with-demo`: the 654 it learns). Targets are soft, as
ShapesWorld's: a caption is true of an image when it names the image's concept and, where it names them,
its style and background. Training resumes from <work>/state (weights, optimiser, random states) or, on a
new machine, from the small committed --keep state (fp16 weights, step, random states; the optimiser
restarts with a warm-up). At the end: zero-shot top-1 on held-out renders (concept among the model's
names; style and background by prompt ensembles over concepts) and the scorer folder <work>/clip.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from shapesworld.architectures import CLIP_CONFIG, new_clip
from shapesworld.data import to_tensor
from shapesworld.tokenizer import tokenize
from shapesworld.train_classifier import augment
from shapesworld.train_clip import clip_step
from shapesworld.training import Log, lr_at, seed_everything, versions
from shapesworld.weights import half_floats, save_safetensors

from .captions import FRAMES, prompt
from .data import make_dataset
from .subsets import chosen, model_set
from .world import BACKGROUNDS, STYLES, Scene

EVAL_PER_CONCEPT = 2  # held-out renders per concept for the zero-shot accuracy


class Mention(NamedTuple):
    """What a caption says: the concept, and the style and background when it names them (None: silent)."""

    concept: str
    style: str | None
    background: str | None


def sample_mention(scene: Scene, rng: np.random.Generator) -> Mention:
    """A true mention of the scene, naming style and background as often as the UNet's captions do."""
    style_p = 0.2 if scene.style == "colour" else 0.75
    bg_p = 0.3 if scene.background == "plain" else 0.6
    return Mention(scene.concept, scene.style if rng.random() < style_p else None,
                   scene.background if rng.random() < bg_p else None)


def caption(m: Mention, rng: np.random.Generator) -> str:
    frame = FRAMES[0] if rng.random() < 0.7 else FRAMES[int(rng.integers(1, len(FRAMES)))]
    return prompt(m.concept, m.style, m.background, frame)


def is_true_of(m: Mention, scene: Scene) -> bool:
    return m.concept == scene.concept and m.style in (None, scene.style) and m.background in (None, scene.background)


@torch.no_grad()
def zero_shot(model, x: torch.Tensor, scenes: list[Scene], names: tuple[str, ...]) -> dict[str, float]:
    """Top-1 of the concept ("a {concept}" over the model's names), and of style and background (each a
    prompt ensemble over the concepts of the images, so the concept's words do not decide)."""
    model.eval()
    img = F.normalize(torch.cat([model.encode_image(x[i : i + 500]) for i in range(0, len(x), 500)]), dim=-1)
    text = F.normalize(torch.cat([model.encode_text(tokenize([prompt(n) for n in names[i : i + 500]]))
                                  for i in range(0, len(names), 500)]), dim=-1)
    out = {"concept": ((img @ text.T).argmax(-1) == torch.tensor([names.index(s.concept) for s in scenes]))
           .float().mean().item()}
    sample = list(dict.fromkeys(s.concept for s in scenes))[:50]
    for axis, values in (("style", STYLES), ("background", BACKGROUNDS)):
        ens = F.normalize(torch.stack([
            F.normalize(model.encode_text(tokenize([prompt(c, **{axis: v}) for c in sample])), dim=-1).mean(0)
            for v in values]), dim=-1)  # [values, D]: one prompt ensemble per style (background)
        truth = torch.tensor([values.index(getattr(s, axis)) for s in scenes])
        out[axis] = ((img @ ens.T).argmax(-1) == truth).float().mean().item()
    model.train()
    return out


def save_clip(model, out: Path) -> None:
    """The scorer folder (fp16 safetensors + the open_clip config), as the embedded CLIP's."""
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(half_floats(model.state_dict()), out / "open_clip_model.safetensors")
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": CLIP_CONFIG, "input_range": [-1, 1]}, indent=2))


def _keep(folder: Path, step: int, model, gen: torch.Generator, rng: np.random.Generator, a) -> None:
    """The small committable state: fp16 weights (~4 MB), the step, random states and settings."""
    save_clip(model, folder)
    save_safetensors({"gen": gen.get_state()}, folder / "gen.safetensors")
    (folder / "meta.json").write_text(json.dumps({"step": step, "rng": rng.bit_generator.state,
                                                  "settings": _settings(a)}, indent=1))


def command(a: argparse.Namespace) -> str:
    """The command line of these settings (a flag set on is written bare, one left off not at all)."""
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in _settings(a).items()
             if v is not False and v is not None]
    return "python -m emojiworld.train_clip " + " ".join(flags)


def _settings(a: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "resume"}


def _resume(a, model, opt, gen, rng) -> int:
    """The step to start from: <work>/state (exact), else the kept state (weights and random states), else 0."""
    state = a.work / "state"
    if a.resume and (state / "meta.json").exists():
        model.load_state_dict(load_file(state / "model.safetensors"))
        opt.load_state_dict(torch.load(state / "opt.pt", weights_only=True))  # our own file, not a user's
        gen.set_state(load_file(state / "gen.safetensors")["gen"])
        meta = json.loads((state / "meta.json").read_text())
        rng.bit_generator.state = meta["rng"]
        return int(meta["step"])
    if a.resume and a.keep is not None and (a.keep / "meta.json").exists():
        model.load_state_dict({k: v.float() for k, v in load_file(a.keep / "open_clip_model.safetensors").items()})
        gen.set_state(load_file(a.keep / "gen.safetensors")["gen"])
        meta = json.loads((a.keep / "meta.json").read_text())
        rng.bit_generator.state = meta["rng"]
        print(f"resumed from the kept state at step {meta['step']} (optimiser restarted)", flush=True)
        return int(meta["step"])
    return 0


def _save_state(a, step: int, model, opt, gen, rng) -> None:
    state = a.work / "state"
    state.mkdir(parents=True, exist_ok=True)
    save_safetensors(model.state_dict(), state / "model.safetensors")
    torch.save(opt.state_dict(), state / "opt.pt")
    save_safetensors({"gen": gen.get_state()}, state / "gen.safetensors")
    (state / "meta.json").write_text(json.dumps({"step": step, "rng": rng.bit_generator.state}))


def train(a: argparse.Namespace) -> dict:
    gen, rng = seed_everything(a.seed), np.random.default_rng(a.seed)
    names = model_set(a.concepts) if a.with_demo else chosen(a.concepts)
    images, scenes = make_dataset(names, a.per_concept * len(names), seed=4, workers=a.workers)
    x_all = to_tensor(images)
    model = new_clip().train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
    start = _resume(a, model, opt, gen, rng)
    restarted = start > 0 and not (a.work / "state" / "meta.json").exists()
    log, t0 = Log(a.work / "clip.jsonl"), time.time()
    for step in range(start, a.steps):
        for g in opt.param_groups:  # a restarted optimiser warms up again, as the UNet's does
            lr = lr_at(step, a.steps, a.lr, warmup=100, tail=0.3)
            g["lr"] = lr * min(1.0, (step - start + 1) / 100) if restarted else lr
        idx = torch.randint(0, len(x_all), (a.batch,), generator=gen).tolist()
        mentions = [sample_mention(scenes[i], rng) for i in idx]
        pos = torch.tensor([[is_true_of(m, scenes[i]) for m in mentions] for i in idx])  # [B, B]
        loss, scale = clip_step(model, opt, augment(x_all[idx], gen), tokenize([caption(m, rng) for m in mentions]), pos)
        if step % 25 == 0:
            log(step=step, loss=loss.item(), scale=scale.item(), lr=opt.param_groups[0]["lr"])
        if (step + 1) % a.save_every == 0 or step + 1 == a.steps:
            _save_state(a, step + 1, model, opt, gen, rng)
            if a.keep is not None:
                _keep(a.keep, step + 1, model, gen, rng, a)
    val_images, val_scenes = make_dataset(names, EVAL_PER_CONCEPT * len(names), seed=100, workers=a.workers)
    acc = zero_shot(model, to_tensor(val_images), val_scenes, names)
    save_clip(model, a.work / "clip")
    summary = {"command": command(a),
               "concepts": len(names), "train_images": len(scenes), "steps": a.steps, "batch": a.batch,
               "heldout_zero_shot_top1": acc, "heldout_images": len(val_scenes),
               "wall_time_s_this_segment": round(time.time() - t0, 1), "versions": versions()}
    (a.work / "clip.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path(".train/emoji/clip"))
    p.add_argument("--concepts", type=int, default=600, help="chosen(N) concepts (with --with-demo: the UNet's set)")
    p.add_argument("--with-demo", action="store_true", help="add the 100 demo concepts (emojiworld.subsets.model_set)")
    p.add_argument("--per-concept", type=int, default=32, help="training renders per concept")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="render processes")
    p.add_argument("--resume", action="store_true", help="continue <work>/state, or else the --keep state")
    p.add_argument("--keep", type=Path, default=None, help="also write the small committable state here at every save")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    return train(a)


if __name__ == "__main__":
    main()
