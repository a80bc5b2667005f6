"""Which concepts a smaller EmojiWorld model or protocol uses: a fixed, group-balanced choice."""

from __future__ import annotations

import numpy as np

from .world import concepts


def chosen(n: int = 0, seed: int = 0) -> tuple[str, ...]:
    """`n` concept names spread over the groups in proportion to their size (every concept if n <= 0
    or n >= the world's size), in catalogue order. Deterministic for (n, seed)."""
    all_ = concepts()
    if n <= 0 or n >= len(all_):
        return tuple(c.name for c in all_)
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(all_):
        groups.setdefault(c.group, []).append(i)
    quota = {g: max(1, round(n * len(ix) / len(all_))) for g, ix in groups.items()}
    while sum(quota.values()) > n:  # rounding can overshoot by a few: trim the largest groups
        quota[max(quota, key=quota.get)] -= 1
    picked = sorted(i for g, ix in groups.items() for i in rng.choice(ix, size=min(quota[g], len(ix)), replace=False))
    return tuple(all_[i].name for i in picked)


DEMO = 100  # the concepts demos and protocols use: chosen(DEMO), inside every trained model's set


def model_set(n: int) -> tuple[str, ...]:
    """The concepts a model of about `n` concepts learns: chosen(n) and the DEMO concepts (chosen(DEMO) is
    not a subset of chosen(n): each count draws its own spread), in catalogue order."""
    keep = set(chosen(n)) | set(chosen(DEMO))
    return tuple(c.name for c in concepts() if c.name in keep)
