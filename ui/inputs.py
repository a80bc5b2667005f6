"""Type and range checks for every value a visitor sends the app (browser or API).

Each checker takes the raw value (an API client may send any JSON: a string for a number, NaN, a
70-digit integer, a list for a name) and returns it converted, or raises InputError whose message
names the field and says what to send instead. No gradio here: the app's handlers call these.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from jobs.store import JOB_ID

MAX_SEED = 2**31 - 1  # seeds are torch.Generator seeds; the app keeps them in int32 range
MAX_TEXT = 200  # a concept, a model name or a job id longer than this is not one
MAX_PROMPT = 300  # one prompt (CLIP reads 77 tokens; longer text is not a prompt)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


class InputError(ValueError):
    """A request value that cannot be used; the message says what to change."""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def whole(value, label: str, lo: int, hi: int) -> int:
    """A whole number in lo..hi (an int, or a float with no fraction, as number boxes send)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{label} must be a whole number in {lo}..{hi}, got {_shown(value)}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise InputError(f"{label} must be a whole number in {lo}..{hi}, got {_shown(value)}")
    if not lo <= value <= hi:
        raise InputError(f"{label} must be in {lo}..{hi}, got {_shown(value)}")
    return int(value)


def real(value, label: str, lo: float, hi: float) -> float:
    """A finite number in lo..hi."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{label} must be a number in {lo:g}..{hi:g}, got {_shown(value)}")
    if not lo <= value <= hi:
        raise InputError(f"{label} must be in {lo:g}..{hi:g}, got {_shown(value)}")
    return float(value)


def seed(value, label: str = "Seed") -> int:
    return whole(value, label, 0, MAX_SEED)


def text(value, label: str, max_chars: int = MAX_TEXT, required: bool = True, lines: bool = False) -> str:
    """Printable text (newlines too when `lines`), stripped, at most max_chars."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{label} must be text, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InputError(f"{label} is empty; enter a value")
    if len(value) > max_chars:
        raise InputError(f"{label} is {len(value):,} characters long; use at most {max_chars}")
    if not (value.replace("\n", " ").replace("\r", " ") if lines else value).isprintable():
        raise InputError(f"{label} contains control characters; use plain text")
    return value


def choice(value, label: str, options) -> str:
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{label} must be one of {', '.join(options)}; got {_shown(value)}")
    return value


def flag(value, label: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(f"{label} must be true or false, got {_shown(value)}")
    return value


def job_id(value, label: str = "Job") -> str:
    """A job id's form (whether it exists is the job manager's question)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{label}: no job chosen; pick one from the job list")
    if not isinstance(value, str) or not JOB_ID.match(value.strip()):
        raise InputError(f"{label}: {_shown(value)} is not a job id (like 'erase-20261201-120000-000-3f9c0a1b2c3d4e5f'); "
                         "pick one from the job list")
    return value.strip()


def job_ids(value, label: str, max_n: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InputError(f"{label} must be a list of job ids, got {type(value).__name__}")
    if len(value) > max_n:
        raise InputError(f"{label}: choose at most {max_n}, got {len(value)}")
    return list(dict.fromkeys(job_id(v, label) for v in value))


# A concept is words: letters or digits first, then also spaces and ' - . & + (no markup, no formula,
# no control characters), whatever the model; every model's concepts end up in titles, pickers and CSVs.
CONCEPT = re.compile(r"^\w[\w '\-.&+]*$")


def concept_word(value: str, label: str) -> str:
    if not CONCEPT.match(value):
        raise InputError(f"{label}: {_shown(value)} is not a concept; use words (letters, digits, spaces, ' - . & +), "
                         "e.g. 'star' or 'van gogh'")
    return value


def concepts(value, label: str, max_n: int = 16) -> list[str]:
    """Comma-separated concepts (each a short phrase of words: CONCEPT)."""
    raw = text(value, label, max_chars=max_n * (MAX_TEXT + 2))
    items = _items(raw.split(","), label, max_n, MAX_TEXT, "concepts at once",
                   "an entry between commas is empty; write e.g. 'star' or 'star, heart'")
    return [concept_word(item, label) for item in items]


def prompt_lines(value, label: str, max_n: int) -> list[str]:
    """One prompt per line, no empty lines in between."""
    raw = text(value, label, max_chars=max_n * (MAX_PROMPT + 2), lines=True)
    return _items(raw.splitlines(), label, max_n, MAX_PROMPT, "prompts", "remove the empty lines (one prompt per line)")


def _items(parts: list[str], label: str, max_n: int, max_chars: int, what: str, if_empty: str) -> list[str]:
    """The stripped parts of a list the visitor typed: none empty, at most max_n, each short printable text."""
    items = [p.strip() for p in parts]
    if any(not item for item in items):
        raise InputError(f"{label}: {if_empty}")
    if len(items) > max_n:
        raise InputError(f"{label}: at most {max_n} {what}, got {len(items)}")
    return [text(item, label, max_chars) for item in items]


def model_name(value, presets, local_roots: list[Path], allowed_hub: set[str] = frozenset()) -> str:
    """A preset, a hub repo id the app's owner allowed (`allowed_hub`, CSE_ALLOWED_MODELS), or a diffusers
    folder under one of `local_roots` (CSE_MODEL_DIRS), given as an absolute path and returned as its real
    path (links resolved). Nothing is looked up relative to the server's working directory, and every
    refusal reads the same, so a visitor learns nothing about which folders or repos exist."""
    name = text(value, "Model", MAX_TEXT)
    if name in presets:
        return name
    if HUB_ID.match(name) and ".." not in name and name in allowed_hub:
        return name
    if name.startswith("/") and local_roots:
        path = Path(os.path.realpath(name))
        if any(path.is_relative_to(root) for root in local_roots) and (path / "model_index.json").is_file():
            return str(path)
    raise InputError(f"Model must be a preset ({', '.join(presets)}), a hub repo id this server allows, or a "
                     "folder its owner allowed; the owner lists them in CSE_ALLOWED_MODELS and CSE_MODEL_DIRS")


def uploaded_file(value, upload_roots: list[Path], max_bytes: int, label: str = "Vocabulary file") -> Path:
    """A file the visitor uploaded: it must lie in the app's upload folder, be no link, and be small.
    A typed server path (absolute, relative, ../, a symlink) is refused; its contents are never read."""
    if isinstance(value, dict):  # the API's FileData form
        value = value.get("path")
    if not isinstance(value, str) or not value:
        raise InputError(f"{label}: upload a .txt or .csv file")
    path = Path(value)
    real = Path(os.path.realpath(path))
    inside = path.is_absolute() and any(real.is_relative_to(os.path.realpath(r)) for r in upload_roots)
    if not inside or path.is_symlink() or not real.is_file():
        raise InputError(f"{label}: upload a file from your computer; paths on the server are not accepted")
    if real.suffix.lower() not in (".txt", ".csv"):
        raise InputError(f"{label}: upload a .txt (one concept per line) or a .csv file")
    size = real.stat().st_size
    if size > max_bytes:
        raise InputError(f"{label} is {size:,} bytes; upload at most {max_bytes:,}")
    return real
