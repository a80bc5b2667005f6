"""Train the embedded AutoencoderKL (32 px <-> 16x16x4).

    python -m shapesworld.train_vae --out assets/embedded/pipeline/vae
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .architectures import new_vae
from .data import make_dataset, to_tensor
from .training import Log, lr_at, seed_everything, versions


def fit(vae, x_all: torch.Tensor, steps: int, batch: int, lr: float, kl_weight: float,
        gen: torch.Generator, log: Log) -> tuple[float, float]:
    """Train `vae` on images [N, 3, 32, 32] in [-1, 1]; returns (recon MSE on 2,048 of them, scaling factor)."""
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        x = x_all[torch.randint(0, len(x_all), (batch,), generator=gen)]
        post = vae.encode(x).latent_dist
        recon = vae.decode(post.sample(generator=gen)).sample
        rec = (recon - x).abs().mean() + (recon - x).pow(2).mean()
        loss = rec + kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log(step=step, loss=loss.item(), rec=rec.item())
    vae.eval()
    with torch.no_grad():  # SD convention: latents * scaling_factor have unit variance
        lat = vae.encode(x_all[:2048]).latent_dist.mode()
        mse = (vae.decode(lat).sample - x_all[:2048]).pow(2).mean().item()
    scaling = float(1.0 / lat.std())
    vae.register_to_config(scaling_factor=scaling)
    return mse, scaling


def train(out: Path, steps: int, batch: int, lr: float, kl_weight: float, seed: int, n_images: int) -> dict:
    gen = seed_everything(seed)
    images, _ = make_dataset(n_images, seed=1)
    vae = new_vae()
    t0 = time.time()
    psnr_mse, scaling = fit(vae, to_tensor(images), steps, batch, lr, kl_weight, gen, Log(Path(".train") / "vae.jsonl"))
    vae.save_pretrained(out, safe_serialization=True)
    summary = {
        "command": f"python -m shapesworld.train_vae --out {out} --steps {steps}",
        "steps": steps, "batch": batch, "lr": lr, "kl_weight": kl_weight, "seed": seed,
        "train_images": n_images, "wall_time_s": round(time.time() - t0, 1),
        "recon_mse_[-1,1]": psnr_mse, "scaling_factor": scaling, "versions": versions(),
    }
    (out.parent.parent / "training").mkdir(exist_ok=True)
    (out.parent.parent / "training" / "vae.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("assets/embedded/pipeline/vae"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=20000)
    a = p.parse_args()
    print(train(a.out, a.steps, a.batch, a.lr, a.kl_weight, a.seed, a.images))


if __name__ == "__main__":
    main()
