"""The per-word embedding cache behind AP's search space and nearest-K (backends.word_store)."""

import numpy as np
import pytest
import torch

from backends.prompts import embed_prompts
from backends.word_store import WordStore

WORDS = ["star", "heart", "moon", "circle", "square", "arrow", "cross", "diamond"]


def test_each_word_is_embedded_once_whatever_list_asks_for_it(embedded_pipe, tmp_path):
    store = WordStore(embedded_pipe, "a {concept}", root=tmp_path)
    first = store.table([w for w in WORDS if w != "star"])  # AP's candidates for target "star"
    assert len(list(store.folder.glob("*.safetensors"))) == 1
    second = store.table([w for w in WORDS if w != "heart"])  # target "heart": only "star" is new
    shards = sorted(store.folder.glob("*.safetensors"), key=lambda p: p.stat().st_size)
    assert len(shards) == 2
    again = store.table(list(reversed(WORDS)))  # any order, any subset: nothing new
    assert len(list(store.folder.glob("*.safetensors"))) == 2
    direct = embed_prompts(embedded_pipe, [f"a {w}" for w in WORDS]).float().half()  # [V, L, d]
    for table in (first, second, again):
        got = table.rows(range(len(table)))
        assert got.dtype == torch.float16
        assert torch.equal(got, direct[[WORDS.index(w) for w in table.words]])
    assert all(isinstance(s, np.memmap) for s in again._shards)  # read from disk on demand


def test_chunked_distances_equal_the_whole_table_at_once(embedded_pipe, tmp_path):
    table = WordStore(embedded_pipe, "a {concept}", root=tmp_path).table(WORDS)
    target = embed_prompts(embedded_pipe, ["a red star"]).float()[0]
    whole = (table.rows(range(len(table))).float() - target).flatten(1).norm(dim=1)
    for chunk in (1, 3, 512):
        assert torch.equal(table.distances(target, chunk=chunk), whole)
    assert table.distances(target).argmin() == WORDS.index("star")


def test_search_space_moves_only_its_centres_to_the_device(embedded_pipe, tmp_path, monkeypatch):
    from backends import word_store
    from backends.vocab import get_vocabulary
    from erasure.methods.search import build_search_space

    monkeypatch.setattr(word_store, "CACHE_ROOT", tmp_path)
    vocab = get_vocabulary("world", 10000)
    words, R, dist, near = build_search_space(embedded_pipe, vocab, "a star", "a {concept}", 100, 4, {"star"})
    assert near == []  # exclude_near off: no word left out as too near
    assert R.shape[0] == len(words) == 4 and R.dtype == torch.float32 and "star" not in words
    direct = embed_prompts(embedded_pipe, [f"a {w}" for w in words]).float().half().float()
    assert torch.equal(R, direct)
    assert (tmp_path / "words").is_dir()


def test_a_foreign_shard_is_refused_with_the_fix(embedded_pipe, tmp_path):
    from safetensors.torch import save_file

    store = WordStore(embedded_pipe, "a {concept}", root=tmp_path)
    store.folder.mkdir(parents=True)
    save_file({"embeddings": torch.zeros(1, 2, 3)}, str(store.folder / "x.safetensors"), metadata={"words": '["star"]'})
    with pytest.raises(ValueError, match="not a float16 word shard; delete it"):
        store.table(["star"])
