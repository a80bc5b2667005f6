"""Captions for EmojiWorld scenes: "a cat face", "a sketched cat face on a striped background".

The concept template is "{a} {concept}" (backends.prompts.fill: the concept with its article, "an otter"),
the form training captions use; they name the style and background at random (never a wrong one).
"""

from __future__ import annotations

import numpy as np

from .world import STYLE_WORDS, Scene

FRAMES = ("{np}", "a picture of {np}", "an emoji of {np}", "an image of {np}")
CONCEPT_TEMPLATE = "{a} {concept}"


def article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def prompt(concept: str, style: str | None = None, background: str | None = None, frame: str = "{np}") -> str:
    """prompt("cat face") == "a cat face"; prompt("cat face", "sketch", "striped") ==
    "a sketched cat face on a striped background"."""
    phrase = f"{STYLE_WORDS[style]} {concept}" if style else concept
    text = frame.format(np=f"{article(phrase)} {phrase}")
    return text + (f" on a {background} background" if background else "")


def sample_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A random training caption true of the scene. The default style is named less often than the
    transforms, which the caption must name for the model to learn them as words."""
    style_p = 0.2 if scene.style == "colour" else 0.75
    bg_p = 0.3 if scene.background == "plain" else 0.6
    frame = FRAMES[0] if rng.random() < 0.7 else FRAMES[int(rng.integers(1, len(FRAMES)))]
    return prompt(scene.concept, scene.style if rng.random() < style_p else None,
                  scene.background if rng.random() < bg_p else None, frame)
