"""Captions for ShapesWorld scenes: one canonical form plus paraphrases.

The canonical prompt is "a {colour} {shape}" (optionally "a {style} {colour} {shape} on a
{background} background"); training captions omit attributes at random so the model also
knows bare concepts like "a star", which is the form erasure targets take (docs/design.md §2: the
template setting "a {concept}").
"""

from __future__ import annotations

import numpy as np

from .world import Scene

STYLE_WORDS = {"filled": "filled", "outline": "outlined", "shadow": "shadowed"}
# Paraphrases keep the attribute words but change the frame (robustness tests use them).
FRAMES = ("{np}", "a picture of {np}", "an image of {np}", "a drawing of {np}", "{np} shape")
CONCEPT_TEMPLATE = "a {concept}"  # the world's prompt template for concepts and targets


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(shape: str, colour: str | None = None, style: str | None = None) -> str:
    words = [w for w in (STYLE_WORDS.get(style) if style else None, colour, shape) if w]
    return " ".join(words)


def prompt(shape: str, colour: str | None = None, background: str | None = None,
           style: str | None = None, frame: str = "{np}") -> str:
    """Deterministic caption, e.g. prompt("star", "red") == "a red star"."""
    np_ = noun_phrase(shape, colour, style)
    text = frame.format(np=f"{article(np_)} {np_}")
    if background:
        text += f" on a {background} background"
    return text


def sample_mentions(scene: Scene, rng: np.random.Generator, bg_p: float | None = None) -> dict[str, str | None]:
    """Which attributes a random caption names (never a wrong one); bg_p overrides how often
    the background is named."""
    style_p = 0.25 if scene.style == "filled" else 0.7
    if bg_p is None:
        bg_p = 0.3 if scene.background == "plain" else 0.6
    return {
        "shape": scene.shape,
        "colour": scene.colour if rng.random() < 0.8 else None,
        "style": scene.style if rng.random() < style_p else None,
        "background": scene.background if rng.random() < bg_p else None,
    }


def sample_caption(scene: Scene, rng: np.random.Generator, bg_p: float | None = None) -> str:
    """A random training caption that is true of the scene."""
    return caption_from(sample_mentions(scene, rng, bg_p), rng)


def caption_from(mentions: dict[str, str | None], rng: np.random.Generator) -> str:
    frame = FRAMES[0] if rng.random() < 0.6 else FRAMES[int(rng.integers(1, len(FRAMES)))]
    text = prompt(frame=frame, **mentions)
    if rng.random() < 0.15:  # accept "a orange star" too: users do not always fix articles
        text = text.replace("an ", "a ", 1)
    return text


def is_true_of(mentions: dict[str, str | None], scene: Scene) -> bool:
    return all(v is None or getattr(scene, k) == v for k, v in mentions.items())


def world_words() -> list[str]:
    """The world's vocabulary (for the `world` concept vocabulary)."""
    from .world import ATTRIBUTES

    words = [w for values in ATTRIBUTES.values() for w in values]
    return list(dict.fromkeys(words + list(STYLE_WORDS.values())))


def caption_words() -> list[str]:
    """Every word a training caption can contain: the world's words, the frames' words, the articles and
    "on ... background" (what a prompt to the embedded model may use)."""
    frames = [w for f in FRAMES for w in f.replace("{np}", " ").split()]
    return list(dict.fromkeys(world_words() + frames + ["a", "an", "on", "background"]))


def concept_prompts(concept: str, avoid: list[str] = (), n: int | None = None) -> list[str] | None:
    """Captions the world was trained on that show one world word: a shape alone ("a star"); a colour, style
    or background on every shape (the first n) that no word of `avoid` names ("a red circle", "a shadowed
    square", "a circle on a striped background"). None for anything else. A bare attribute ("a red", "a shadowed")
    is a prompt the model never saw, so what it draws for one says little about the word."""
    from .world import BACKGROUNDS, COLOURS, SHAPES, STYLES

    word = concept.strip()
    if word in SHAPES:
        return [prompt(word)]
    avoided = {w for a in avoid for w in a.split()}
    shapes = [s for s in SHAPES if s not in avoided][:n]
    style = next((s for s, w in STYLE_WORDS.items() if word in (s, w)), None)
    if style in STYLES:
        return [prompt(s, style=style) for s in shapes]
    if word in COLOURS:
        return [prompt(s, word) for s in shapes]
    if word in BACKGROUNDS:
        return [prompt(s, background=word) for s in shapes]
    return None

