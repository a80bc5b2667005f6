"""Train EmojiWorld's AutoencoderKL (32 px <-> 16x16x4) on renders of every concept.

    python -m emojiworld.train_vae --out .train/emoji/vae

The ShapesWorld VAE, tried on emoji renders, reconstructs them at 22.3 dB PSNR with their detail
smeared (faces lose eyes): emoji need their own. Same architecture and loop as ShapesWorld's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from shapesworld.architectures import new_vae
from shapesworld.data import to_tensor
from shapesworld.train_vae import fit
from shapesworld.training import Log, seed_everything, versions

from .data import make_dataset
from .glyphs import default_font
from .world import concepts


def train(out: Path, steps: int, batch: int, lr: float, kl_weight: float, seed: int, n_images: int) -> dict:
    gen = seed_everything(seed)
    images, _ = make_dataset(tuple(c.name for c in concepts()), n_images, seed=1)
    vae = new_vae()
    t0 = time.time()
    mse, scaling = fit(vae, to_tensor(images), steps, batch, lr, kl_weight, gen, Log(out.parent / "vae.jsonl"))
    vae.save_pretrained(out, safe_serialization=True)
    summary = {
        "command": f"python -m emojiworld.train_vae --out {out} --steps {steps}",
        "steps": steps, "batch": batch, "lr": lr, "kl_weight": kl_weight, "seed": seed, "train_images": n_images,
        "wall_time_s": round(time.time() - t0, 1), "recon_mse_[-1,1]": mse, "scaling_factor": scaling,
        "font": default_font().record(), "versions": versions(),
    }
    (out.parent / "vae.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(".train/emoji/vae"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=40000)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(train(a.out, a.steps, a.batch, a.lr, a.kl_weight, a.seed, a.images))


if __name__ == "__main__":
    main()
