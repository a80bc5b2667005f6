"""Rendered datasets of ShapesWorld, cached on disk as .npz (uint8 images + scene records)."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

from .world import Scene, render_array, sample_scene

DATA_VERSION = 1  # bump when the renderer changes so caches are not reused
CACHE_DIR = Path(__file__).resolve().parent.parent / "cache" / "shapesworld"


def sample_scenes(n: int, seed: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(n)]


def make_dataset(n: int, seed: int, workers: int = 2) -> tuple[np.ndarray, list[Scene]]:
    """(images uint8 [n, 32, 32, 3], scenes); cached per (n, seed, DATA_VERSION)."""
    path = CACHE_DIR / f"world_v{DATA_VERSION}_n{n}_s{seed}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        scenes = [Scene(**{**d, "tint": tuple(d["tint"])}) for d in json.loads(str(z["scenes"]))]
        return z["images"], scenes
    scenes = sample_scenes(n, seed)
    chunks = [scenes[i : i + 1000] for i in range(0, n, 1000)]
    with mp.get_context("fork").Pool(workers) as pool:
        images = np.concatenate(pool.map(render_array, chunks))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, scenes=json.dumps([s.to_dict() for s in scenes]))
    tmp.replace(path)
    return images, scenes


def label_indices(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """Integer class labels per attribute, in the order of world.ATTRIBUTES."""
    from .world import ATTRIBUTES

    return {k: np.array([v.index(getattr(s, k)) for s in scenes]) for k, v in ATTRIBUTES.items()}


def to_tensor(images: np.ndarray):
    """uint8 [N, H, W, 3] -> float tensor [N, 3, H, W] in [-1, 1] (the VAE's range)."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
