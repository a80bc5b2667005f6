"""The shipped example jobs (docs/design.md §5, "Open on a result"): finished erasures of the embedded world
and their spectra, with their judged concepts, search records and drawn before/after grids, so a first
visit opens on a result instead of an empty form. `python -m benchmarks.examples` makes them.

    assets/examples/examples.json   [{"id": <job id>, "label": "AP erases star"}, ...], the first is opened
    assets/examples/<job id>/        a whole job folder (jobs.store), owned by nobody: shared, read-only;
                                     the examples' spectrum jobs ship beside them

They are copied into the app's jobs folder at start (an example the visitor's folder lacks); a job owned by
nobody can be viewed by every visitor and changed by none (JobFolder.changeable_by), so an example cannot
be cancelled, resumed or deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from backends.paths import SHARED_ASSETS

EXAMPLES = SHARED_ASSETS / "examples"


def shipped(folder: Path = EXAMPLES) -> list[dict]:
    """The examples' records ({"id", "label"}), the one to open first first; [] when none ship."""
    index = folder / "examples.json"
    return json.loads(index.read_text()) if index.is_file() else []


def install(root: Path, folder: Path = EXAMPLES) -> list[str]:
    """Copy every shipped job folder that `root` lacks into it (the examples and the spectrum jobs attached to
    them; whole, then renamed into place: a listing never sees half an example); returns the examples' ids."""
    from .store import JOB_ID

    root.mkdir(parents=True, exist_ok=True)
    ids = [e["id"] for e in shipped(folder)]
    jobs = sorted(p.name for p in folder.iterdir() if p.is_dir() and JOB_ID.match(p.name)) if ids else []
    for job_id in jobs:
        if (root / job_id).exists():
            continue
        part = root / f".{job_id}.part"
        shutil.rmtree(part, ignore_errors=True)
        shutil.copytree(folder / job_id, part)
        part.rename(root / job_id)
    return ids


def first(folder: Path = EXAMPLES) -> str | None:
    """The example a first visit opens on (None when none ship)."""
    examples = shipped(folder)
    return examples[0]["id"] if examples else None
