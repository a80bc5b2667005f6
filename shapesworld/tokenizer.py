"""Build the real CLIP BPE tokenizer (49,408 tokens) from the vocabulary open_clip ships.

SD 1.x's tokenizer folder holds `vocab.json` + `merges.txt`; we derive both from
open_clip's `bpe_simple_vocab_16e6.txt.gz` with the same construction as open_clip's
SimpleTokenizer, so token ids are identical (tests/test_tokenizer.py checks 300+ prompts).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

VOCAB_SIZE = 49408
TEXT_CONTEXT = 24  # the embedded text encoders' context in tokens; the longest training caption is 17
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode map (same order as open_clip's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_merges() -> list[str]:
    """CLIP's BPE merges in order (the same slice open_clip's SimpleTokenizer uses)."""
    from open_clip.tokenizer import default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    return lines[1 : 49152 - 256 - 2 + 1]  # the exact slice open_clip uses


def write_clip_tokenizer(folder: str | Path, model_max_length: int) -> Path:
    """Write a `CLIPTokenizer`-loadable folder; `model_max_length` is the text context."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = clip_merges()
    units = list(_bytes_to_unicode().values())
    vocab = units + [u + "</w>" for u in units] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,  # SD 1.x pads with <|endoftext|>
        "do_lower_case": True,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return folder


@functools.lru_cache(maxsize=1)
def _simple_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=TEXT_CONTEXT)


def tokenize(texts: list[str]):
    """The embedded CLIP's tokenizer: open_clip's own (ids equal the pipeline's CLIPTokenizer),
    [N, TEXT_CONTEXT] int64."""
    return _simple_tokenizer()(texts)
