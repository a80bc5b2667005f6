"""Disk cache of the original model's samples (docs/design.md §2): CLIP scores and image features per
(model, prompt, seed, sampler settings, scorer), reused for every target and sanitized model.

    cache/spectrum/<model fingerprint>/<settings key>/<prompt key>.safetensors
        seeds [n] int64, scores [n] float32, features [n, d] float32; metadata: the prompt

One file per prompt keeps a 49k-word vocabulary at 49k small files; new seeds merge into the
file. Files are replaced atomically, so a killed run never leaves a torn entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from backends.families import family_of
from backends.storage import CACHE_ROOT, atomic_write, weights_fingerprint


def pipeline_fingerprint(pipe) -> str:
    """Hash of the denoiser, text encoder(s) and VAE weights (in the dtype loaded): the part of the cache
    key naming the model. SD's key is that of (unet, text_encoder, vae), as before FLUX joined."""
    names = (family_of(pipe).component, "text_encoder", "text_encoder_2", "vae")
    return weights_fingerprint({c: getattr(pipe, c) for c in names if getattr(pipe, c, None) is not None})


class SampleCache:
    """Scores and features of one model under one (sampler settings, scorer) pair."""

    def __init__(self, model_key: str, settings: dict, root: str | Path | None = None):
        self.settings = settings
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root or CACHE_ROOT / "spectrum") / model_key / key
        self.hits = self.misses = 0

    def _path(self, prompt: str) -> Path:
        return self.folder / (hashlib.sha1(prompt.encode()).hexdigest()[:20] + ".safetensors")

    def get(self, prompt: str, seeds: list[int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(scores [k], features [k, d]) for these seeds, or None unless every seed is cached."""
        path = self._path(prompt)
        if not path.exists():
            self.misses += 1
            return None
        with safe_open(str(path), "pt") as f:
            if f.metadata().get("prompt") != prompt:  # a hash collision: treat as a miss
                self.misses += 1
                return None
            have = {int(s): i for i, s in enumerate(f.get_tensor("seeds").tolist())}
            if any(s not in have for s in seeds):
                self.misses += 1
                return None
            idx = torch.tensor([have[s] for s in seeds])
            self.hits += 1
            return f.get_tensor("scores")[idx], f.get_tensor("features")[idx]

    def put(self, prompt: str, seeds: list[int], scores: torch.Tensor, features: torch.Tensor) -> None:
        """Store (merging with the seeds already cached for this prompt)."""
        path = self._path(prompt)
        rows = {}
        if path.exists():
            with safe_open(str(path), "pt") as f:
                old = f.get_tensor("seeds").tolist(), f.get_tensor("scores"), f.get_tensor("features")
            rows = {int(s): (old[1][i], old[2][i]) for i, s in enumerate(old[0])}
        rows.update({int(s): (scores[i], features[i]) for i, s in enumerate(seeds)})
        order = sorted(rows)
        tensors = {
            "seeds": torch.tensor(order, dtype=torch.int64),
            "scores": torch.stack([rows[s][0] for s in order]).float().contiguous(),
            "features": torch.stack([rows[s][1] for s in order]).float().contiguous(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"prompt": prompt}))
