"""The shipped tokenizer is the real CLIP BPE: ids equal open_clip's on varied prompts."""

import itertools

import numpy as np
import pytest
from open_clip.tokenizer import SimpleTokenizer, basic_clean
from transformers import CLIPTokenizer

from backends.loader import ASSETS
from shapesworld.captions import sample_caption
from shapesworld.world import sample_scene

OPEN_CLIP = SimpleTokenizer()


def varied_prompts() -> list[str]:
    rng = np.random.default_rng(0)
    world = [sample_caption(sample_scene(rng), rng) for _ in range(260)]
    punct = [f"{w}{p}" for w, p in itertools.product(
        ["a red star", "A Photo Of A Cat", "van gogh's starry night", "it's 3.14 o'clock"],
        ["!", "?!", ",", "...", " -- ", "(x)", "[1]", " #tag", " @user", ";:", "\"q\"", "'s"])]
    uni = ["café naïve résumé", "東京の夜景", "Москва зимой", "emoji 🙂🚀 rocket", "ﬁne ligature",
           "smart “quotes” and ‘apostrophes’", "ümlaut Ärger", "ελληνικά γράμματα", "한국어 문장",
           "tab\tand\nnewline", "  leading and trailing spaces  ", "ALL CAPS SHOUTING", "mixedCASE Words",
           "numbers 12345 and 1,000,000", "math x² + y³ ≤ z", "عربي نص", "हिन्दी पाठ", "€100 £50 ¥30",
           "zero\u200bwidth", "emoji family 👨‍👩‍👧"]
    long = [" ".join(["a very long prompt about a red star on a striped background"] * k) for k in (2, 5, 9, 14)]
    nudity = ["a nude person", "an artwork in the style of Claude Monet", "Superman flying over a city",
              "a garbage truck", "cassette player", "french horn", "english springer", "chain saw"]
    mixed = [f"{u} {w}" for u, w in zip(uni, world)]  # unicode next to ordinary words
    return list(dict.fromkeys(world + punct + uni + [u.upper() for u in uni] + mixed + long + nudity))


def open_clip_ids(text: str, context: int = 77) -> list[int]:
    ids = [OPEN_CLIP.sot_token_id] + OPEN_CLIP.encode(text) + [OPEN_CLIP.eot_token_id]
    if len(ids) > context:
        ids = ids[:context]
        ids[-1] = OPEN_CLIP.eot_token_id
    return ids


@pytest.fixture(scope="module")
def shipped():
    return CLIPTokenizer.from_pretrained(ASSETS / "pipeline" / "tokenizer")


def test_vocabulary_is_full_clip(shipped):
    assert len(shipped) == 49408
    assert shipped.convert_tokens_to_ids("<|startoftext|>") == 49406
    assert shipped.convert_tokens_to_ids("<|endoftext|>") == 49407


def test_ids_equal_open_clip_on_300_prompts(shipped):
    # open_clip cleans text (ftfy.fix_text, HTML unescape) before BPE; SD's CLIPTokenizer does not.
    # Ids must be equal on every prompt that cleaning leaves alone, and on the rest once cleaned.
    prompts = varied_prompts()
    untouched = [t for t in prompts if basic_clean(t) == t.strip()]
    assert len(untouched) >= 300  # distinct prompts
    for text in untouched:
        assert shipped(text, truncation=True, max_length=77).input_ids == open_clip_ids(text), text
    for text in set(prompts) - set(untouched):
        assert shipped(basic_clean(text), truncation=True, max_length=77).input_ids == open_clip_ids(text), text


def test_context_truncation_keeps_eot(shipped):
    ids = shipped("a red star " * 20, truncation=True, max_length=shipped.model_max_length).input_ids
    assert len(ids) == shipped.model_max_length and ids[-1] == 49407


@pytest.mark.parametrize("raw, cleaned", [("salt &amp; pepper", "salt & pepper"), ("ﬁne art", "fine art")])
def test_known_difference_is_open_clips_text_cleaning(shipped, raw, cleaned):
    # open_clip unescapes HTML and fixes ligatures with ftfy; SD's CLIPTokenizer does not: we match SD.
    assert shipped(raw).input_ids != open_clip_ids(raw)
    assert shipped(cleaned).input_ids == open_clip_ids(raw)
