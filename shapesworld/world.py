"""ShapesWorld: a procedural image world with exact labels (docs/design.md §6).

Every image is a single large, centred object drawn in one of four attribute axes:
shape x colour x background x style. Objects stay big (radius 10-13 px of 32) because
legibility at low resolution is what lets a tiny diffusion model learn the world.
Rendering is deterministic: the same `Scene` always gives the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 32
_SS = 4  # supersampling factor: shapes are drawn at 128 px and box-filtered down to 32 px

SHAPES = (
    "circle", "square", "triangle", "cross", "diamond",
    "star", "heart", "moon", "arrow", "hourglass",
)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 215, 40),
    "purple": (150, 60, 195),
    "orange": (245, 135, 25),
}
BACKGROUNDS = ("plain", "striped", "checkered", "gradient")
STYLES = ("filled", "outline", "shadow")
ATTRIBUTES = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "background": BACKGROUNDS,
    "style": STYLES,
}


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one image; the first four fields are the labels."""

    shape: str
    colour: str
    background: str
    style: str
    radius: float = 11.5  # object radius in output pixels (10-13)
    dx: float = 0.0  # centre offset in pixels (|dx|, |dy| <= 2)
    dy: float = 0.0
    rotation: float = 0.0  # degrees, small (|rot| <= 10) so shapes stay distinct
    tint: tuple[int, int, int] = (0, 0, 0)  # per-channel colour jitter
    bg_level: int = 150  # base grey level of the background

    def labels(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ATTRIBUTES}

    def to_dict(self) -> dict:
        return asdict(self)


def sample_scene(rng: np.random.Generator, **fixed: str) -> Scene:
    """Draw a random scene; keyword arguments pin attributes (e.g. shape="star")."""
    for key, value in fixed.items():
        if key not in ATTRIBUTES or value not in ATTRIBUTES[key]:
            raise ValueError(f"unknown {key}={value!r}; valid: {ATTRIBUTES.get(key, list(ATTRIBUTES))}")
    pick = {k: fixed.get(k) or str(rng.choice(v)) for k, v in ATTRIBUTES.items()}
    return Scene(
        **pick,
        radius=float(rng.uniform(10.0, 13.0)),
        dx=float(rng.uniform(-2, 2)),
        dy=float(rng.uniform(-2, 2)),
        rotation=float(rng.uniform(-10, 10)),
        tint=tuple(int(t) for t in rng.integers(-12, 13, size=3)),
        bg_level=int(rng.integers(125, 176)),
    )


# ---------------------------------------------------------------- shape outlines
def _star(n: int, inner: float) -> list[tuple[float, float]]:
    pts = []
    for i in range(2 * n):
        r = 1.0 if i % 2 == 0 else inner
        a = -math.pi / 2 + i * math.pi / n
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart() -> list[tuple[float, float]]:
    pts = []
    for i in range(64):
        t = 2 * math.pi * i / 64
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -y / 17.0 + 0.1))
    return pts


# Unit-radius polygons (y grows downwards, as in image coordinates).
_POLYGONS = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3),
              (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "diamond": [(0.0, -1.05), (0.68, 0.0), (0.0, 1.05), (-0.68, 0.0)],
    "star": _star(5, 0.42),
    "heart": _heart(),
    "arrow": [(-1, -0.28), (0.1, -0.28), (0.1, -0.75), (1, 0), (0.1, 0.75), (0.1, 0.28), (-1, 0.28)],
    "hourglass": [(-0.8, -1), (0.8, -1), (0.12, 0), (0.8, 1), (-0.8, 1), (-0.12, 0)],
}


def _shape_mask(scene: Scene) -> Image.Image:
    """Binary 'L' mask of the object at supersampled resolution."""
    size = IMAGE_SIZE * _SS
    cx = (IMAGE_SIZE / 2 + scene.dx) * _SS
    cy = (IMAGE_SIZE / 2 + scene.dy) * _SS
    r = scene.radius * _SS
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if scene.shape in ("circle", "moon"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if scene.shape == "moon":  # crescent: a disc with an offset disc cut away
            ox = cx + 0.55 * r
            draw.ellipse([ox - 0.85 * r, cy - 0.95 * r, ox + 0.85 * r, cy + 0.85 * r], fill=0)
        return mask.rotate(scene.rotation, resample=Image.BILINEAR, center=(cx, cy))
    a = math.radians(scene.rotation)
    ca, sa = math.cos(a), math.sin(a)
    pts = [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in _POLYGONS[scene.shape]]
    draw.polygon(pts, fill=255)
    return mask


# ---------------------------------------------------------------- backgrounds
def _background(scene: Scene) -> np.ndarray:
    """HxWx3 float array at output resolution; low-contrast greys so the object stays legible."""
    n = IMAGE_SIZE
    lvl = float(scene.bg_level)
    yy, xx = np.mgrid[0:n, 0:n]
    if scene.background == "plain":
        g = np.full((n, n), lvl)
    elif scene.background == "striped":  # horizontal stripes, 4 px each
        g = np.where((yy // 4) % 2 == 0, lvl + 35, lvl - 35)
    elif scene.background == "checkered":  # 8 px squares
        g = np.where(((yy // 8) + (xx // 8)) % 2 == 0, lvl + 35, lvl - 35)
    elif scene.background == "gradient":  # light at the top, dark at the bottom
        g = lvl + 70 - 140 * yy / (n - 1)
    else:
        raise ValueError(f"unknown background {scene.background!r}; valid: {BACKGROUNDS}")
    return np.repeat(g[..., None], 3, axis=2)


def render(scene: Scene) -> Image.Image:
    """Render one 32x32 RGB image for a scene."""
    if scene.shape not in SHAPES or scene.colour not in COLOURS or scene.style not in STYLES:
        raise ValueError(f"invalid scene {scene}")
    mask_hr = _shape_mask(scene)
    if scene.style == "outline":  # keep only a 2-px band inside the silhouette
        inner = mask_hr.filter(ImageFilter.MinFilter(4 * _SS + 1))
        mask_hr = Image.fromarray(np.asarray(mask_hr) - np.asarray(inner))
    small = lambda m: np.asarray(m.resize((IMAGE_SIZE,) * 2, Image.BOX), dtype=np.float32)[..., None] / 255
    img = _background(scene)
    if scene.style == "shadow":  # dark silhouette offset down-right, under the object
        shadow = small(mask_hr.transform(mask_hr.size, Image.AFFINE, (1, 0, -3 * _SS, 0, 1, -3 * _SS)))
        img = img * (1 - 0.85 * shadow) + 25 * 0.85 * shadow
    colour = np.clip(np.array(COLOURS[scene.colour]) + np.array(scene.tint), 0, 255)
    m = small(mask_hr)
    img = img * (1 - m) + colour * m
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))


def render_array(scenes: list[Scene]) -> np.ndarray:
    """Stack of renders as uint8 [N, 32, 32, 3]."""
    return np.stack([np.asarray(render(s)) for s in scenes])
