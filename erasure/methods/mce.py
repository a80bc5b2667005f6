"""MCE — Minimalist Concept Erasure (Zhang et al., ICML 2025; seed 000), docs/design.md §3.

The weights stay frozen; a mask per FFN hidden neuron and per normalisation/modulation output is
learnt (sigmoid-relaxed, binarised for the result; which layers is the `sites` setting, and the
embedded UNet's profile adds its resnets' GroupNorm channels). The loss is on the *final* output of a few-step
sampler, back-propagated through every step (gradient checkpointing per denoiser call):

    L = ||x^mask(p) - x^orig(p without the concept)||^2  +  beta ||x^mask(q) - x^orig(q)||^2

for prompts p naming the concept and q not naming it, both models started from the same z_T.
The result is the binary masks only; `apply` bakes them into the weights (zeroed rows/columns).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from backends.family import cat, rows
from backends.prompts import fill

from ..config import EraseConfig
from ..masks import KINDS, RELAXATIONS, SEED_KINDS, Masker, bake, mask_sites, parse_key
from ..method import MethodSpec, TrainsOwnParameters

# Prompt templates when none are given: SD/FLUX-style phrasings of a concept and generic kept prompts.
ERASE_TEMPLATES = ["a photo of a {concept}", "a painting of a {concept}", "{concept}", "a picture of a {concept}",
                   "an image of a {concept} in the city", "a close-up of a {concept}"]
KEEP_PROMPTS = ["a photo of a dog", "a landscape with mountains", "a bowl of fruit", "a city street at night",
                "a portrait of a woman", "a red car", "a cup of coffee on a table", "a forest in autumn"]


@dataclass
class MCEConfig(EraseConfig):
    SCALE_LR: ClassVar[bool] = False  # mask logits: the published lr holds for every model size
    # the accumulated gradient equals the whole batch's (up to float summation order)
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("micro_batch",)

    lr: float = 0.5  # Adam lr of the FFN-neuron mask logits (lr_ffn)
    lr_norm: float = 0.5  # Adam lr of the normalisation/modulation mask logits
    weight_decay: float = 1e-2  # decoupled weight decay on the logits
    beta: float = 0.01  # weight of the preservation term
    steps: int = 400  # outer steps
    batch: int = 4  # prompts per step (half naming the concept, half not)
    # prompts per forward/backward: the step's gradient is accumulated over ceil(batch / micro_batch) chunks,
    # so activation memory is that of micro_batch prompts (0 = the whole batch at once; docs/design.md §3.6)
    micro_batch: int = 0
    ddim_steps: int = 4  # steps of the few-step sampler the loss differentiates through (DDIM; Euler on FLUX)
    # UNet: classifier-free guidance; FLUX: the guidance embedding if the model has one (schnell has none)
    sample_guidance: float = 5.0
    # mask logits start here: sigmoid(1) = 0.73. The MCE paper does not say; on the embedded model (the published
    # sites) a start at 3 (0.95) left 69 % of stars recognisable after 150 steps, a start at 1 about 17 %
    init_logit: float = 1.0
    relaxation: str = "sigmoid"  # "sigmoid" | "straight_through" | "hard_concrete" (see masks.RELAXATIONS)
    erase_templates: list[str] = field(default_factory=lambda: list(ERASE_TEMPLATES))  # prompts naming the concept
    keep_prompts: list[str] = field(default_factory=lambda: list(KEEP_PROMPTS))  # prompts to leave unchanged
    checkpointing: bool = True  # recompute activations in the backward pass (memory for FLUX)
    sites: list[str] = field(default_factory=lambda: list(SEED_KINDS))  # where masks sit (masks.KINDS)

    def validate(self) -> None:
        super().validate()
        for name in ("lr_norm", "beta", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {self.relaxation!r}; valid: {', '.join(RELAXATIONS)}")
        if not self.sites or set(self.sites) - set(KINDS):
            raise ValueError(f"sites must be a non-empty list of {', '.join(KINDS)}, got {self.sites}")
        if not 0 <= self.micro_batch <= self.batch:
            raise ValueError(f"micro_batch must be 0 (the whole batch at once) or 1 .. batch ({self.batch}), "
                             f"got {self.micro_batch}")
        if self.batch < 2:
            raise ValueError("batch must be >= 2: each step needs a prompt with and one without the concept")
        if not self.erase_templates or any("{concept}" not in t for t in self.erase_templates):
            raise ValueError("erase_templates must be a non-empty list of templates containing '{concept}'")
        if not self.keep_prompts or any(not p.strip() for p in self.keep_prompts):
            raise ValueError("keep_prompts must be a non-empty list of prompts")


PRESETS = {
    "object": {},
    "style": {"erase_templates": ["a painting in the style of {concept}", "an artwork by {concept}",
                                  "a landscape by {concept}", "a portrait by {concept}"]},
    "nudity": {"erase_templates": ["a photo of a {concept} person", "{concept}", "a {concept} body"]},
    # the seed: batch 4, lr 0.5 / 0.5, beta 0.01, Adam, 400 steps, weight decay 1e-2, a 4-step sampler
    "reference": {"ddim_steps": 4, "sites": list(SEED_KINDS), "beta": 0.01},
    # On the embedded model (erase "star", 8 seeds, ESR-1 / PSR-1 %, one CPU thread; README, "MCE on the
    # embedded model"): with its profile's sites and beta (MCE.PROFILES) 100 / 75.0, 100 / 73.6 and
    # 100 / 53.7 for training seeds 0, 1 and 2; with the published MCE sites and beta 93.8 / 75.5, 52.1 / 90.3 and
    # 25.0 / 97.9, and no other setting tried (benchmarks/bench_mce_settings.py) erased reliably.
    "fast": {"steps": 150, "ddim_steps": 4},
}


def without(prompt: str, concept: str) -> str:
    """The prompt with the concept's words removed ("a red star" -> "a red"): the concept-free target."""
    out = re.sub(rf"\b{re.escape(concept.strip())}\b", " ", prompt, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", out).strip()


class MCE:
    Config = MCEConfig
    PRESETS = PRESETS
    PROFILES = {
        # World captions naming the concept, and world captions to keep (ones naming a target are dropped by
        # the method). Masks also on the resnets' GroupNorm channels, with a 10x preservation weight: masking
        # all 2112 FFN neurons of the embedded UNet still leaves 90 % of stars recognisable, so the published
        # MCE sites erase only by chance there (ESR-1 25-94 % over training seeds); with these, 100 % in every
        # seed tried (docs/results.md, "MCE on the embedded model"; benchmarks/bench_mce_sites.py)
        "embedded": {
            "erase_templates": ["a {concept}", "a red {concept}", "a green {concept}", "a blue {concept}",
                                "a yellow {concept}", "a purple {concept}", "an orange {concept}",
                                "a {concept} on a striped background", "a {concept} in outline"],
            "sites": ["ffn", "norm", "resnet"],
            "beta": 0.1,
            "keep_prompts": ["a red circle", "a blue square", "a green triangle", "a yellow cross", "a purple diamond",
                             "an orange heart", "a red moon", "a blue arrow", "a green hourglass", "a yellow star"],
        },
        # EmojiWorld (the same UNet architecture, 32 px): its captions' styles and backgrounds around the
        # concept, the embedded sites and weight (not yet measured there), and ten concepts it learnt, of
        # different groups, to keep
        "emoji": {
            "erase_templates": ["a {concept}", "a sketched {concept}", "a grayscale {concept}", "a pixelated {concept}",
                                "an inverted {concept}", "a {concept} on a striped background",
                                "a {concept} on a checkered background", "an emoji of a {concept}"],
            "sites": ["ffn", "norm", "resnet"],
            "beta": 0.1,
            "keep_prompts": ["a dog face", "a hamburger", "an automobile", "a house", "a red apple", "a camel",
                             "a motorcycle", "a lion", "a pretzel", "a bicycle"],
        },
    }
    # only mask logits learn (the trainer selects no weights); masks sit in any denoiser and the loss runs
    # the family's few-step sampler
    SPEC = MethodSpec("mce", "MCE: binary neuron masks learnt through a few-step sampler (Zhang et al. 2025)",
                      trains="masks", families=("sd", "sdxl", "flux"))

    def __init__(self, ctx):
        self.ctx, cfg = ctx, ctx.config
        self.sampler = ctx.family.few_step_sampler(ctx.pipe, cfg.ddim_steps, cfg.sample_guidance, ctx.size)
        self.model = self.sampler.model
        self.model.requires_grad_(False)  # frozen weights: only the masks learn
        self.masker = Masker(self.model, mask_sites(self.model, tuple(cfg.sites)), cfg.init_logit, self.sampler.component,
                             cfg.relaxation).to(ctx.device)
        self.pairs = [(fill(t, c.strip()), without(fill(t, c.strip()), c))
                      for c in cfg.targets for t in cfg.erase_templates]  # (with, without the concept)
        words = {w.lower() for c in cfg.targets for w in c.split()}
        self.keep = [q for q in cfg.keep_prompts if not words & set(q.lower().split())]  # none naming a target
        if not self.keep:
            raise ValueError("every keep prompt names an erased concept; give keep_prompts without it")
        texts = sorted({p for pair in self.pairs for p in pair} | set(self.keep))
        self.cond = dict(zip(texts, rows(self.sampler.embed(texts))))  # prompt -> conditioning of one row

    def optimizer(self) -> torch.optim.Optimizer:
        cfg = self.ctx.config
        return torch.optim.AdamW(self.masker.param_groups(cfg.lr, cfg.lr_norm), weight_decay=cfg.weight_decay)

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        ctx, cfg = self.ctx, self.ctx.config
        n_e = max(1, cfg.batch // 2)
        pairs = [self.pairs[int(i)] for i in ctx.rng.integers(len(self.pairs), size=n_e)]
        keep = [self.keep[int(i)] for i in ctx.rng.integers(len(self.keep), size=cfg.batch - n_e)]
        z = self.sampler.noise(cfg.batch, ctx.gen)  # one z_T per prompt, shared by both models
        self.masker.resample(ctx.gen)  # hard_concrete: this step's gates, the same for every chunk
        targets = self._cond([q for _, q in pairs] + keep)  # the original model draws these
        prompts = self._cond([p for p, _ in pairs] + keep)  # the masked model draws these
        if not cfg.micro_batch or cfg.micro_batch == cfg.batch:
            out, target = self._draw(prompts, targets, z)
            erase_mse, keep_mse = F.mse_loss(out[:n_e], target[:n_e]), F.mse_loss(out[n_e:], target[n_e:])
            loss = erase_mse + cfg.beta * keep_mse
            l_erase, l_keep = erase_mse.item(), keep_mse.item()
        else:
            loss, l_erase, l_keep = self._accumulated(prompts, targets, z, n_e)
        masked = 100 * self.masker.masked_fraction()
        return loss, {"losses": {"erase": l_erase, "keep": l_keep, "total": loss.item()},
                      "metrics": {"masked_pct": masked}, "message": f"{masked:.2f} % of neurons masked"}

    def _accumulated(self, prompts, targets, z, n_e: int) -> tuple[torch.Tensor, float, float]:
        """The same loss and gradient as one pass over the batch, micro_batch prompts at a time: each
        chunk's share of l_erase + beta l_keep is differentiated and freed before the next chunk runs."""
        cfg = self.ctx.config
        # each row's weight: mean over the n_e erase rows, beta x mean over the kept rows
        weight = torch.tensor([1 / n_e] * n_e + [cfg.beta / (cfg.batch - n_e)] * (cfg.batch - n_e))
        sse, total = torch.zeros(cfg.batch), 0.0  # sse: per-row sum of squared errors
        grads = [torch.zeros_like(p) for p in self.masker.logits]  # the accumulated gradient of every site
        for lo in range(0, cfg.batch, cfg.micro_batch):
            part, sse[lo:lo + cfg.micro_batch] = self._chunk_loss(prompts, targets, z, slice(lo, lo + cfg.micro_batch),
                                                                  weight[lo:lo + cfg.micro_batch])
            g = torch.autograd.grad(part, list(self.masker.logits), allow_unused=True)  # a site off this chunk's path: None
            grads = [a if x is None else a + x for a, x in zip(grads, g)]
            total += part.item()
        numel = z[0].numel()
        l_erase, l_keep = sse[:n_e].sum().item() / (n_e * numel), sse[n_e:].sum().item() / ((cfg.batch - n_e) * numel)
        return gradient_surrogate(total, list(self.masker.logits), grads), l_erase, l_keep

    def _chunk_loss(self, prompts, targets, z, rows_: slice, weight: torch.Tensor):
        """sum_r weight_r * mean_r((x^mask - x^orig)^2) over one chunk's rows, and each row's sum of
        squared errors (detached, CPU)."""
        z = z[rows_]
        out, target = self._draw(_rows(prompts, rows_), _rows(targets, rows_), z)
        sse = (out.float() - target.float()).pow(2).flatten(1).sum(1)  # [rows]
        return (sse * weight.to(sse.device)).sum() / z[0].numel(), sse.detach().cpu()

    def _draw(self, prompts, targets, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x^mask(prompts), x^orig(targets)) from the same z_T: the masked model differentiably, the
        original (masks off) without a graph."""
        with torch.no_grad():
            self.masker.mode = "off"
            target = self.sampler.sample(targets, z)
            self.masker.mode = "soft"
        return self.sampler.sample(prompts, z, grad=True, use_checkpoint=self.ctx.config.checkpointing), target

    def memory_estimate(self):
        """Memory the run adds (erasure.memory): ddim_steps differentiated sampler steps of micro_batch
        prompts, checkpointed per block on FLUX and per call on a UNet, beside the mask state."""
        from .. import memory

        cfg, ctx = self.ctx.config, self.ctx
        one = self.sampler.embed([""])
        probe = ctx.family.few_step_sampler(ctx.pipe, 1, cfg.sample_guidance, ctx.size)  # one step: one call

        def call_at(px):
            z = ctx.family.noise(ctx.pipe, 1, torch.Generator().manual_seed(0), px)
            return probe.sample(one, z, grad=True, use_checkpoint=False)

        noise = self.masker._noise
        self.masker.resample(torch.Generator().manual_seed(0))  # hard_concrete gates for the probe, not ctx.gen's
        try:
            p = memory.call_profile(ctx.family, ctx.pipe, call_at, ctx.size)
        finally:
            self.masker._noise = noise
        mode = "none" if not cfg.checkpointing else "block" if memory.blocks_of(self.model) else "call"
        rows = cfg.micro_batch or cfg.batch
        n = sum(s.size for s in self.masker.sites)
        detail = {"mask state": 4 * 4 * n, "activations": memory.activation_bytes(p, rows, cfg.ddim_steps, mode)}
        fixes = [f"micro_batch=1 (now {rows} prompts per pass; the gradient is accumulated)"] if rows > 1 else []
        fixes += ["checkpointing=true"] if not cfg.checkpointing else []
        fixes += [f"fewer ddim_steps (now {cfg.ddim_steps})"] if mode != "call" else []
        fixes += ["load the weights in bfloat16 (--dtype bfloat16)"] if self.model.dtype == torch.float32 else []
        from backends.loader import weight_bytes

        est = memory.MemoryEstimate(str(ctx.device), weight_bytes(ctx.pipe, ctx.device),
                                    int(sum(detail.values())), detail)
        return est, fixes + ["a GPU with more free memory"]

    def _cond(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return cat([self.cond[p] for p in prompts])

    def result(self) -> dict[str, torch.Tensor]:
        """Binary masks (True = kept), keyed "mask.<input|output>.<unet|transformer>.<module path>"."""
        return self.masker.binary()

    def finish(self) -> None:
        """Leave the pipeline as the result describes: hooks removed, binary masks baked in."""
        masks = self.result()
        self.masker.remove()
        for key, keep in masks.items():
            where, _, path = parse_key(key)
            bake(self.model, where, path, keep)

    def snapshot_inputs(self) -> dict[str, str]:
        return {"ce": self.pairs[0][0]}

    @contextlib.contextmanager
    def snapshot_model(self):
        """Snapshots show the binarised masks (the model `apply` gives), not this step's relaxed ones."""
        mode, self.masker.mode = self.masker.mode, "hard"
        try:
            yield
        finally:
            self.masker.mode = mode

    def state_dict(self) -> dict:
        return {"logits": [p.detach() for p in self.masker.logits]}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.masker.logits, state["logits"]):
                p.copy_(saved.to(p.device))


def _rows(cond: dict[str, torch.Tensor], rows_: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows_] for k, v in cond.items()}


def gradient_surrogate(value: float, params: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """A scalar whose value is `value` and whose gradient w.r.t. `params` is `grads`: how an accumulated
    gradient (computed chunk by chunk with autograd.grad) goes through the trainer's one `loss.backward()`.
    d/dp sum(p * g) = g exactly; the detached copy takes the product back out of the value."""
    dot = torch.stack([(p * g).sum() for p, g in zip(params, grads)]).sum()
    return dot - dot.detach() + value


METHOD: type[TrainsOwnParameters] = MCE  # checked against the protocol (erasure.method)
