"""AGE — Adaptive Guided Erasure (Bui et al., ICLR 2025: "Fantastic Targets for Concept Erasure in
Diffusion Models and Where to Find Them"), the follow-up to AP (docs/design.md §3.7).

ESD maps the erased concept c_e onto the null prompt; AGE maps it onto a target concept c_t chosen
among the concepts near c_e, and keeps c_t itself unchanged:
  L_erase = ||eps_theta'(z_e, c_e, t) - [eps_theta(z_e, c_t, t) - eta (eps_theta(z_e, c_e, t) - eps_theta(z_e, c_t, t))]||^2
  L_keep  = ||eps_theta'(z_t, c_t, t) - eps_theta(z_t, c_t, t)||^2,        min over theta' of L_erase + lam L_keep
with c_t = G(pi) @ R: R the embeddings of the search space's concepts (AP's: the vocabulary words
nearest c_e, thinned by k-means), G a Gumbel-Softmax sample of pi, hard (one concept,
straight-through) or soft over the top-k (a mixture). Between theta' steps, pi ascends L_keep, so the
target drifts to the nearby concept the erasure disturbs most: the erased concept is mapped onto it
and it is held fixed, so the damage lands where it is also repaired. z_e and z_t come from the same
start code, sampled under c_e and c_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.family import Cond, detach, rows
from backends.prompts import model_traits
from backends.vocab import VOCABULARIES

from ..config import EraseConfig
from ..method import MethodSpec, SearchesConcepts
from .search import (
    CentreProbe,
    Space,
    build_spaces,
    centre_conds,
    check_search_settings,
    gumbel_softmax_hard,
    load_spaces_state,
    no_param_grads,
    spaces_state,
)


@dataclass
class AGEConfig(EraseConfig):
    # settings added after stored results: at these values they compute what the code did before them
    OMIT_AT_DEFAULT = {**EraseConfig.OMIT_AT_DEFAULT, "exclude_inflections": False, "exclude_near": 0.0}

    vocab: str = "imagenet"  # search vocabulary (backends.vocab.VOCABULARIES); the paper: ImageNet class names for objects
    vocab_size: int = 10000  # its first N concepts (all 1,000 of imagenet)
    k_closest: int = 100  # words nearest the target that k-means thins out (the paper's object setting)
    n_centres: int = 100  # |R|: concepts the target ranges over
    n_iter: int = 1  # steps on pi between two steps on theta' (the reference alternates one and one)
    search_lr: float = 1e-2  # Adam lr on pi
    tau: float = 0.1  # Gumbel-Softmax temperature
    hard: bool = True  # one concept per sample (straight-through); False: a mixture of the top_k concepts
    top_k: int = 2  # concepts in a soft sample
    lam: float = 1.0  # weight of L_keep
    # leave the target words' inflections out of the search space too, as AP does (docs/design.md §3.3)
    exclude_inflections: bool = True
    exclude_near: float = 0.0  # also leave out words nearer the target than this x the median word distance (0 = off)

    def validate(self) -> None:
        super().validate()
        check_search_settings(self, VOCABULARIES, ("top_k",))
        if self.top_k > self.n_centres:
            raise ValueError(f"top_k ({self.top_k}) cannot exceed n_centres ({self.n_centres})")


PRESETS = {
    "object": {"param_group": "xattn"},
    "style": {"param_group": "xattn"},
    "nudity": {"param_group": "noxattn"},
    # the paper's object setting: lr 1e-5, 1000 steps on theta' (and as many on pi), hard samples at tau
    # 0.1, pi's lr 1e-2, 100 concepts, lam 1, z_t from the trained model, DDIM 50
    "reference": {},
    # AP's fast schedule (450 steps, a 10-step z_t sampler on the frozen model); measured in docs/results.md
    "fast": {"steps": 450, "ddim_steps": 10, "zt_from": "frozen"},
}


def gumbel_softmax_topk(logits: torch.Tensor, tau: float, k: int, gen: torch.Generator) -> torch.Tensor:
    """A Gumbel-Softmax sample kept on its k largest entries and renormalised: a mixture of k
    concepts, differentiable in logits; [n] -> [n]."""
    u = torch.rand(logits.shape, generator=gen).to(logits.device)
    soft = ((logits - torch.log(-torch.log(u + 1e-10) + 1e-10)) / tau).softmax(-1)
    kept = soft * (soft >= soft.topk(k).values[-1])
    return kept / kept.sum()


class AGE:
    Config = AGEConfig
    PRESETS = PRESETS
    # the embedded world's own words, and a search space its size allows (as AP's profile)
    PROFILES = {"embedded": {"vocab": model_traits("embedded").vocabulary, "k_closest": 100, "n_centres": 16},
                "emoji": {"vocab": model_traits("emoji").vocabulary}}  # as AP's (its search)
    SPEC = MethodSpec("age", "AGE: maps the concept onto an adaptively chosen nearby concept it keeps (Bui et al. 2025)",
                      families=("sd",), searches=True)  # R holds one text encoder's word embeddings, as AP's does

    def __init__(self, ctx):

        self.ctx, cfg = ctx, ctx.config
        prompts = cfg.prompts()
        self.emb_targets = dict(zip(prompts, rows(ctx.embed(prompts))))  # prompt -> {"emb": [1, L, d]}
        # prompt -> its search space, and the words kept out of it
        self.spaces, self.excluded = build_spaces(ctx.pipe, cfg, prompts)
        self.probe = CentreProbe(ctx)  # L_keep of every centre at snapshots (the trajectory)
        # a hard sample is one centre; top-k mixtures are sampled at each draw
        ctx.bank_add(dict(self.emb_targets) | (centre_conds(self.spaces) if cfg.hard else {}))

    def _target(self, space: Space, grad: bool) -> tuple[Cond, str]:
        """c_t ({"emb": [1, L, d]}) and the concept with the largest weight in this sample."""
        cfg, logits = self.ctx.config, space.pi if grad else space.pi.detach()
        weights = (gumbel_softmax_hard(logits, cfg.tau, self.ctx.gen) if cfg.hard
                   else gumbel_softmax_topk(logits, cfg.tau, cfg.top_k, self.ctx.gen))
        return space.embed(weights), space.words[int(weights.argmax())]

    def _keep(self, c_t: Cond, label: str, start) -> torch.Tensor:
        """L_keep at z_t sampled under c_t; differentiable in theta' and, through c_t, in pi."""
        ctx = self.ctx
        z_t, t, alpha_bar = ctx.sample_zt(detach(c_t), start, f"word:{label}" if ctx.config.hard else None)
        with torch.no_grad():
            target = ctx.predict(ctx.frozen, z_t, t, detach(c_t))
        return ctx.loss(ctx.predict(ctx.denoiser, z_t, t, c_t), target, z_t, alpha_bar)

    def _search(self, space: Space) -> None:
        """n_iter Adam steps of pi up L_keep (theta' frozen for them)."""
        with no_param_grads(self.ctx.trained.values()):
            for _ in range(self.ctx.config.n_iter):
                start = self.ctx.draw()
                c_t, label = self._target(space, grad=True)
                space.opt.zero_grad()
                (-self._keep(c_t, label, start)).backward()
                space.opt.step()

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        ctx, cfg = self.ctx, self.ctx.config
        prompt = ctx.pick_target(list(self.emb_targets), step)
        space, c_e = self.spaces[prompt], self.emb_targets[prompt]
        if step > 0:  # the reference trains theta' first, then alternates
            self._search(space)
        c_t, label = self._target(space, grad=False)
        start = ctx.draw()  # one start code for z_e (under c_e) and z_t (under c_t)
        z_e, t, alpha_bar = ctx.sample_zt(c_e, start, prompt)
        with torch.no_grad():
            eps_t = ctx.predict(ctx.frozen, z_e, t, c_t)
            eps_e = ctx.predict(ctx.frozen, z_e, t, c_e)
            target = eps_t - cfg.negative_guidance * (eps_e - eps_t)
        l_erase = ctx.loss(ctx.predict(ctx.denoiser, z_e, t, c_e), target, z_e, alpha_bar)
        l_keep = self._keep(c_t, label, start)
        total = l_erase + cfg.lam * l_keep
        return total, {"losses": {"erase": l_erase.item(), "keep": l_keep.item(), "total": total.item()},
                       "message": prompt, "concept": space.words[int(space.pi.argmax())], "top5": space.top(),
                       "sampled": label, "extra": {"probs": space.probs()}}

    def snapshot_inputs(self) -> dict[str, Cond]:
        prompt = next(iter(self.emb_targets))
        space = self.spaces[prompt]  # the current most likely target, not a random sample
        return {"ce": self.emb_targets[prompt], "ct": {"emb": space.R[int(space.pi.argmax())][None]}}

    def search_spaces(self) -> dict[str, list[str]]:
        return {p: s.words for p, s in self.spaces.items()}

    def excluded_words(self) -> dict[str, list[str]]:
        return self.excluded

    def centre_losses(self) -> dict[str, list[float]]:
        return {p: self.probe.losses(p, s) for p, s in self.spaces.items()}

    def state_dict(self) -> dict:
        return spaces_state(self.spaces)

    def load_state_dict(self, state: dict) -> None:
        load_spaces_state(self.spaces, state)


METHOD: type[SearchesConcepts] = AGE  # checked against the protocol (erasure.method)
