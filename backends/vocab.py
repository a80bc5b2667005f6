"""Concept vocabularies shared by erasure (AP's search space) and the sensitivity spectrum.

`english`: the 20,000 most frequent English words (letters only, >= 3 long; assets/vocab/english.txt,
from the wordfreq package), most frequent first; `imagenet`: ImageNet-1k's 1,000 class names (torchvision's
weight metadata, no download); `imagenette`: its 10-class subset; `clip-words`: end-of-word tokens of the
CLIP BPE vocabulary (alphabetic, >= 3 letters) in merge order, which approximates frequency; they are
not all words: an end-of-word token is also the last piece of longer words ("ility", "aking"), so
`english` is the list of real words; `clip-all`: every one of the 49,408 tokens that is letters only
(end-of-word marker dropped, each spelling once: the paper's CLIP vocabulary); `world`: the embedded
world's words; `world-captions`: the 1,400 noun phrases its captions are made of ("red star", "outlined
blue moon on a striped background"): a vocabulary of over 1,000 concepts the embedded model knows, where
a full delta spectrum is affordable (the proxy-guided spectrum's benchmark); `emoji`: EmojiWorld's 1,249
concept names ("cat face", "pizza", "bus": everyday things any text-to-image model knows), and
`emoji-<group>` one coarse group of them (`emoji-animal`, `emoji-food`, `emoji-vehicle`, ...).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from .paths import SHARED_ASSETS

WORD = re.compile(r"^[a-z]{3,}$")


@functools.lru_cache(maxsize=1)
def _clip_whole_words() -> tuple[str, ...]:
    from shapesworld.tokenizer import clip_merges

    words = []
    for merge in clip_merges():  # merge order ~ frequency in CLIP's training text
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


@functools.lru_cache(maxsize=1)
def _clip_all() -> tuple[str, ...]:
    from shapesworld.tokenizer import clip_merges

    # the vocabulary is 256 byte units (+ their </w> forms), one token per merge, and 2 specials;
    # single letters are words too ("a", "i"), so only the byte units' letters are kept of those
    units = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = units + ["".join(m.split()).removesuffix("</w>") for m in clip_merges()]
    return tuple(dict.fromkeys(t for t in tokens if t.isascii() and t.isalpha()))


def clip_all() -> list[str]:
    """All word tokens of the CLIP vocabulary (about 3/4 of its 49,408 entries), in token order."""
    return list(_clip_all())


@functools.lru_cache(maxsize=1)
def _english() -> tuple[str, ...]:
    return tuple((SHARED_ASSETS / "vocab" / "english.txt").read_text().split())


def english(n: int | None = None) -> list[str]:
    """The n most frequent English words (all 20,000 when n is None)."""
    if n is not None and n <= 0:
        raise ValueError(f"english size must be positive, got {n}")
    return list(_english()[:n] if n else _english())


def imagenet() -> list[str]:
    """ImageNet-1k's class names in class order (one name per class, as torchvision labels them)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def imagenette() -> list[str]:
    """Imagenette's 10 ImageNet classes (the object-erasure benchmark of ESD, UCE and AP)."""
    return (SHARED_ASSETS / "prompts" / "imagenette.txt").read_text().splitlines()


def world_words() -> list[str]:
    from shapesworld.captions import world_words as words

    return words()


def world_captions() -> list[str]:
    """Every shape with each colour, style and background named or not: 10 x 7 x 4 x 5 = 1,400 phrases, in
    the captions' own grammar (shapesworld.captions.noun_phrase), bare shapes first."""
    import itertools

    from shapesworld.captions import STYLE_WORDS, noun_phrase
    from shapesworld.world import BACKGROUNDS, COLOURS, SHAPES

    out = []
    for bg, style, colour, shape in itertools.product((None, *BACKGROUNDS), (None, *STYLE_WORDS), (None, *COLOURS),
                                                      SHAPES):
        phrase = noun_phrase(shape, colour, style)
        out.append(phrase + (f" on a {bg} background" if bg else ""))
    return out


class UnknownConceptError(ValueError):
    """A concept the model never learnt; erasing or scoring it would measure nothing."""


CONNECTIVES = ("a", "an", "on", "background")  # the captions' words besides the world's ("a red star on a plain background")


