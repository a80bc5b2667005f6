"""The concept search space that AP and AGE share (docs/design.md §3.3): R, the vocabulary words nearest
a target thinned to n centres, and the search's state over it (pi, its optimiser, the Gumbel-softmax draw,
the probe of every centre's loss).

Every word is embedded as its own prompt (through the same template as the target) to a
[L, d] text-encoder output; the K closest to the target by L2 on the flattened embeddings
are kept; their 1-D distances are clustered with k-means and the word nearest each centre
is taken, as the reference implementation does. Embeddings are cached per word on disk and
memory-mapped (backends.word_store): distances are computed on the CPU in chunks, and only the n
chosen centres [n, L, d] reach the device.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import torch

from backends.family import Cond
from backends.offload import execution_device
from backends.prompts import embed_prompts
from backends.word_store import WordStore

from ..diffusion import sample_until
from ..state import load_optimizer


def check_search_settings(cfg, vocabularies: tuple[str, ...], positive: tuple[str, ...] = ()) -> None:
    """The settings every search over concepts shares (AP, AGE): vocabulary, sizes, temperature, the
    search's lr and steps, lam; `positive` names more settings that must be > 0."""
    for name in ("vocab_size", "k_closest", "n_centres", "tau", "search_lr", *positive):
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if cfg.vocab not in vocabularies:
        raise ValueError(f"unknown vocab {cfg.vocab!r}; valid: {', '.join(vocabularies)}")
    if cfg.n_iter < 0 or cfg.lam < 0:
        raise ValueError("n_iter and lam must be >= 0")
    if cfg.n_centres > cfg.k_closest:
        raise ValueError(f"n_centres ({cfg.n_centres}) cannot exceed k_closest ({cfg.k_closest})")
    if not 0 <= cfg.exclude_near < 1:
        raise ValueError(f"exclude_near must be from 0 (off) to below 1 (a fraction of the median word distance), "
                         f"got {cfg.exclude_near}")


# Suffixes an English inflection or derivation adds (star-s, shadow-ed, outlin-ed, strip-es); `stem` drops one.
SUFFIXES = ("ing", "ies", "es", "ed", "ly", "er", "est", "s", "d")


