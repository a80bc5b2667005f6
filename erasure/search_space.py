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
                       exclude: set[str]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(chosen words, R [n, L, d], their L2 distances to the target)."""
    candidates = [w for w in dict.fromkeys(words) if w.isalpha() and w.lower() not in exclude]
    if len(candidates) < 2:
        raise ValueError("the search vocabulary has fewer than 2 usable words; choose a larger vocabulary")
    table = WordStore(pipe, template).table(candidates)  # memory-mapped [V, L, d] float16
    target = embed_prompts(pipe, [target_prompt]).float()[0]  # [L, d]
    dist = table.distances(target)  # [V] float32, CPU
    order = dist.argsort()[: min(k_closest, len(candidates))]
    centres = kmeans_1d(dist[order], n_centres)
    chosen: list[int] = []
    for c in centres:  # the unused word nearest each centre
        gaps = (dist[order] - c).abs()
        for j in gaps.argsort().tolist():
            if int(order[j]) not in chosen:
                chosen.append(int(order[j]))
                break
    R = table.rows(chosen).to(execution_device(pipe), torch.float32)  # [n, L, d]: the only rows on the device
    return [candidates[i] for i in chosen], R, dist[torch.tensor(chosen)]
