"""Robustness of an erasure (docs/design.md §4): does the concept come back under other prompts?

Two attacks, each scored as an attack success rate (ASR, % of images in which a judge, e.g. the
world classifier, recognises the erased concept):
- paraphrases: prompts that name the concept in other words or frames;
- an adversarial prompt search: `n_tokens` free token embeddings after a prefix ("a <t1> <t2> <t3>"),
  optimised white-box against the erased model so that it denoises the concept's images again (the
  diffusion-loss attack of UnlearnDiffAtk / concept inversion): with x0 latents drawn by the *base*
  model for the concept, min over the tokens of E_t,eps || out_erased(z_t, t, c_adv) - target(x0, eps) ||^2.
  The tokens start from the concept's own embedding, so the search begins where the erasure acted.
The adversarial prompt is then sampled from held-out seeds and judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backends import SamplerSettings, generate, initial_latents
from backends.families import family_of
from backends.generate import generate_from_embeddings, native_size
from backends.offload import execution_device
from backends.prompts import fill

Judge = Callable[[np.ndarray], np.ndarray]  # uint8 images [N, H, W, 3] -> bool [N]: concept recognised


@dataclass(frozen=True)
class AttackConfig:
    n_tokens: int = 3  # free token embeddings after the prefix
    prefix: str = "a"  # text before them
    steps: int = 150  # Adam steps on the token embeddings
    lr: float = 1e-2  # their Adam lr
    batch: int = 8  # noised concept latents per step
    n_train: int = 16  # base-model images of the concept the attack fits (seeds 10_000 + i)
    n_eval: int = 32  # held-out seeds the adversarial prompt is judged on (seeds 20_000 + i)
    seed: int = 0

    def check(self) -> None:
        for name in ("n_tokens", "steps", "batch", "n_train", "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def attack_success(images: np.ndarray, judge: Judge) -> float:
    """% of images in which the judge recognises the erased concept."""
    hits = np.asarray(judge(images), dtype=bool)
    if hits.shape != (len(images),):
        raise ValueError(f"the judge must return one bool per image, got shape {hits.shape}")
    return 100.0 * float(hits.mean()) if len(hits) else float("nan")


EVAL_SETTINGS = SamplerSettings(steps=20, guidance=5.0)  # the sampler ESR/PSR are measured with


def paraphrase_attack(pipe, prompts: list[str], judge: Judge, seeds: int = 8,
                      settings: SamplerSettings = EVAL_SETTINGS) -> dict:
    """ASR of paraphrased prompts, each over seeds 0..seeds-1, overall and per prompt."""
    if not prompts:
        raise ValueError("give at least one paraphrase")
    items = [(p, s) for p in prompts for s in range(seeds)]
    images = generate(pipe, [p for p, _ in items], [s for _, s in items], settings)
    hits = np.asarray(judge(images), dtype=bool).reshape(len(prompts), seeds)
    return {"asr": 100.0 * float(hits.mean()),
            "per_prompt": {p: 100.0 * float(h.mean()) for p, h in zip(prompts, hits)}}


class TokenPrompt:
    """A prompt whose last `n` word tokens are free vectors: a forward hook on the text encoder's
    token embedding writes them in, so the same text encoder (and pipeline) is used unchanged."""

    def __init__(self, pipe, prefix: str, n: int, init_word: str):
        self.pipe = pipe
        tok = pipe.tokenizer
        ids = tok(f"{prefix} " + " ".join(["x"] * n), padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids  # [1, L]
        self.ids = ids.to(execution_device(pipe))
        start = 1 + len(tok(prefix, add_special_tokens=False).input_ids)  # after <bos> and the prefix
        self.positions = torch.arange(start, start + n)
        if start + n >= tok.model_max_length:
            raise ValueError(f"prefix {prefix!r} plus {n} tokens does not fit the {tok.model_max_length}-token context")
        table = pipe.text_encoder.get_input_embeddings()
        init_ids = tok(init_word, add_special_tokens=False).input_ids
        init = table.weight[init_ids].mean(0).detach()  # the concept's own embedding (mean over its tokens)
        self.vectors = torch.nn.Parameter(init.expand(n, -1).clone())  # [n, d]

    def embed(self) -> torch.Tensor:
        """Text-encoder hidden states [1, L, d] with the free vectors in place; differentiable."""
        table = self.pipe.text_encoder.get_input_embeddings()

        def write(module, args, out):  # out [1, L, d]
            out = out.clone()
            out[:, self.positions] = self.vectors.to(out.dtype)
            return out

        handle = table.register_forward_hook(write)
        try:
            return self.pipe.text_encoder(self.ids)[0]
        finally:
            handle.remove()


def _concept_latents(base_pipe, prompt: str, seeds: list[int], settings: SamplerSettings) -> torch.Tensor:
    """x0 latents [N, C, h, w] the base model draws for the concept."""
    size = native_size(base_pipe)
    return base_pipe(prompt=[prompt] * len(seeds), latents=initial_latents(base_pipe, seeds, size, size),
                     num_inference_steps=settings.steps, guidance_scale=settings.guidance, output_type="latent").images


def adversarial_prompt_attack(base_pipe, erased_pipe, concept: str, judge: Judge, config: AttackConfig | None = None,
                              settings: SamplerSettings = EVAL_SETTINGS, template: str = "a {concept}") -> dict:
    """Search token embeddings that make `erased_pipe` draw `concept` again; returns the ASR of the
    adversarial prompt on held-out seeds, the ASR of the plain prompt on the same seeds, and the loss
    at the start and end (the erased pipe's UNet and text encoder are left frozen)."""
    config = config or AttackConfig()
    config.check()
    pipe, sched, family = erased_pipe, erased_pipe.scheduler, family_of(erased_pipe)
    net = family.denoiser(pipe)
    x0 = _concept_latents(base_pipe, fill(template, concept), [10_000 + i for i in range(config.n_train)],
                          settings)
    prompt = TokenPrompt(pipe, config.prefix, config.n_tokens, concept)
    opt = torch.optim.Adam([prompt.vectors], lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    net.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    losses = []
    for _ in range(config.steps):
        idx = torch.randint(0, len(x0), (config.batch,), generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (config.batch,), generator=gen).to(execution_device(pipe))
        eps = torch.randn(x0[idx].shape, generator=gen).to(execution_device(pipe), x0.dtype)
        z_t = sched.add_noise(x0[idx], eps, t)
        target = sched.get_velocity(x0[idx], eps, t) if sched.config.prediction_type == "v_prediction" else eps
        loss = F.mse_loss(family.predict(net, z_t, t, {"emb": prompt.embed()}), target)  # [1, L, d], broadcast
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seeds = [20_000 + i for i in range(config.n_eval)]
    with torch.no_grad():
        emb = prompt.embed()  # [1, L, d]
        images = generate_from_embeddings(pipe, {"emb": emb.expand(len(seeds), -1, -1)}, family.encode(pipe, [""]),
                                          seeds, settings)
    plain = generate(pipe, [fill(template, concept)] * len(seeds), seeds, settings)
    return {"asr": attack_success(images, judge), "plain_asr": attack_success(plain, judge),
            "loss_first": losses[0], "loss_last": float(np.mean(losses[-10:])), "images": images}
