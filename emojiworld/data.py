"""Rendered EmojiWorld datasets, cached on disk as .npz (uint8 images + scene records)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

from .world import BACKGROUNDS, STYLES, Scene, render_array, sample_scene

DATA_VERSION = 1  # bump when the renderer changes so caches are not reused
CACHE_DIR = Path(__file__).resolve().parent.parent / "cache" / "emojiworld"


def sample_scenes(names: tuple[str, ...], n: int, seed: int, **draw) -> list[Scene]:
    """`n` random scenes; `draw`: sample_scene's pose, style_p and background_p."""
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, names, **draw) for _ in range(n)]


def make_dataset(names: tuple[str, ...], n: int, seed: int, workers: int = 2, **draw) -> tuple[np.ndarray, list[Scene]]:
    """(images uint8 [n, 32, 32, 3], scenes) of the given concepts; cached per (names, n, seed, draw,
    version). `draw`: how scenes are drawn (sample_scene's pose, style_p, background_p)."""
    key = hashlib.sha256("\n".join(names).encode()).hexdigest()[:10]
    if draw:  # the default draw keeps the name the existing caches have
        key += "_" + hashlib.sha256(json.dumps(draw, sort_keys=True).encode()).hexdigest()[:8]
    path = CACHE_DIR / f"emoji_v{DATA_VERSION}_{key}_n{n}_s{seed}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return z["images"], [Scene(**d) for d in json.loads(str(z["scenes"]))]
    scenes = sample_scenes(names, n, seed, **draw)
    chunks = [scenes[i : i + 1000] for i in range(0, n, 1000)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            images = np.concatenate(pool.map(render_array, chunks))
    else:
        images = np.concatenate([render_array(c) for c in chunks])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, scenes=json.dumps([s.to_dict() for s in scenes]))
    tmp.replace(path)
    return images, scenes


def label_indices(scenes: list[Scene], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Integer labels per head: concept (index into `names`), background, style."""
    index = {n: i for i, n in enumerate(names)}
    return {"concept": np.array([index[s.concept] for s in scenes]),
            "background": np.array([BACKGROUNDS.index(s.background) for s in scenes]),
            "style": np.array([STYLES.index(s.style) for s in scenes])}
