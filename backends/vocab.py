"""Concept vocabularies shared by erasure (AP's search space) and the sensitivity spectrum.

`clip-words`: whole-word tokens of the CLIP BPE vocabulary (alphabetic, >= 3 letters) in merge
order, which approximates frequency; `world`: the embedded world's words.
"""

from __future__ import annotations

import functools
import re

WORD = re.compile(r"^[a-z]{3,}$")


@functools.lru_cache(maxsize=1)
def _clip_whole_words() -> tuple[str, ...]:
    from shapesworld.tokenizer import _merges

    words = []
    for merge in _merges():  # merge order ~ frequency in CLIP's training text
        token = "".join(merge.split())
        if token.endswith("</w>") and WORD.match(token[:-4]):
            words.append(token[:-4])
    return tuple(dict.fromkeys(words))


def clip_words(n: int | None = None) -> list[str]:
    """The first n whole-word CLIP tokens (all of them when n is None)."""
    words = _clip_whole_words()
    if n is not None and n <= 0:
        raise ValueError(f"clip-words size must be positive, got {n}")
    return list(words[:n] if n else words)


def world_words() -> list[str]:
    from shapesworld.captions import world_words as words

    return words()


def get_vocabulary(name: str, size: int | None = None) -> list[str]:
    """A named vocabulary: 'clip-words', 'world' or 'world+clip-words' (world words first)."""
    if name == "clip-words":
        return clip_words(size)
    if name == "world":
        return world_words()
    if name == "world+clip-words":
        return list(dict.fromkeys(world_words() + clip_words(size)))
    raise ValueError(f"unknown vocabulary {name!r}; valid: clip-words, world, world+clip-words")
