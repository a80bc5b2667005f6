"""Concept vocabularies for the spectrum (docs/design.md §2): named ones, user lists and nearest-K.

    resolve_vocabulary("world")                      # the embedded world's words
    resolve_vocabulary("world-captions")             # its 1,400 caption phrases ("outlined red star")
    resolve_vocabulary("english", size=5000)         # the 5,000 most frequent English words
    resolve_vocabulary("imagenet")                   # ImageNet-1k's 1,000 class names (also: imagenette)
    resolve_vocabulary("clip-words", size=5000)      # first 5,000 end-of-word CLIP tokens (some are pieces)
    resolve_vocabulary("clip-all")                   # the whole CLIP vocabulary minus non-words
    resolve_vocabulary("my_words.txt")               # a user list: one concept per line, or CSV
    resolve_vocabulary("nearest-50", pipe=p, target="star", template="a {concept}")

The null concept "" and "a photo" are always added (see NEUTRAL) and marked in the spectrum.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from backends.prompts import fill
from backends.vocab import FIXED, SIZED, clip_all, clip_words, get_vocabulary, world_words

NULL, PHOTO = "", "a photo"
NEUTRAL = (NULL, PHOTO)  # the paper's neutral reference concepts, always in a spectrum
MAX_CONCEPTS = 100_000  # a longer list is almost certainly the wrong file
MAX_CONCEPT_CHARS = 200  # longer "concepts" are not concepts (and overflow CLIP's context anyway)
MAX_FILE_BYTES = MAX_CONCEPTS * (MAX_CONCEPT_CHARS + 1)  # the largest list that can pass validate_concepts
NAMED = (*SIZED, "clip-all", *FIXED, "nearest-K", "<path to .txt/.csv>")
# The named vocabularies a visitor of the app may choose (never a path: docs/design.md §5)
APP_VOCABULARIES = ("world", "world-captions", "english", "imagenet", "imagenette", "emoji", "clip-words", "clip-all",
                    "nearest-50")


class VocabularyError(ValueError):
    """A vocabulary that cannot be used; the message says how to fix it."""


def resolve_vocabulary(name: str, size: int | None = None, *, pipe=None, target: str | None = None,
                       template: str = "{concept}", dedupe: bool = False, pool: str = "clip-words") -> list[str]:
    """Concepts of a named vocabulary or a user file, without the neutral ones (see with_neutral)."""
    if not name or not name.strip():
        raise VocabularyError(f"no vocabulary given; choose one of {', '.join(NAMED)}")
    name = name.strip()
    if size is not None and size < 1:
        raise VocabularyError(f"vocabulary size must be >= 1, got {size}")
    if name in SIZED or name in FIXED:
        return get_vocabulary(name, size)
    if name == "clip-all":
        return clip_all()[:size] if size else clip_all()
    if m := re.fullmatch(r"nearest-(\d+)", name):
        pool_words = world_words() if pool == "world" else clip_words(size)
        return nearest(pipe, target, int(m.group(1)), template, pool_words)
    path = Path(name)
    if path.suffix.lower() in (".txt", ".csv") or path.exists():
        return load_user_vocabulary(path, dedupe=dedupe)
    raise VocabularyError(f"unknown vocabulary {name!r}; valid: {', '.join(NAMED)}")


DEDUPE_HINT = "remove the repeats or pass dedupe=True (--dedupe) to keep the first of each"


def load_user_vocabulary(path: str | Path, dedupe: bool = False, source: str | None = None,
                         dedupe_hint: str = DEDUPE_HINT) -> list[str]:
    """One concept per line (.txt) or the first column of a CSV (a 'concept' header is skipped).
    `source` names the file in messages (the app names an upload, never its server path)."""
    path = Path(path)
    source = source or str(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise VocabularyError(f"vocabulary file {source} {what}; pass a .txt (one concept per line) or .csv")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise VocabularyError(f"cannot read vocabulary file {source} ({e.strerror or e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise VocabularyError(f"{source} is larger than {MAX_FILE_BYTES // 1_000_000} MB; a vocabulary is one "
                              "short concept per line")
    if b"\x00" in raw[:65536]:
        raise VocabularyError(f"{source} is a binary file, not a text list of concepts")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise VocabularyError(f"{source} is not UTF-8 text ({e}); save it as UTF-8") from e
    if path.suffix.lower() == ".csv":
        rows = [r[0] if r else "" for r in csv.reader(io.StringIO(text))]
        if rows and rows[0].strip().lower() in ("concept", "concepts", "word"):
            rows = rows[1:]
    else:
        rows = text.splitlines()
    return validate_concepts([r.strip() for r in rows if r.strip()], source=source, dedupe=dedupe,
                             dedupe_hint=dedupe_hint)


def validate_concepts(concepts: list[str], source: str = "the list", dedupe: bool = False,
                      dedupe_hint: str = DEDUPE_HINT) -> list[str]:
    """Reject empty, oversized, duplicated or non-printable lists with a message saying what to change."""
    if not concepts:
        raise VocabularyError(f"{source} has no concepts; add one concept per line")
    if len(concepts) > MAX_CONCEPTS:
        raise VocabularyError(f"{source} has {len(concepts):,} concepts (limit {MAX_CONCEPTS:,}); "
                              "split it, or use clip-words with a size")
    bad = [c for c in concepts if len(c) > MAX_CONCEPT_CHARS or not c.isprintable()]
    if bad:
        raise VocabularyError(f"{source}: {len(bad)} entries are not concepts (longer than {MAX_CONCEPT_CHARS} "
                              f"characters or with control characters), e.g. {bad[0][:60]!r}")
    seen, dupes = set(), []
    for c in concepts:
        (dupes.append(c) if c in seen else seen.add(c))
    if dupes and not dedupe:
        raise VocabularyError(f"{source} repeats {len(dupes)} concepts ({', '.join(sorted(set(dupes))[:5])}); "
                              f"{dedupe_hint}")
    return list(dict.fromkeys(concepts))


def with_neutral(concepts: list[str], targets: list[str]) -> list[str]:
    """Neutral concepts first, then the targets, then the vocabulary (each once, order kept)."""
    return list(dict.fromkeys([*NEUTRAL, *targets, *concepts]))


def kind_of(concept: str, targets: list[str]) -> str:
    """'null', 'neutral', 'target' or 'concept' (the spectrum's marker column)."""
    if concept == NULL:
        return "null"
    if concept == PHOTO:
        return "neutral"
    return "target" if concept in targets else "concept"


def prompt_of(concept: str, template: str) -> str:
    """The prompt for a concept; the neutral concepts are prompts in their own right, never templated."""
    return concept if concept in NEUTRAL else fill(template, concept)


def nearest(pipe, target: str | None, k: int, template: str, pool: list[str]) -> list[str]:
    """The k pool words whose text-encoder embeddings are closest (L2) to the target's, as AP's search does."""
    from backends.prompts import embed_prompts
    from backends.word_store import WordStore

    if pipe is None or not target:
        raise VocabularyError("nearest-K needs the model and a target concept")
    if k <= 0:
        raise VocabularyError(f"nearest-K needs K >= 1, got {k}")
    words = [w for w in pool if w != target]
    table = WordStore(pipe, template).table(words)  # memory-mapped, distances in CPU chunks
    order = table.distances(embed_prompts(pipe, [fill(template, target)])[0]).argsort()[:k]
    return [table.words[i] for i in order.tolist()]