def check_known_concepts(model: str, concepts: list[str]) -> None:
    """An embedded model only learnt its world's words: erasing or scoring any other word measures
    nothing, so it is refused with the words it knows. Hub models accept any text.
    One guard for the app, the job manager and both CLIs (which offer --force to skip it)."""
    from .prompts import model_traits

    world = model_traits(model).world
    if world == "emoji":
        return _check_known_emoji(model, concepts)
    if world is None:
        return
    known = set(world_words())
    for concept in concepts:
        unknown = [w for w in concept.lower().replace(",", " ").split() if w not in known and w not in CONNECTIVES]
        if unknown:
            shown = [w if len(w) <= 30 else w[:30] + "…" for w in unknown[:5]]
            raise UnknownConceptError(f"the embedded model does not know {', '.join(map(repr, shown))}; "
                                      f"use its words: {', '.join(sorted(known))}")


def emoji_known(model: str) -> tuple[str, ...]:
    """What an EmojiWorld pipeline learnt: its concept names (concepts.txt, written beside its weights by
    emojiworld.export; every catalogue name when a folder has none), its style words and backgrounds."""
    from emojiworld.world import BACKGROUNDS, STYLE_WORDS

    from .loader import resolve_model

    listed = Path(resolve_model(model).source) / "concepts.txt"
    names = listed.read_text().splitlines() if listed.is_file() else emoji_words()
    return (*names, *STYLE_WORDS.values(), *BACKGROUNDS)


def _check_known_emoji(model: str, concepts: list[str]) -> None:
    """EmojiWorld's concepts are names of several words ("cat face"): a concept is known as a whole."""
    known = {k.lower() for k in emoji_known(model)}
    for concept in concepts:
        if " ".join(concept.lower().split()) not in known:
            shown = concept if len(concept) <= 40 else concept[:40] + "…"
            raise UnknownConceptError(f"the {model} model does not know {shown!r}; use one of its {len(known)} "
                                      "concept names, style words or backgrounds (the `emoji` vocabulary, e.g. cat "
                                      "face, slice of pizza, grayscale, striped)")


def unknown_prompt_words(model: str, prompt: str) -> list[str]:
    """Words of a prompt that no training caption of the embedded model contains (it draws them as noise);
    [] for any other model, which was trained on open text."""
    from shapesworld.captions import caption_words

    from .prompts import model_traits

    world = model_traits(model).world
    if world is None:
        return []
    if world == "emoji":  # its captions: the concept names, style words, backgrounds and the frames' words
        known = {w for name in emoji_known(model) for w in re.findall(r"[a-z']+", name.lower())}
        known |= {"a", "an", "of", "on", "picture", "emoji", "image", "background"}
    else:
        known = set(caption_words())
    words = re.findall(r"[a-z']+", prompt.lower())
    return list(dict.fromkeys(w for w in words if w not in known))


@functools.cache
def _emoji_concepts() -> tuple[tuple[str, str], ...]:
    from emojiworld.catalogue import CONCEPTS

    return tuple((c["name"], c["group"]) for c in json.loads(CONCEPTS.read_text())["concepts"])


def emoji_words(group: str | None = None) -> list[str]:
    """EmojiWorld's concept names (emojiworld/concepts.json: 1,249 single-code-point emoji, named as a person
    says them), in catalogue order; `group`: one coarse group's (animal, food, vehicle, ...)."""
    return [name for name, g in _emoji_concepts() if group in (None, g)]


def _emoji_groups() -> dict:
    from emojiworld.catalogue import GROUPS

    return {f"emoji-{g}": functools.partial(emoji_words, g) for g in GROUPS}


# name -> the vocabulary's first `size` concepts (size None: all); a new vocabulary is one entry here
SIZED = {"english": english, "clip-words": clip_words}
FIXED = {"imagenet": imagenet, "imagenette": imagenette, "world": world_words, "world-captions": world_captions,
         "emoji": emoji_words, **_emoji_groups()}
VOCABULARIES = (*SIZED, *FIXED, "world+clip-words")


def get_vocabulary(name: str, size: int | None = None) -> list[str]:
    """A named vocabulary (VOCABULARIES); `size` keeps its first N concepts; 'world+clip-words' is the
    world's words, then the first N clip-words."""
    if name in SIZED:
        return SIZED[name](size)
    if size is not None and size <= 0:
        raise ValueError(f"{name} size must be positive, got {size}")
    if name in FIXED:
        return FIXED[name]()[:size] if size else FIXED[name]()
    if name == "world+clip-words":
        return list(dict.fromkeys(world_words() + clip_words(size)))
    raise ValueError(f"unknown vocabulary {name!r}; valid: {', '.join(VOCABULARIES)}")
