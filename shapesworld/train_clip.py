"""Train the embedded CLIP (open_clip's CLIP class, custom config) on ShapesWorld captions.

    python -m shapesworld.train_clip --out assets/embedded/clip

Captions repeat attributes, so a batch holds many true pairs besides the diagonal: the
contrastive targets are soft, uniform over every caption that is true of an image (and
every image a caption is true of).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .architectures import CLIP_CONFIG, new_clip
from .captions import caption_from, is_true_of, prompt, sample_mentions
from .data import make_dataset, to_tensor
from .tokenizer import tokenize
from .train_classifier import augment
from .training import Log, lr_at, seed_everything, versions
from .weights import half_floats, save_safetensors
from .world import COLOURS, SHAPES

# CLIP's own pixel normalisation is folded into the model input: images in [-1, 1].


def soft_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """img, txt: [B, D] normalised; pos: [B, B] bool, pos[i, j] = caption j true of image i."""
    logits = scale * img @ txt.T
    t_i = pos.float() / pos.sum(1, keepdim=True)
    t_t = pos.T.float() / pos.T.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-t_i * F.log_softmax(logits, 1), 1).mean() + torch.sum(-t_t * F.log_softmax(logits.T, 1), 1).mean())


def clip_step(model, opt, x: torch.Tensor, tokens: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step of the soft contrastive loss on images x [B, 3, 32, 32] and caption tokens [B, L];
    the logit scale stays within CLIP's bound (100). Returns (loss, scale). Shared with emojiworld.train_clip."""
    img, txt, scale = model(x, tokens)[:3]
    loss = soft_clip_loss(img, txt, scale, pos)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, np.log(100))
    return loss, scale


@torch.no_grad()
def zero_shot(model, x: torch.Tensor, scenes) -> dict[str, float]:
    """Top-1 for shape ("a {shape}") and colour (prompt ensemble over shapes)."""
    model.eval()
    img = F.normalize(torch.cat([model.encode_image(x[i : i + 500]) for i in range(0, len(x), 500)]), dim=-1)
    shape_txt = F.normalize(model.encode_text(tokenize([prompt(s) for s in SHAPES])), dim=-1)
    colour_txt = torch.stack([
        F.normalize(model.encode_text(tokenize([prompt(s, c) for s in SHAPES])), dim=-1).mean(0) for c in COLOURS
    ])
    colour_txt = F.normalize(colour_txt, dim=-1)
    shape_y = torch.tensor([SHAPES.index(s.shape) for s in scenes])
    colour_y = torch.tensor([list(COLOURS).index(s.colour) for s in scenes])
    return {
        "shape": ((img @ shape_txt.T).argmax(-1) == shape_y).float().mean().item(),
        "colour": ((img @ colour_txt.T).argmax(-1) == colour_y).float().mean().item(),
    }


def save_clip(model, out: Path) -> None:
    """Weights as fp16 safetensors (the loader casts to fp32) + the open_clip config."""
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(half_floats(model.state_dict()), out / "open_clip_model.safetensors")
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": CLIP_CONFIG, "input_range": [-1, 1]}, indent=2))


def train(out: Path, steps: int, batch: int, lr: float, seed: int) -> dict:
    gen = seed_everything(seed)
    rng = np.random.default_rng(seed)
    images, scenes = make_dataset(20000, seed=4)
    x_all = to_tensor(images)
    val_images, val_scenes = make_dataset(2000, seed=100)
    model = new_clip().train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    log = Log(Path(".train") / "clip.jsonl")
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=100, tail=0.3)
        idx = torch.randint(0, len(x_all), (batch,), generator=gen).tolist()
        mentions = [sample_mentions(scenes[i], rng) for i in idx]
        pos = torch.tensor([[is_true_of(m, scenes[i]) for m in mentions] for i in idx])
        loss, scale = clip_step(model, opt, augment(x_all[idx], gen), tokenize([caption_from(m, rng) for m in mentions]),
                                pos)
        if step % 50 == 0:
            log(step=step, loss=loss.item(), scale=scale.item())
    acc = zero_shot(model, to_tensor(val_images), val_scenes)
    save_clip(model, out)
    summary = {
        "command": f"python -m shapesworld.train_clip --out {out} --steps {steps}",
        "steps": steps, "batch": batch, "lr": lr, "seed": seed, "train_images": 20000,
        "heldout_zero_shot_top1": acc, "wall_time_s": round(time.time() - t0, 1), "versions": versions(),
    }
    (out.parent / "training").mkdir(exist_ok=True)
    (out.parent / "training" / "clip.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("assets/embedded/clip"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(json.dumps(train(a.out, a.steps, a.batch, a.lr, a.seed), indent=2))


if __name__ == "__main__":
    main()
