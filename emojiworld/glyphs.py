"""Colour emoji glyphs from a font file, cropped and held as small RGBA masters.

Noto Color Emoji is a bitmap (CBDT) font drawn at one size, 109 px; Pillow renders it with
`embedded_color=True`. Each glyph is cropped to its drawn box and scaled so its longer side is
MASTER px; scenes are rendered from these masters (docs/design.md §6).
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Debian's fonts-noto-color-emoji (SIL OFL 1.1); CSE_EMOJI_FONT points elsewhere.
FONT_PATH = Path(os.environ.get("CSE_EMOJI_FONT", "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"))
FONT_SIZE = 109  # the one size a CBDT font holds
MASTER = 64  # longer side of a cropped master glyph, px (2x the 32-px world, so resizing only shrinks)


class FontMissing(FileNotFoundError):
    pass


class GlyphFont:
    def __init__(self, path: Path = FONT_PATH):
        if not Path(path).is_file():
            raise FontMissing(
                f"emoji font not found at {path}: install it with `apt-get install fonts-noto-color-emoji` "
                "or set CSE_EMOJI_FONT to a colour emoji font file")
        self.path = Path(path)
        self.font = ImageFont.truetype(str(path), FONT_SIZE)
        self._missing = self._draw("\U000E0FFF")  # a code point no font draws: the 'no glyph' box

    def _draw(self, ch: str) -> np.ndarray:
        im = Image.new("RGBA", (FONT_SIZE + 32, FONT_SIZE + 24), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((0, 0), ch, font=self.font, embedded_color=True)
        return np.asarray(im)

    def has(self, ch: str) -> bool:
        """True when the font draws a picture for `ch` (not nothing, not its missing-glyph box)."""
        drawn = self._draw(ch)
        return bool(drawn[..., 3].any()) and not np.array_equal(drawn, self._missing)

    def master(self, ch: str) -> Image.Image:
        """RGBA glyph cropped to its box, longer side MASTER px."""
        im = Image.fromarray(self._draw(ch))
        box = im.getbbox()
        if box is None:
            raise ValueError(f"the font draws nothing for U+{ord(ch):04X}")
        im = im.crop(box)
        s = MASTER / max(im.size)
        return im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.LANCZOS)

    def record(self) -> dict:
        """What identifies the artwork a dataset was drawn from (kept with data and models)."""
        return {"file": self.path.name, "family": " ".join(self.font.getname()),
                "bytes": self.path.stat().st_size, "sha256": _sha256(self.path), "size_px": FONT_SIZE}


@lru_cache(maxsize=4)
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def default_font() -> GlyphFont:
    return GlyphFont(FONT_PATH)


@lru_cache(maxsize=4096)
def master(cp: int) -> Image.Image:
    """The master glyph of a code point in the default font (cached: drawing costs ~1 ms)."""
    return default_font().master(chr(cp))
