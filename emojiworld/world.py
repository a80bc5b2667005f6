"""EmojiWorld: real, named concepts (emoji artwork) drawn at 32 px with exact labels (docs/design.md §6).

Each image is one emoji glyph on one of ShapesWorld's four backgrounds, in one of five styles made as
image transforms of the glyph (so style erasure has a real analogue), with position, scale and small
rotation as augmentation. Rendering is deterministic: the same `Scene` always gives the same pixels,
for the font recorded in `concepts.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from .catalogue import CONCEPTS
from .glyphs import master

IMAGE_SIZE = 32
BACKGROUNDS = ("plain", "striped", "checkered", "gradient")
# The glyph as drawn, and four transforms of it; the word a caption uses for each.
STYLES = ("colour", "grayscale", "sketch", "pixelated", "inverted")
STYLE_WORDS = {"colour": "colour", "grayscale": "grayscale", "sketch": "sketched", "pixelated": "pixelated",
               "inverted": "inverted"}


@dataclass(frozen=True)
class Concept:
    name: str  # what a person calls it ("cat face"): the word prompts use
    cp: int  # its code point
    group: str  # coarse category (animal, food, vehicle, ...)
    subgroup: str  # Unicode's finer category


@lru_cache(maxsize=1)
def concepts() -> tuple[Concept, ...]:
    """Every concept of the world, in catalogue order."""
    data = json.loads(CONCEPTS.read_text())
    return tuple(Concept(c["name"], int(c["cp"][2:], 16), c["group"], c["subgroup"]) for c in data["concepts"])


@lru_cache(maxsize=1)
def by_name() -> dict[str, Concept]:
    return {c.name: c for c in concepts()}


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one image; the first three fields are the labels."""

    concept: str
    background: str
    style: str
    scale: float = 0.82  # the glyph's longer side as a share of the image (0.72-0.92)
    dx: float = 0.0  # centre offset in pixels (|dx|, |dy| <= 2)
    dy: float = 0.0
    rotation: float = 0.0  # degrees (|rot| <= 10)
    bg_level: int = 150  # base grey level of the background

    def labels(self) -> dict[str, str]:
        return {"concept": self.concept, "background": self.background, "style": self.style}

    def to_dict(self) -> dict:
        return asdict(self)


def sample_scene(rng: np.random.Generator, names: tuple[str, ...], pose: float = 1.0,
                 style_p: tuple[float, ...] | None = None, background_p: tuple[float, ...] | None = None,
                 **fixed: str) -> Scene:
    """A random scene of one of `names`; keyword arguments pin concept, background or style. `pose`
    scales the jitter ranges (1: scale 0.72-0.92, offsets +-2 px, rotation +-10 degrees; 0: none);
    `style_p` / `background_p`: probabilities over STYLES / BACKGROUNDS (default: uniform)."""
    def one_of(options: tuple[str, ...], p) -> str:  # (p None: the draw the cached datasets were made with)
        return options[int(rng.integers(len(options)) if p is None else rng.choice(len(options), p=p))]

    def jitter(lo: float, hi: float) -> float:
        v = float(rng.uniform(lo, hi))
        return v if pose == 1 else (lo + hi) / 2 + pose * (v - (lo + hi) / 2)

    pick = {"concept": fixed.get("concept") or names[int(rng.integers(len(names)))],
            "background": fixed.get("background") or one_of(BACKGROUNDS, background_p),
            "style": fixed.get("style") or one_of(STYLES, style_p)}
    return Scene(**pick, scale=jitter(0.72, 0.92), dx=jitter(-2, 2), dy=jitter(-2, 2), rotation=jitter(-10, 10),
                 bg_level=int(rng.integers(125, 176)))


def background(kind: str, level: float, n: int = IMAGE_SIZE) -> np.ndarray:
    """[n, n, 3] float greys. Copied from shapesworld.world._background (same four patterns)."""
    yy, xx = np.mgrid[0:n, 0:n]
    if kind == "plain":
        g = np.full((n, n), float(level))
    elif kind == "striped":  # horizontal stripes, 4 px each
        g = np.where((yy // 4) % 2 == 0, level + 35, level - 35)
    elif kind == "checkered":  # 8 px squares
        g = np.where(((yy // 8) + (xx // 8)) % 2 == 0, level + 35, level - 35)
    elif kind == "gradient":  # light at the top, dark at the bottom
        g = level + 70 - 140 * yy / (n - 1)
    else:
        raise ValueError(f"unknown background {kind!r}; valid: {BACKGROUNDS}")
    return np.repeat(g[..., None], 3, axis=2).astype(np.float32)


def _styled(glyph: Image.Image, style: str) -> Image.Image:
    """A style as a transform of the RGBA glyph (before it is shrunk, except pixelated)."""
    rgb, alpha = glyph.convert("RGB"), glyph.getchannel("A")
    if style in ("colour", "pixelated"):
        return glyph
    if style == "grayscale":
        out = ImageOps.grayscale(rgb).convert("RGB")
    elif style == "inverted":
        out = ImageOps.invert(rgb)
    elif style == "sketch":  # dark pencil lines where colour or the silhouette changes, on white paper
        lum = ImageOps.grayscale(rgb).filter(ImageFilter.FIND_EDGES)
        edge = np.maximum(np.asarray(lum, dtype=np.float32) * 2.5, np.asarray(alpha.filter(ImageFilter.FIND_EDGES)))
        ink = np.clip(edge, 0, 255)[..., None] / 255
        out = Image.fromarray((255 - 215 * ink).astype(np.uint8).repeat(3, axis=2))
    else:
        raise ValueError(f"unknown style {style!r}; valid: {STYLES}")
    out.putalpha(alpha)
    return out


def render(scene: Scene) -> Image.Image:
    """One 32x32 RGB image of a scene."""
    concept = by_name().get(scene.concept)
    if concept is None or scene.style not in STYLES:
        raise ValueError(f"invalid scene {scene}")
    glyph = _styled(master(concept.cp), scene.style)
    side = scene.scale * IMAGE_SIZE
    s = side / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.size[0] * s)), max(1, round(glyph.size[1] * s))), Image.LANCZOS)
    glyph = glyph.rotate(scene.rotation, resample=Image.BICUBIC, expand=True)
    if scene.style == "pixelated":  # 3x3-px blocks (4 px left too few to tell concepts apart)
        w, h = glyph.size
        glyph = glyph.resize((max(1, w // 3), max(1, h // 3)), Image.BOX).resize((w, h), Image.NEAREST)
    canvas = Image.fromarray(np.clip(background(scene.background, scene.bg_level) + 0.5, 0, 255).astype(np.uint8))
    x = round(IMAGE_SIZE / 2 + scene.dx - glyph.size[0] / 2)
    y = round(IMAGE_SIZE / 2 + scene.dy - glyph.size[1] / 2)
    canvas.paste(glyph, (x, y), glyph)
    return canvas


def render_array(scenes: list[Scene]) -> np.ndarray:
    """Stack of renders as uint8 [N, 32, 32, 3]."""
    return np.stack([np.asarray(render(s)) for s in scenes])
