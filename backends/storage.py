"""Storage helpers every library shares: the cache folder, weight fingerprints, atomic file writes and
the library versions recorded next to every result."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

# Derived data every library may cache (prompt embeddings, the spectrum's original-model samples)
CACHE_ROOT = Path(os.environ.get("CSE_CACHE_DIR", Path(__file__).resolve().parent.parent / "cache"))


def versions() -> dict[str, str]:
    """The versions a result depends on, recorded in every run and spectrum config."""
    import platform

    import diffusers
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def weights_fingerprint(modules: dict[str, torch.nn.Module], salt: str = "", samples_per_tensor: int = 4096) -> str:
    """16-hex hash of named modules' weights, for cache keys.

    Hashes names, shapes and an evenly strided sample of every tensor: a fine-tune that changes any
    layer changes the key, without reading gigabytes of SD weights.
    """
    h = hashlib.sha1(salt.encode())
    for component, module in modules.items():
        for name, t in sorted(module.state_dict().items()):
            flat = t.detach().flatten()
            step = max(1, flat.numel() // samples_per_tensor)
            h.update(f"{component}.{name}{tuple(t.shape)}".encode())
            h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) and move tmp onto path, so a kill mid-write never leaves a half file.

    The tmp name keeps the suffix (writers that infer the format from it still work) and holds the
    pid (parallel workers writing the same key do not clobber each other's tmp file).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def ensure_writable(folder: str | Path, fix: str) -> Path:
    """Create `folder` and prove it writable before any compute; PermissionError ends with `fix`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"cannot write to {folder} ({e.strerror}); {fix}") from e
    return folder


def write_json(path: str | Path, data) -> Path:
    """Atomically write data as indented JSON (non-JSON values become strings)."""
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str)))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def error_text(e: BaseException, limit: int = 500) -> str:
    """One line for the terminal: the message (a file-system error's reason and its file), cut at `limit`."""
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    else:
        text = str(e)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
