"""Where the embedded UNet draws its shapes, seen through MCE's mask sites (README, "MCE on the embedded model").

    python -m benchmarks.bench_mce_sites

1. For each site kind (erasure.masks.KINDS), switch off all of its neurons, then a random 38 % of them
   (about what an MCE run masks), and score ESR-1 on "star" and PSR-1 on the other shapes (8 seeds,
   like bench_mce_settings). A kind whose neurons can all go while stars stay cannot erase stars.
2. The mask logits' gradients over the first 6 MCE steps (embedded profile, erase "star"): quantiles
   of |gradient| and of each neuron's |mean| / std over the steps (its signal-to-noise ratio).
Writes benchmarks/results/mce_sites.json.
"""

from __future__ import annotations

import argparse

import torch

from backends import SamplerSettings, denoiser, load_classifier, load_pipeline
from erasure import resolve_config
from erasure.masks import KINDS, bake, mask_sites
from erasure.methods.mce import MCE
from erasure.trainer import Context
from evaluation import world_erasure_report

from .common import print_table, write_result

QUANTILES = (0.1, 0.5, 0.9, 0.99)


def knockout(kind: str, fraction: float, classifier, seeds: int) -> dict:
    """ESR-1 / PSR-1 of the embedded model with `fraction` of the `kind` neurons switched off."""
    pipe = load_pipeline("embedded")
    gen = torch.Generator().manual_seed(0)
    net = denoiser(pipe)
    sites = mask_sites(net, (kind,))
    for s in sites:
        bake(net, s.where, s.path, torch.rand(s.size, generator=gen) >= fraction)  # keep = True
    r = world_erasure_report(pipe, classifier, ["star"], seeds, SamplerSettings(steps=20, guidance=5.0))
    return {"kind": kind, "off": fraction, "neurons": sum(s.size for s in sites), "esr1": round(r["esr1"], 1),
            "psr1": round(r["psr1"], 1), "star_top1": round(r["per_shape_top1"]["star"], 1)}


def gradient_noise(steps: int = 6) -> dict:
    """Quantiles of the logits' |gradient| and per-neuron |mean| / std over the first MCE steps."""
    torch.manual_seed(0)
    config = resolve_config("mce", "embedded", "object,fast", targets=["star"])
    method = MCE(Context(load_pipeline("embedded"), config))
    grads = []
    for step in range(steps):
        loss, _ = method.loss(step)
        for logit in method.masker.logits:
            logit.grad = None
        loss.backward()
        grads.append(torch.cat([logit.grad.flatten() for logit in method.masker.logits]))
    g = torch.stack(grads)  # [steps, neurons]
    snr = g.mean(0).abs() / g.std(0).clamp_min(1e-20)
    q = torch.tensor(QUANTILES)
    return {"steps": steps, "quantiles": list(QUANTILES),
            "abs_grad": [float(f"{v:.3g}") for v in torch.quantile(g.abs().flatten(), q)],
            "snr": [round(float(v), 2) for v in torch.quantile(snr, q)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=8)
    a = p.parse_args()
    classifier = load_classifier()
    rows = [knockout(kind, fraction, classifier, a.seeds) for kind in KINDS for fraction in (1.0, 0.38)]
    print_table(rows, list(rows[0]))
    noise = gradient_noise()
    print(f"\nlogit gradients over {noise['steps']} steps, quantiles {noise['quantiles']}:\n"
          f"  |gradient|: {noise['abs_grad']}\n  |mean| / std per neuron: {noise['snr']}")
    print("wrote", write_result("mce_sites", {"seeds": a.seeds, "knockout": rows, "gradients": noise}))


if __name__ == "__main__":
    main()
