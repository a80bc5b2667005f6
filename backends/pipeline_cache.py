"""The one pipeline an app keeps loaded, keyed by (model, device, dtype).

A GPU holds one large pipeline at a time (FLUX in bfloat16 is ~33 GB), so asking for another choice
releases the last one before loading it; asking again for the same choice reuses it.

    pipes = PipelineCache()
    pipe = pipes.get("embedded", "cpu", "bfloat16")
"""

from __future__ import annotations

import gc
import threading

import torch

from .loader import load_pipeline, torch_dtype


class PipelineCache:
    def __init__(self, load=load_pipeline):
        self._load = load  # (model, device=, dtype=) -> pipeline
        self._key: tuple[str, str, str] | None = None
        self._pipe = None
        self._lock = threading.Lock()  # two visitors asking at once load once

    def get(self, model: str, device: str = "cpu", dtype: str = "float32"):
        key = (model, device, dtype)
        with self._lock:
            if key != self._key:
                weights_dtype = torch_dtype(dtype)  # a bad name fails before the loaded pipeline is released
                self._key, self._pipe = None, None  # release first: the peak is one pipeline, not two
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._pipe = self._load(model, device=device, dtype=weights_dtype)
                self._key = key
            return self._pipe

    @property
    def loaded(self) -> tuple[str, str, str] | None:
        """The (model, device, dtype) held now, or None."""
        return self._key