def stem(word: str) -> str:
    """A crude English stem: enough to tell that "shadow", "shadows" and "shadowed", or "outline" and
    "outlined", are one word ("shadow", "outlin"), not a linguist's stemmer. The stem keeps >= 3 letters."""
    w = word.lower()
    for suffix in SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not (suffix == "s" and w.endswith("ss")):
            w = w[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":  # starr(ing) -> star, but fill, glass stay
        w = w[:-1]
    return w[:-1] if len(w) > 3 and w.endswith("e") else w


def excluded_words(words: list[str], targets: list[str], inflections: bool) -> set[str]:
    """The vocabulary words a search space for `targets` must not hold: each target word, and with
    `inflections` every word sharing a target word's stem ("shadow" when erasing "shadowed"): a search that
    preserves them preserves the target under another name (docs/design.md §3)."""
    own = {w.lower() for t in targets for w in t.split()}
    if not inflections:
        return own
    stems = {stem(w) for w in own}
    return own | {w.lower() for w in words if stem(w) in stems}


def usable(concept: str) -> bool:
    """A search-space concept: one alphabetic word, or a name of several ("cat face", "upside-down face":
    EmojiWorld's concepts) whose parts are alphabetic; numbers and symbols are not concepts to search."""
    return concept.isalpha() or (" " in concept.strip() and all(p.isalpha() for p in re.split(r"[ -]+", concept.strip())))


def kmeans_1d(values: torch.Tensor, n: int, iters: int = 100) -> torch.Tensor:
    """Lloyd's k-means on scalars, centres initialised at quantiles (deterministic); sorted centres."""
    values = values.float().flatten()
    if n >= len(values):
        return values.sort().values
    centres = torch.quantile(values, torch.linspace(0, 1, n))
    for _ in range(iters):
        assign = (values[:, None] - centres[None, :]).abs().argmin(1)
        new = torch.stack([values[assign == j].mean() if (assign == j).any() else centres[j] for j in range(n)])
        if torch.allclose(new, centres):
            break
        centres = new
    return centres.sort().values


def build_search_space(pipe, words: list[str], target_prompt: str, template: str, k_closest: int, n_centres: int,
                       exclude: set[str], near: float = 0.0) -> tuple[list[str], torch.Tensor, torch.Tensor, list[str]]:
    """(chosen words, R [n, L, d], their L2 distances to the target, the words left out as too near).
    `near` > 0 also leaves out every word closer to the target than `near` x the median word distance: a
    near-synonym embeds far closer to the target than a typical word does."""
    candidates = [w for w in dict.fromkeys(words) if usable(w) and w.lower() not in exclude]
    if len(candidates) < 2:
        raise ValueError("the search vocabulary has fewer than 2 usable words; choose a larger vocabulary")
    table = WordStore(pipe, template).table(candidates)  # memory-mapped [V, L, d] float16
    target = embed_prompts(pipe, [target_prompt]).float()[0]  # [L, d]
    dist = table.distances(target)  # [V] float32, CPU
    too_near = dist < near * dist.median() if near > 0 else torch.zeros_like(dist, dtype=torch.bool)
    if int((~too_near).sum()) < 2:
        raise ValueError(f"exclude_near={near} leaves fewer than 2 words in the search space; lower it")
    order = torch.tensor([i for i in dist.argsort().tolist() if not too_near[i]][:k_closest])
    centres = kmeans_1d(dist[order], n_centres)
    chosen: list[int] = []
    for c in centres:  # the unused word nearest each centre
        gaps = (dist[order] - c).abs()
        for j in gaps.argsort().tolist():
            if int(order[j]) not in chosen:
                chosen.append(int(order[j]))
                break
    R = table.rows(chosen).to(execution_device(pipe), torch.float32)  # [n, L, d]: the only rows on the device
    dropped = [candidates[i] for i in too_near.nonzero().flatten().tolist()]
    return [candidates[i] for i in chosen], R, dist[torch.tensor(chosen)], dropped


# ---------------------------------------------------------------- the search's state (AP, AGE)
def gumbel_softmax_hard(logits: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """One-hot sample in the forward pass, softmax gradient in the backward pass; [n] -> [n]."""
    u = torch.rand(logits.shape, generator=gen).to(logits.device)
    soft = ((logits - torch.log(-torch.log(u + 1e-10) + 1e-10)) / tau).softmax(-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


@contextmanager
def no_param_grads(params):
    """The inner search only needs gradients w.r.t. pi: skip theta' gradients (cheaper)."""
    params = list(params)
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Space:
    """One target's search state: words, R [n, L, d], pi [n] and its optimiser."""

    def __init__(self, words: list[str], R: torch.Tensor, lr: float):
        self.words, self.R = words, R
        self.pi = torch.full((len(words),), 1.0 / len(words), device=R.device, requires_grad=True)
        self.opt = torch.optim.Adam([self.pi], lr=lr)

    def embed(self, onehot: torch.Tensor) -> Cond:
        return {"emb": (onehot @ self.R.flatten(1)).view(1, *self.R.shape[1:])}  # [1, L, d]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        p = self.pi.detach().softmax(-1)
        vals, idx = p.topk(min(k, len(self.words)))
        return [(self.words[i], round(v, 4)) for v, i in zip(vals.tolist(), idx.tolist())]

    def probs(self) -> list[float]:
        """softmax(pi) over every centre, in `words` order (the trajectory heatmap's row per step)."""
        return [round(v, 5) for v in self.pi.detach().softmax(-1).tolist()]


PROBE_SEED = 7919  # offset of the centre-loss probe's own generator from the run seed: it never draws from ctx.gen
PROBE_CHUNK = 16  # centres per batched sampler call of the probe


class CentreProbe:
    """The preservation loss of every centre under the current theta' (docs/design.md §3.3, "trajectory"):
    ||eps_theta'(z_i, c_i, t) - eps_theta(z_i, c_i, t)||^2 for each row c_i of R, on one fixed start code
    and sampler step. z_i is drawn once, by the frozen model under c_i, so values at two snapshots differ
    only by theta'. Its own generator: a run's training draws are the same with or without it."""

    def __init__(self, ctx):
        self.ctx, self.z = ctx, {}  # prompt -> z_i [n, C, h, w], drawn on first use
        gen = torch.Generator().manual_seed(ctx.config.seed + PROBE_SEED)
        self.z_T = ctx.family.noise(ctx.pipe, 1, gen, ctx.size)  # [1, C, h, w]
        self.k = ctx.config.ddim_steps // 2

    def losses(self, prompt: str, space: Space) -> list[float]:
        """Every centre's loss, rounded for the events (6 decimals)."""
        return [round(v, 6) for v in self.values(prompt, space).tolist()]

    @torch.no_grad()
    def values(self, prompt: str, space: Space) -> torch.Tensor:
        """Every centre's loss [n] (float32, CPU)."""
        ctx, sched = self.ctx, self.ctx.scheduler
        t = sched.timesteps[self.k]
        alpha_bar = sched.alphas_cumprod[t].to(ctx.device, self.z_T.dtype)
        out = []
        for i in range(0, len(space.words), PROBE_CHUNK):
            cond = {"emb": space.R[i : i + PROBE_CHUNK]}  # [c, L, d]
            z = self._z(prompt, i, cond, space.words[i : i + PROBE_CHUNK])
            tt = t.expand(len(z)).to(ctx.device)
            pred, target = ctx.predict(ctx.denoiser, z, tt, cond), ctx.predict(ctx.frozen, z, tt, cond)
            out += [ctx.loss(pred[j : j + 1], target[j : j + 1], z[j : j + 1], alpha_bar).float().cpu()
                    for j in range(len(z))]
        return torch.stack(out)

    def _z(self, prompt: str, i: int, cond: Cond, words: list[str]) -> torch.Tensor:
        key = (prompt, i)
        if key not in self.z:
            cfg, bank = self.ctx.config, self.ctx.bank
            if bank is not None and cfg.centre_codes() < cfg.bank_codes:
                # centres banked lazily (SD's 100): read z_i at step k of their code 0, which the search has
                # mostly sampled already, instead of 100 more trajectories; fixed across snapshots all the same
                labels = [f"word:{w}" for w in words]
                bank.materialise(labels)  # the centres not drawn yet: one batched trajectory, not one each
                self.z[key] = torch.cat([bank.get(label, (0,), self.k) for label in labels])
            else:
                z_T = self.z_T.expand(len(cond["emb"]), *self.z_T.shape[1:])
                self.z[key] = sample_until(self.ctx.family, self.ctx.frozen, self.ctx.scheduler, z_T, cond,
                                           self.ctx.emb_null, self.ctx.config.start_guidance, self.k)
        return self.z[key]


def build_spaces(pipe, cfg, prompts: list[str]) -> tuple[dict[str, Space], dict[str, list[str]]]:
    """Each target prompt's search space from cfg's vocabulary and sizes, and the vocabulary words kept out of
    it (the targets' words, their inflections, words too near); shared by AGE."""
    from backends.vocab import get_vocabulary

    vocab = get_vocabulary(cfg.vocab, cfg.vocab_size)
    exclude = excluded_words(vocab, cfg.targets, cfg.exclude_inflections)
    spaces, excluded = {}, {}
    for prompt in prompts:
        words, R, _, near = build_search_space(pipe, vocab, prompt, cfg.template, cfg.k_closest, cfg.n_centres,
                                               exclude, cfg.exclude_near)
        spaces[prompt] = Space(words, R, cfg.search_lr)
        excluded[prompt] = sorted(w for w in exclude if w in vocab) + near
    return spaces, excluded


def centre_conds(spaces: dict[str, Space]) -> dict[str, Cond]:
    """Every centre's one-row conditioning, labelled "word:<word>" (what a hard Gumbel sample of it is), for
    a latent bank; shared by AGE."""
    return {f"word:{w}": {"emb": s.R[i][None]} for s in spaces.values() for i, w in enumerate(s.words)}


def spaces_state(spaces: dict[str, Space]) -> dict:
    """Every target's pi and its optimiser, for exact resume (R is rebuilt from the vocabulary); the
    checkpoint layout AP has always written ("pi", "pi_opt"), shared by AGE."""
    return {"pi": {p: s.pi.detach() for p, s in spaces.items()},
            "pi_opt": {p: s.opt.state_dict() for p, s in spaces.items()}}


def load_spaces_state(spaces: dict[str, Space], state: dict) -> None:
    for p, s in spaces.items():
        with torch.no_grad():
            s.pi.copy_(state["pi"][p])
        load_optimizer(s.opt, state["pi_opt"][p])
