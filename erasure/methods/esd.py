"""ESD — Erasing Concepts from Diffusion Models (Gandikota et al. 2023), the baseline.

Target eps* = eps_theta(z_t, c_n, t) - eta (eps_theta(z_t, c_e, t) - eps_theta(z_t, c_n, t)) and
loss ||eps_theta'(z_t, c_e, t) - eps*||^2, with z_t sampled by guided DDIM under c_e down to a
uniformly drawn sampler step (docs/design.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.family import Cond, rows

from ..config import EraseConfig
from ..method import Method, MethodSpec


@dataclass
class ESDConfig(EraseConfig):
    """ESD has no settings beyond the shared ones; the defaults are the 2023 reference."""


PRESETS = {
    "object": {"param_group": "xattn"},
    "style": {"param_group": "xattn"},
    "nudity": {"param_group": "noxattn"},
    "reference": {},  # lr 1e-5, 1000 steps, eta 1, DDIM 50, batch 1, z_t from the trained model
    "esd-2024": {"lr": 5e-5, "steps": 200, "negative_guidance": 2.0, "zt_from": "frozen"},  # newer ESD code
    "fast": {"steps": 200, "ddim_steps": 25, "zt_from": "frozen"},
}


def esd_loss(ctx, z: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, emb_e: Cond) -> torch.Tensor:
    """L1 of AP = the ESD loss at (z, t); z: [B, C, h, w], emb_e: one row ("emb" [1, L, d])."""
    with torch.no_grad():
        eps_n = ctx.predict(ctx.frozen, z, t, ctx.emb_null)
        eps_e = ctx.predict(ctx.frozen, z, t, emb_e)
        target = eps_n - ctx.config.negative_guidance * (eps_e - eps_n)
    return ctx.loss(ctx.predict(ctx.denoiser, z, t, emb_e), target, z, alpha_bar)


class ESD:
    Config = ESDConfig
    PRESETS = PRESETS
    PROFILES: dict[str, dict] = {}  # nothing beyond the model's traits
    SPEC = MethodSpec("esd", "ESD: negative guidance away from the concept (Gandikota et al. 2023)",
                      families=("sd", "sdxl"))

    def __init__(self, ctx):
        self.ctx = ctx
        prompts = ctx.config.prompts()
        self.emb_targets = dict(zip(prompts, rows(ctx.embed(prompts))))  # prompt -> one row
        ctx.bank_add(self.emb_targets)  # with a latent bank: every target's frozen trajectories, ahead

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        prompt = self.ctx.pick_target(list(self.emb_targets), step)
        emb_e = self.emb_targets[prompt]
        z, t, alpha_bar = self.ctx.sample_zt(emb_e, self.ctx.draw(), prompt)
        loss = esd_loss(self.ctx, z, t, alpha_bar, emb_e)
        return loss, {"losses": {"l1": loss.item(), "total": loss.item()}, "message": prompt}

    def snapshot_inputs(self) -> dict[str, Cond]:
        return {"ce": next(iter(self.emb_targets.values()))}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


METHOD: type[Method] = ESD  # checked against the protocol (erasure.method)
