"""Before/after grids: the base model and erased runs on the same prompts and seeds.

    result = compare(base_pipe, {"AP star": "runs/star"}, ["a red star", "a red heart"], [0, 1, 2, 3],
                     erased=["star"])
    sheets = render(result)      # label -> one annotated image (rows = prompts, columns = seeds)
"""

from __future__ import annotations

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


def compare(base, runs: dict[str, str], prompts: list[str], seeds: list[int], erased: list[str] = (),
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


def render(result: Comparison, tile: int = 96) -> dict[str, np.ndarray]:
    """label -> one sheet: a header of seeds, a column of prompts (erased rows marked in red and
    with an x), flagged tiles outlined. Tiles are enlarged to `tile` px, pixel-exact."""
    return {label: _sheet(result, label, tile) for label in result.images}


def _sheet(r: Comparison, label: str, tile: int) -> np.ndarray:
    font = ImageFont.load_default(size=12)
    left, top = 170, 40
    n_p, n_s = len(r.prompts), len(r.seeds)
    sheet = Image.new("RGB", (left + n_s * tile, top + n_p * tile), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), label, fill="black", font=ImageFont.load_default(size=16))
    for j, seed in enumerate(r.seeds):
        draw.text((left + j * tile + 4, top - 16), f"seed {seed}", fill="black", font=font)
    for i, prompt in enumerate(r.prompts):
        y = top + i * tile
        text = ("x " if r.erased_rows[i] else "") + (prompt if len(prompt) <= 24 else prompt[:23] + "…")
        draw.text((4, y + tile // 2 - 6), text, fill="#c00000" if r.erased_rows[i] else "black", font=font)
        for j in range(n_s):
            im = Image.fromarray(r.images[label][i, j]).resize((tile, tile), Image.NEAREST)
            sheet.paste(im, (left + j * tile, y))
            if r.flagged[label][i, j]:
                draw.rectangle([left + j * tile, y, left + (j + 1) * tile - 1, y + tile - 1], outline="#c00000", width=3)
    return np.asarray(sheet)


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
