"""AP — Adversarial Preservation (Bui et al.), the core method (docs/design.md §3, paper algorithms 1-2).

min over theta' of max over pi of E_{c_e}[L1 + lam L2]:
  L1 = the ESD loss; L2 = ||eps_theta'(z_r, c_a, t) - eps_theta(z_r, c_a, t)||^2,
  c_a = G(pi) @ R with G the hard (straight-through) Gumbel-Softmax at temperature tau.
Each outer step first takes N_iter ascent steps on pi (algorithm 1), then one Adam step on
theta' (algorithm 2). pi persists over training (uniform start), one per target concept.

Variants (`preserve`): "adversarial" (AP), "none" (= ESD), "neutral" (c_a = ""),
"fixed" (c_a = a chosen concept), "pgd" (continuous search on the embedding, paper fig. 4), and two
controls the paper lacks (docs/design.md §3.3): "random" (a uniformly random centre of the same search
space each step, no ascent) and "all" (the mean L2 over `all_batch` centres each step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.family import Cond, detach, rows
from backends.prompts import fill, model_traits
from backends.vocab import VOCABULARIES

from ..config import EraseConfig
from ..method import MethodSpec, SearchesConcepts
from .esd import esd_loss
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

PRESERVE = ("adversarial", "none", "neutral", "fixed", "pgd", "random", "all")
SEARCHED = ("adversarial", "pgd", "random", "all")  # the strategies that build a search space
SEARCHES = ("gradient", "probe")  # APConfig.search: how the adversarial search moves pi


@dataclass
class APConfig(EraseConfig):
    # settings added after stored results: at these values they compute what the code did before them
    OMIT_AT_DEFAULT = {**EraseConfig.OMIT_AT_DEFAULT, "all_batch": 8, "exclude_inflections": False, "exclude_near": 0.0,
                       "search": "gradient", "probe_every": 10, "probe_beta": 2.0}

    preserve: str = "adversarial"  # adversarial | none | neutral | fixed | pgd | random | all (controls)
    fixed_concept: str = ""  # the concept kept when preserve == "fixed" (e.g. "road", "person")
    vocab: str = "english"  # search vocabulary (backends.vocab.VOCABULARIES); the reference code: English words
    vocab_size: int = 10000  # its first N words (english, clip-words: most frequent first)
    k_closest: int = 1000  # words nearest the target that k-means thins out
    n_centres: int = 100  # |R|: concepts pi ranges over
    n_iter: int = 2  # ascent steps on pi per outer step (paper: more hurts preservation)
    search_lr: float = 1e-2  # Adam lr on pi (reference scripts; the paper states 1e-3)
    tau: float = 2.0  # Gumbel-Softmax temperature
    lam: float = 1.0  # weight of the preservation loss L2
    pgd_eps: float = 1.0  # pgd variant: L-inf radius around the target embedding
    pgd_step: float = 0.1  # pgd variant: signed-gradient step size
    all_batch: int = 8  # preserve="all": centres whose mean L2 each step preserves (>= n_centres: every centre)
    # leave the target words' inflections out of the search space too ("shadow" when erasing "shadowed"):
    # preserving them preserves the target (docs/design.md §3.3, "What the search may not hold")
    exclude_inflections: bool = True
    exclude_near: float = 0.0  # also leave out words nearer the target than this x the median word distance (0 = off)
    # how the adversarial search moves pi (docs/design.md §3.3, "Is the adversary adversarial"): "gradient" (the
    # paper: n_iter ascent steps on L2 through a Gumbel-Softmax sample) or "probe" (every probe_every steps, pi is
    # set to probe_beta x the z-scores of every centre's L2, measured by the centre probe on one fixed code)
    search: str = "gradient"
    probe_every: int = 10  # search="probe": steps between two measurements of every centre's L2
    probe_beta: float = 2.0  # search="probe": how sharply pi follows the measured damage (0 = uniform)

    def validate(self) -> None:
        super().validate()
        if self.search not in SEARCHES:
            raise ValueError(f"unknown search {self.search!r}; valid: {', '.join(SEARCHES)}")
        if not (isinstance(self.probe_every, int) and self.probe_every >= 1 and 0 <= self.probe_beta <= 50):
            raise ValueError(f"probe_every must be a whole number >= 1 and probe_beta in 0..50, got {self.probe_every} "
                             f"and {self.probe_beta}")
        if self.preserve not in PRESERVE:
            raise ValueError(f"unknown preserve {self.preserve!r}; valid: {', '.join(PRESERVE)}")
        if self.preserve == "fixed" and not self.fixed_concept.strip():
            raise ValueError("preserve='fixed' needs fixed_concept, e.g. fixed_concept='road'")
        check_search_settings(self, VOCABULARIES, ("pgd_eps", "pgd_step", "all_batch"))


PRESETS = {
    "object": {"param_group": "xattn", "k_closest": 1000, "n_centres": 100},
    "style": {"param_group": "xattn", "k_closest": 1000, "n_centres": 100},
    "nudity": {"param_group": "noxattn", "k_closest": 2000, "n_centres": 50},
    "reference": {},  # the paper: lr 1e-5, 1000 steps, batch 1, DDIM 50, N_iter 2, tau 2, lam 1
    # 3.3x fewer steps at the same lr, a 10-step z_t sampler on the frozen model, one ascent step.
    # Measured on the embedded model: lr 5e-5 (x100) destroyed the other shapes (PSR-1 44 %);
    # 200 steps left 3 of 48 star images recognisable (ESR-1 93.8 %) on the zero-SNR model;
    # 300 steps with 10 sampler steps: ESR-1 97.9 %, PSR-1 96.5 % in 117 s (2 CPU threads), 2.8 PSR-1
    # points behind reference; 450 steps: ESR-1 97.9 %, PSR-1 98.4 %; 300 steps with two ascent steps
    # kept ESR-1 at 100 % but lost PSR-1 (93.1 %). See benchmarks/bench_erasure.py for the comparison.
    "fast-v1": {"steps": 450, "ddim_steps": 10, "zt_from": "frozen", "n_iter": 1},
    # z_t read from a latent bank of 16 start codes per conditioning (erasure.latent_bank) instead of up to 9
    # sampler steps per draw, so a step costs ~1/3 of fast-v1's, and 600 steps. Embedded model, 16 seeds per
    # prompt: 450 steps with 8 codes reached ESR-1 95.8 / PSR-1 99.8, 16 codes 96.9 / 99.8; 600 steps with 8
    # codes 99.0 / 99.2, with 16 codes 99.0 / 99.3 (ESR-5 84.4). benchmarks/bench_erasure.py compares it
    # with reference.
    # On SD-size profiles (100 centres) each centre keeps one code, sampled when first drawn: 16 codes of
    # every centre ahead were 29,088 UNet rows, ~79 % of the run, for ~1,200 centre reads (benchmarks/bench_rows.py).
    "fast": {"steps": 600, "ddim_steps": 10, "zt_from": "frozen", "n_iter": 1, "bank_codes": 16,
             "bank_centre_codes": 1},
}


class AP:
    Config = APConfig
    PRESETS = PRESETS
    # The tiny text encoder only learnt the world's words; untrained CLIP tokens all embed near the null
    # prompt, so they would crowd the search space with copies of "".
    # Its 16 centres keep every code ahead (bank_centre_codes 0): 4,896 batched rows, what `fast`'s stored
    # results were measured with.
    PROFILES = {"embedded": {"vocab": model_traits("embedded").vocabulary, "k_closest": 100, "n_centres": 16,
                             "bank_centre_codes": 0},
                # EmojiWorld knows 1,249 named concepts: the paper's search, 100 centres among the 1,000 names
                # nearest the target, over them
                "emoji": {"vocab": model_traits("emoji").vocabulary}}
    # the search space R holds one text encoder's word embeddings (backends.word_store)
    SPEC = MethodSpec("ap", "AP: negative guidance plus adversarial preservation of the concept the erasure damages "
                      "most (Bui et al.)", families=("sd",), searches=True)

    def __init__(self, ctx):
        self.ctx, cfg = ctx, ctx.config
        prompts = cfg.prompts()
        self.emb_targets = dict(zip(prompts, rows(ctx.embed(prompts))))  # prompt -> {"emb": [1, L, d]}
        self.spaces: dict[str, Space] = {}
        self.delta: dict[str, torch.Tensor] = {}  # pgd variant: offset from the target embedding
        self.excluded: dict[str, list[str]] = {}  # prompt -> the words kept out of its search space
        if cfg.preserve in SEARCHED:
            self.spaces, self.excluded = build_spaces(ctx.pipe, cfg, prompts)
            self.delta = {p: torch.zeros_like(self.emb_targets[p]["emb"]) for p in prompts}
        if cfg.preserve in ("neutral", "fixed"):
            fixed = "" if cfg.preserve == "neutral" else fill(cfg.template, cfg.fixed_concept.strip())
            self.emb_fixed = ctx.embed([fixed])
        self.probe = CentreProbe(ctx) if self.spaces else None
        ctx.bank_add(self.bank_conds(), centres=tuple(centre_conds(self.spaces)))

    def bank_conds(self) -> dict[str, Cond]:
        """The conditionings z_t is sampled under, labelled as `_ca` names them: targets and every centre
        (a hard Gumbel sample is one centre), or the fixed concept; for a latent bank (erasure.latent_bank)."""
        out = dict(self.emb_targets) | centre_conds(self.spaces)
        if self.ctx.config.preserve in ("neutral", "fixed"):
            out["fixed"] = self.emb_fixed
        return out

    # ------------------------------------------------------------------ the adversarial concept
    def _ca(self, prompt: str, grad: bool) -> tuple[Cond, str, str | None]:
        """c_a ({"emb": [1, L, d]}), a label for it and its latent-bank label (None: not in the bank, as the
        pgd offset); differentiable w.r.t. the search variable when grad."""
        cfg = self.ctx.config
        if cfg.preserve in ("neutral", "fixed"):
            return self.emb_fixed, cfg.fixed_concept if cfg.preserve == "fixed" else "", "fixed"
        if cfg.preserve == "pgd":
            delta = self.delta[prompt].requires_grad_(grad)
            return {"emb": self.emb_targets[prompt]["emb"] + delta}, "pgd", None
        space = self.spaces[prompt]
        if cfg.preserve == "random":  # the control: any centre, uniformly, whatever the erasure damages
            i = int(torch.randint(len(space.words), (1,), generator=self.ctx.gen))
            return {"emb": space.R[i][None]}, space.words[i], f"word:{space.words[i]}"
        onehot = gumbel_softmax_hard(space.pi if grad else space.pi.detach(), cfg.tau, self.ctx.gen)
        word = space.words[int(onehot.argmax())]
        return space.embed(onehot), word, f"word:{word}"

    def _l2(self, prompt: str, start, grad_search: bool):
        c_a, label, key = self._ca(prompt, grad_search)
        z_r, t, alpha_bar = self.ctx.sample_zt(detach(c_a), start, key)
        with torch.no_grad():
            target = self.ctx.predict(self.ctx.frozen, z_r, t, detach(c_a))
        pred = self.ctx.predict(self.ctx.denoiser, z_r, t, c_a)
        return self.ctx.loss(pred, target, z_r, alpha_bar), label

    def _l2_all(self, prompt: str, start):
        """The "all" control: the mean L2 over `all_batch` centres drawn without replacement (all of them when
        all_batch >= n), one batched forward per network: z_r [m * B, C, h, w], c [m * B, L, d]."""
        space, cfg = self.spaces[prompt], self.ctx.config
        idx = torch.randperm(len(space.words), generator=self.ctx.gen)[: cfg.all_batch].tolist()
        draws = [self.ctx.sample_zt({"emb": space.R[i][None]}, start, f"word:{space.words[i]}") for i in idx]
        z_r, t, alpha_bar = torch.cat([d[0] for d in draws]), torch.cat([d[1] for d in draws]), draws[0][2]
        cond = {"emb": space.R[idx].repeat_interleave(len(start.z), 0)}
        with torch.no_grad():
            target = self.ctx.predict(self.ctx.frozen, z_r, t, cond)
        pred = self.ctx.predict(self.ctx.denoiser, z_r, t, cond)
        return self.ctx.loss(pred, target, z_r, alpha_bar), f"all ({len(idx)})"

    def _search(self, prompt: str, step: int) -> None:
        """Algorithm 1: N_iter ascent steps on pi (or PGD steps on the embedding offset); with search="probe",
        pi measured instead (_measure) every probe_every steps."""
        cfg = self.ctx.config
        if cfg.preserve == "adversarial" and cfg.search == "probe":
            if step % cfg.probe_every == 0:
                self._measure(prompt)
            return
        with no_param_grads(self.ctx.trained.values()):
            for _ in range(cfg.n_iter):
                l2, _ = self._l2(prompt, self.ctx.draw(), grad_search=True)
                if cfg.preserve == "pgd":
                    (g,) = torch.autograd.grad(l2, self.delta[prompt])
                    with torch.no_grad():
                        self.delta[prompt] = (self.delta[prompt] + cfg.pgd_step * g.sign()).clamp(-cfg.pgd_eps, cfg.pgd_eps)
                else:
                    space = self.spaces[prompt]
                    space.opt.zero_grad()
                    (-l2).backward()  # ascend L2
                    space.opt.step()

    def _measure(self, prompt: str) -> None:
        """pi = probe_beta x the z-scores of every centre's L2 under the current theta' (the centre probe: one
        fixed code and sampler step, its own generator): the search then samples the centres the erasure is
        damaging most now, rather than following the one-sample gradient's estimate of them."""
        space = self.spaces[prompt]
        l2 = self.probe.values(prompt, space).to(space.pi.device)  # [n]
        with torch.no_grad():
            space.pi.copy_(self.ctx.config.probe_beta * (l2 - l2.mean()) / l2.std().clamp_min(1e-12))

    # ------------------------------------------------------------------ one outer step
    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        cfg = self.ctx.config
        prompt = self.ctx.pick_target(list(self.emb_targets), step)
        if cfg.preserve in ("adversarial", "pgd"):
            self._search(prompt, step)
        start = self.ctx.draw()  # one start code for z (under c_e) and z_r (under c_a)
        z, t, alpha_bar = self.ctx.sample_zt(self.emb_targets[prompt], start, prompt)
        l1 = esd_loss(self.ctx, z, t, alpha_bar, self.emb_targets[prompt])
        info = {"message": prompt}
        if cfg.preserve == "none" or cfg.lam == 0:
            return l1, info | {"losses": {"l1": l1.item(), "total": l1.item()}}
        l2, label = self._l2_all(prompt, start) if cfg.preserve == "all" else self._l2(prompt, start, grad_search=False)
        total = l1 + cfg.lam * l2
        info |= {"losses": {"l1": l1.item(), "l2": l2.item(), "total": total.item()}, "concept": label}
        if prompt in self.spaces and cfg.preserve != "pgd":  # pi stays uniform for the controls: the diagnostics say so
            space = self.spaces[prompt]
            info |= {"concept": space.words[int(space.pi.argmax())] if cfg.preserve == "adversarial" else label,
                     "top5": space.top(), "sampled": None if cfg.preserve == "all" else label,
                     "extra": {"probs": space.probs()}}
        return total, info

    def snapshot_inputs(self) -> dict[str, Cond]:
        prompt = next(iter(self.emb_targets))
        out = {"ce": self.emb_targets[prompt]}
        if self.ctx.config.preserve != "none":
            if prompt in self.spaces and self.ctx.config.preserve != "pgd":
                # the current argmax concept, not a random sample (no draw from ctx.gen: snapshots must not
                # change training); the controls' pi stays uniform, so theirs is the first centre
                space = self.spaces[prompt]
                out["ca"] = {"emb": space.R[int(space.pi.argmax())][None]}
            else:
                out["ca"] = detach(self._ca(prompt, grad=False)[0])
        return out

    def search_spaces(self) -> dict[str, list[str]]:
        return {p: s.words for p, s in self.spaces.items()}

    def excluded_words(self) -> dict[str, list[str]]:
        """prompt -> the vocabulary words kept out of its search space (the target's words, inflections, near words)."""
        return self.excluded

    def centre_losses(self) -> dict[str, list[float]]:
        return {p: self.probe.losses(p, s) for p, s in self.spaces.items()}

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        return {**spaces_state(self.spaces), "delta": {p: d.detach() for p, d in self.delta.items()}}

    def load_state_dict(self, state: dict) -> None:
        load_spaces_state(self.spaces, state)
        for p in self.delta:
            self.delta[p] = state["delta"][p].to(self.delta[p].device)


METHOD: type[SearchesConcepts] = AP  # checked against the protocol (erasure.method)
