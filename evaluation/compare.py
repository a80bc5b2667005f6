"""Before/after grids: the base model and erased runs on the same prompts and seeds.

    result = compare(base_pipe, {"AP star": "runs/star"}, ["a red star", "a red heart"], [0, 1, 2, 3],
                     erased=["star"])
    sheet, layout = side_by_side(result)  # one image: a row per prompt, base then each run, same seeds
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from backends import SamplerSettings, generate
from backends.safety import NudityDetector, screen

MAX_PROMPTS, MAX_SEEDS, MAX_MODELS = 12, 8, 4


@dataclass
class Comparison:
    prompts: list[str]
    seeds: list[int]
    erased_rows: list[bool]  # per prompt: names an erased concept
    images: dict[str, np.ndarray] = field(default_factory=dict)  # label -> [P, S, H, W, 3] uint8 (as shown)
    flagged: dict[str, np.ndarray] = field(default_factory=dict)  # label -> [P, S] bool (NudeNet)


def check_compare_inputs(prompts: list[str], seeds: list[int], runs: dict) -> None:
    if not prompts or any(not p.strip() for p in prompts):
        raise ValueError("give at least one prompt, one per line, and no empty lines")
    if len(prompts) > MAX_PROMPTS or not 1 <= len(seeds) <= MAX_SEEDS:
        raise ValueError(f"use 1..{MAX_PROMPTS} prompts and 1..{MAX_SEEDS} seeds")
    if len(runs) > MAX_MODELS:
        raise ValueError(f"compare at most {MAX_MODELS} erased runs at once")


CHUNK_IMAGES = 16  # images per generation call: the unit of progress and of cancellation


def compare(base, runs: dict[str, str], prompts: list[str], seeds: list[int], erased: Sequence[str] = (),
            settings: SamplerSettings | None = None, detector: NudityDetector | None = None,
            reveal: bool = False, progress=None, cancel=None) -> Comparison:
    """Samples of `base` and of each run (its result applied to a copy of base's UNet), same z_T.

    Work goes in chunks of whole prompt rows (about CHUNK_IMAGES images each): `progress(done, total)`
    is called after each, and `cancel` (erasure.CancelToken) stops the sampler at its next step with
    Cancelled, so one large comparison on a shared machine can be stopped and says how far it got."""
    from erasure import Cancelled, erased_copy

    check_compare_inputs(prompts, seeds, runs)
    settings = settings or SamplerSettings()
    settings.check()  # a bad setting fails before any erased copy is made
    words = [e.lower() for e in erased]
    out = Comparison(prompts, seeds, [any(w in p.lower().split() for w in words) for p in prompts])
    pipes = {"base": base}
    for label, run in runs.items():
        pipes[label] = erased_copy(base, run)
    rows = max(1, CHUNK_IMAGES // len(seeds))  # prompts per call
    total, done = len(pipes) * len(prompts) * len(seeds), 0
    for label, pipe in pipes.items():
        parts = []
        for i in range(0, len(prompts), rows):
            chunk = prompts[i : i + rows]
            try:
                parts.append(generate(pipe, [p for p in chunk for _ in seeds], seeds * len(chunk), settings,
                                      cancel=cancel))
            except Cancelled:
                raise Cancelled(f"compare cancelled after {done} of {total} images") from None
            done += len(chunk) * len(seeds)
            if progress is not None:
                progress(done, total)
        shown, flags = screen(np.concatenate(parts), detector, reveal)  # [P*S, H, W, 3]
        out.images[label] = shown.reshape(len(prompts), len(seeds), *shown.shape[1:])
        out.flagged[label] = flags.reshape(len(prompts), len(seeds))
    return out


@dataclass(frozen=True)
class SideBySide:
    """Where the tiles of a side-by-side sheet are: tile (r, label, j) spans x from
    left + block(label) * (S * tile + GAP) + j * tile, y from top + r * tile, `tile` px square."""
    labels: list[str]  # model labels, left to right (base first)
    left: int
    top: int
    tile: int
    gap: int
    n_seeds: int

    def box(self, row: int, label: str, seed: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of one tile, for cropping the sheet (tests, drill-downs)."""
        x = self.left + self.labels.index(label) * (self.n_seeds * self.tile + self.gap) + seed * self.tile
        y = self.top + row * self.tile
        return x, y, x + self.tile, y + self.tile


SHEET_WIDTH = 1100  # px: a sheet of base + one erased model fits a laptop screen without scrolling sideways


def side_by_side(result: Comparison, tile: int | None = None, width: int = SHEET_WIDTH) -> tuple[np.ndarray, SideBySide]:
    """One image for the whole comparison: a row per prompt (erased rows marked in red with an x), and
    in it the base model's images then each erased model's, same seeds in the same columns. Tiles are as
    large as `width` allows (at most 128 px, at least 32); small images are enlarged by a whole factor,
    pixel-exact, and large ones (SD: 512 px) shrunk."""
    n_p, n_s, labels = len(result.prompts), len(result.seeds), list(result.images)
    left, top, gap = 170, 44, 16
    if tile is None:
        tile = int(np.clip((width - left - gap * (len(labels) - 1)) // (n_s * len(labels)), 32, 128))
        side = next(iter(result.images.values())).shape[2]  # the images' own side
        tile = tile // side * side if side < tile else tile  # enlarge by a whole factor: pixel-exact
    layout = SideBySide(labels, left, top, tile, gap, n_s)
    block = n_s * tile + gap
    sheet = Image.new("RGB", (left + len(labels) * block - gap, top + n_p * tile), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=12)
    for b, label in enumerate(labels):
        x = left + b * block
        draw.text((x + 2, 2), label, fill="black", font=ImageFont.load_default(size=15))
        for j, seed in enumerate(result.seeds):
            draw.text((x + j * tile + 2, top - 16), f"seed {seed}", fill="#555555", font=font)
    for i, prompt in enumerate(result.prompts):
        y = top + i * tile
        marked = result.erased_rows[i]
        text = ("x " if marked else "") + (prompt if len(prompt) <= 24 else prompt[:23] + "…")
        draw.text((4, y + tile // 2 - 6), text, fill="#c00000" if marked else "black", font=font)
        for label in labels:
            for j in range(n_s):
                x0, y0, x1, y1 = layout.box(i, label, j)
                im = Image.fromarray(result.images[label][i, j])
                resample = Image.Resampling.NEAREST if im.width <= tile else Image.Resampling.LANCZOS
                sheet.paste(im.resize((tile, tile), resample), (x0, y0))
                if result.flagged[label][i, j]:
                    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline="#c00000", width=3)
    return np.asarray(sheet), layout


def shape_recognition(result: Comparison, classifier) -> list[dict]:
    """Embedded model only: for every prompt naming a world shape, how many of its images the world
    classifier recognises as that shape, per model. Rows {"prompt", "shape", "erased", label: "k/n"}.
    Screened (blurred) tiles are classified as shown."""
    from shapesworld.data import to_tensor
    from shapesworld.world import SHAPES

    rows = []
    for i, prompt in enumerate(result.prompts):
        shape = next((w for w in prompt.lower().split() if w in SHAPES), None)
        if shape is None:
            continue
        row = {"prompt": prompt, "shape": shape, "erased": result.erased_rows[i]}
        for label, images in result.images.items():
            pred = classifier.predict(to_tensor(images[i]))["shape"].argmax(-1)  # [S]
            row[label] = f"{int((pred == SHAPES.index(shape)).sum())}/{len(pred)}"
        rows.append(row)
    return rows
