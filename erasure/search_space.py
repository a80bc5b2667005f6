"""AP's search space R: the vocabulary words nearest a target, thinned to n centres (docs/design.md §3).

Every word is embedded as its own prompt (through the same template as the target) to a
[L, d] text-encoder output; the K closest to the target by L2 on the flattened embeddings
are kept; their 1-D distances are clustered with k-means and the word nearest each centre
is taken, as the reference implementation does. Embeddings are cached per word on disk and
memory-mapped (backends.word_store): distances are computed on the CPU in chunks, and only the n
chosen centres [n, L, d] reach the device.
"""

from __future__ import annotations

import torch

from backends.offload import execution_device
from backends.prompts import embed_prompts
from backends.word_store import WordStore


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
    candidates = [w for w in dict.fromkeys(words) if w.isalpha() and w.lower() not in exclude]
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
