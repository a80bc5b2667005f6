"""Make the shipped example jobs (jobs.examples) from scratch: erase, judge, spectrum and draw each, as the app's
worker and Results view do, then copy the finished job folders (without checkpoints) to assets/examples.

    python -m benchmarks.examples            # ~15 min on 2 CPU cores; rewrites assets/examples

Each example is a real job of the job manager (a Python caller's: owned by nobody, so shared and read-only in
the app); its grid is the Results view's default one, drawn by the view's own handler and cached in the run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

# (label, method, targets, presets, overrides): AP and ESD erasing a shape, AP a colour, two concepts at once
EXAMPLES = [
    ("AP erases star", "ap", ("star",), "object,fast", {"steps": 100, "snapshot_every": 25}),
    ("ESD erases star", "esd", ("star",), "object,fast", {"steps": 100}),
    ("AP erases red", "ap", ("red",), "object,fast", {"steps": 100, "snapshot_every": 25}),
    ("AP erases star and heart", "ap", ("star", "heart"), "object,fast,multi", {"steps": 60, "snapshot_every": 30}),
]
SPECTRUM = {"vocab": "world", "k": 4, "steps": 20, "dtype": "float32"}  # the Results view's defaults
GRID_SEEDS = 4


def make(root: Path, out: Path) -> list[dict]:
    os.environ["CSE_JOBS_DIR"] = str(root)  # the Results view's handlers read the jobs folder from here
    from erasure import EraseRequest
    from jobs import JobManager
    from sensitivity import SpectrumRequest
    from ui import results_tab, state

    state._manager = manager = JobManager(root)  # no limits, and not the shipped examples being remade
    made = []
    for label, method, targets, presets, overrides in EXAMPLES:
        t0 = time.time()
        request = EraseRequest("embedded", method, targets, presets, overrides)
        job = manager.submit("erase", request.to_dict())
        _finished(manager, job)
        spectrum = SpectrumRequest("embedded", targets, SPECTRUM).to_dict() | {"run": job}
        _finished(manager, manager.submit("spectrum", spectrum))
        view = results_tab.results_summary(job)
        results_tab.results_grid(job, view.prompts, GRID_SEEDS, "cpu", "float32", progress=lambda *a, **k: None)
        made.append({"id": job, "label": label, "made_s": round(time.time() - t0, 1)})
        print(f"{label}: {job} in {made[-1]['made_s']} s", flush=True)
    return made


def _finished(manager, job_id: str) -> None:
    info = manager.wait(job_id)
    if info.state != "done":
        raise RuntimeError(f"example job {job_id} ended {info.state}: {info.message}")


def ship(root: Path, made: list[dict], out: Path) -> None:
    """Copy the example jobs and the spectrum jobs attached to them, checkpoints left out."""
    from backends.storage import write_json

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for job in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        shutil.copytree(job, out / job.name, ignore=shutil.ignore_patterns("checkpoint*", "*.part", "latents*"))
    write_json(out / "examples.json", [{"id": m["id"], "label": m["label"]} for m in made])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "examples")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jobs"
        made = make(root, a.out)
        ship(root, made, a.out)
    print(f"wrote {len(made)} examples to {a.out}")


if __name__ == "__main__":
    main()
