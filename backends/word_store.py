"""Text-encoder embeddings of single words, cached per word on disk (docs/design.md §3.3).

AP's search space and the nearest-K vocabulary need the [L, d] embedding of template.format(concept=w)
for every word of a vocabulary of up to ~50k words: 236 KB each on SD in float32, 7.6 GB for 32k. So:

- each word is embedded once per text encoder and template, whatever target or word list asked for it:
  shards of up to SHARD_WORDS words, float16 safetensors (the word list in the file's metadata), written
  atomically under <cache>/words/<text encoder fingerprint>/<template hash>/;
- a table of words is a memory map of those shards: rows are read from disk when asked for, distances
  are computed on the CPU DISTANCE_CHUNK rows at a time, and only the rows a caller gathers (AP's n
  centres) are ever copied whole.

Peak memory is one chunk and one embedding batch, not the vocabulary (benchmarks/bench_memory.py).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .offload import execution_device
from .prompts import embed_prompts, fill
from .storage import CACHE_ROOT, atomic_write, weights_fingerprint

SHARD_WORDS = 2048  # words per shard file (~240 MB on SD in float16; one shard is held while it is filled)
EMBED_BATCH = 256  # prompts per text-encoder call while filling the cache
DISTANCE_CHUNK = 256  # rows per CPU distance chunk (~60 MB of float32 on SD)


def _read_shard(path: Path) -> tuple[list[str], np.memmap]:
    """(words, memmap [n, L, d] float16) of one shard, read straight from the safetensors layout: an
    8-byte header length, the JSON header, then the raw tensor bytes (no copy, no pickle)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    info = header["embeddings"]
    if info["dtype"] != "F16":
        raise ValueError(f"{path} is not a float16 word shard; delete it to rebuild the cache")
    begin = info["data_offsets"][0]
    rows = np.memmap(path, dtype=np.float16, mode="r", offset=8 + size + begin, shape=tuple(info["shape"]))
    return json.loads(header["__metadata__"]["words"]), rows


class WordTable:
    """Embeddings of `words` in order, as views of memory-mapped shards."""

    def __init__(self, words: list[str], shards: list[np.memmap], where: np.ndarray):
        self.words, self._shards, self._where = words, shards, where  # where [V, 2]: (shard, row)

    def __len__(self) -> int:
        return len(self.words)

    def rows(self, idx) -> torch.Tensor:
        """float16 [len(idx), L, d] on the CPU, read from the shards."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), *self._shards[0].shape[1:]), dtype=np.float16)
        for s in np.unique(self._where[idx, 0]):
            sel = np.nonzero(self._where[idx, 0] == s)[0]
            out[sel] = self._shards[s][self._where[idx[sel], 1]]
        return torch.from_numpy(out)

    def distances(self, target: torch.Tensor, chunk: int = DISTANCE_CHUNK) -> torch.Tensor:
        """L2 distance [V] (float32, CPU) of each word's flattened embedding to target [L, d] (float32)."""
        target = target.detach().float().cpu().flatten()
        out = torch.empty(len(self))
        for lo in range(0, len(self), chunk):
            block = self.rows(range(lo, min(lo + chunk, len(self)))).float().flatten(1)  # [c, L*d]
            out[lo:lo + len(block)] = (block - target).norm(dim=1)
        return out


class WordStore:
    """The per-word cache of one text encoder and one template."""

    def __init__(self, pipe, template: str, root: Path | None = None):
        self.pipe, self.template = pipe, template
        fingerprint = weights_fingerprint({"text_encoder": pipe.text_encoder})
        key = hashlib.sha1(template.encode()).hexdigest()[:12]
        self.folder = Path(root or CACHE_ROOT / "words") / fingerprint / key

    def table(self, words: list[str]) -> WordTable:
        """The table of `words` (distinct, in order), embedding and storing any word not cached yet."""
        words = list(dict.fromkeys(words))
        index = self._index()
        missing = [w for w in words if w not in index]
        for lo in range(0, len(missing), SHARD_WORDS):
            self._write_shard(missing[lo:lo + SHARD_WORDS])
        if missing:
            index = self._index()
        paths = sorted({index[w][0] for w in words})
        shards = {p: _read_shard(p)[1] for p in paths}
        order = {p: i for i, p in enumerate(paths)}
        where = np.array([(order[index[w][0]], index[w][1]) for w in words], dtype=np.int64).reshape(-1, 2)
        return WordTable(words, [shards[p] for p in paths], where)

    def _index(self) -> dict[str, tuple[Path, int]]:
        """word -> (shard, row) over the shards on disk (their headers only)."""
        index: dict[str, tuple[Path, int]] = {}
        for path in sorted(self.folder.glob("*.safetensors")):
            for row, word in enumerate(_read_shard(path)[0]):
                index.setdefault(word, (path, row))
        return index

    @torch.no_grad()
    def _write_shard(self, words: list[str]) -> None:
        prompts = [fill(self.template, w) for w in words]
        first = embed_prompts(self.pipe, prompts[:EMBED_BATCH]).float().cpu().half()
        # [n, L, d] float16, filled batch by batch (no second copy from a concatenation)
        emb = torch.empty((len(prompts), *first.shape[1:]), dtype=torch.float16)
        emb[:len(first)] = first
        for i in range(EMBED_BATCH, len(prompts), EMBED_BATCH):
            batch = embed_prompts(self.pipe, prompts[i:i + EMBED_BATCH]).float().cpu().half()
            emb[i:i + len(batch)] = batch
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1("\n".join(words).encode()).hexdigest()[:16]
        atomic_write(self.folder / f"{name}.safetensors",
                     lambda p: save_file({"embeddings": emb.contiguous()}, str(p), metadata={"words": json.dumps(words)}))


def word_embeddings(pipe, words: list[str], template: str) -> torch.Tensor:
    """[V, L, d] float32 on the pipeline's device: embeddings of template.format(concept=w), cached per
    word. For a few words; a whole vocabulary is better used as a WordTable."""
    table = WordStore(pipe, template).table(words)
    pos = {w: i for i, w in enumerate(table.words)}
    return table.rows([pos[w] for w in words]).to(execution_device(pipe), torch.float32)
