"""Jobs are folders on disk, so the job list survives page reloads and app restarts.

    <root>/<job id>/job.json      kind, parameters, their resolution, title, created (written once)
    <root>/<job id>/state.json    queued | running | done | failed | cancelled, progress, message, pid
    <root>/<job id>/run/          erasure jobs: the erasure run folder (erasure.RunFolder)
    <root>/<job id>/spectrum/     spectrum jobs: the spectrum folder (sensitivity.save_spectrum)

A job whose state.json says queued or running but that no live worker owns was cut off by a
crash or restart: it is reported as "interrupted" and can be resumed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from backends.storage import write_json

FINAL = ("done", "failed", "cancelled")
# <kind>-<date>-<time>-<counter>-<64 random bits>: the random part makes an id a capability (whoever has
# it may view the job: a shared link); ids made before it existed lack it and are shown to their owner only.
JOB_ID = re.compile(r"^[a-z]+-\d{8}-\d{6}-\d{3}(-[0-9a-f]{16})?$")


@dataclass
class JobInfo:
    id: str
    kind: str  # "erase" | "spectrum"
    title: str  # one line for the job list
    state: str  # queued | running | done | failed | cancelled | interrupted
    step: int  # work done (erasure steps, spectrum concepts)
    total: int  # work budget
    message: str
    created: str
    path: str
    run_s: float = 0.0  # seconds spent running, over every attempt (a resumed job adds its new attempt)
    phase: str = ""  # what part of the job runs ("erasing": a spectrum job's quick erasure; jobs.tasks)
    updated: float = 0.0  # when the state was last written (epoch seconds)
    eta_s: float | None = None  # seconds left, measured in this run (spectrum jobs); None: not known yet

    def to_dict(self) -> dict:
        return asdict(self)

    def elapsed(self, now: float | None = None) -> float:
        """Seconds spent running until `now` (default: now): a running job's time ticks between its state
        writes too (loading the model, building a latent bank and drawing pictures write none)."""
        if self.state != "running" or not self.updated:
            return self.run_s
        return self.run_s + max(0.0, (time.time() if now is None else now) - self.updated)


class JobFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.id = self.path.name

    @classmethod
    def create(cls, root: Path, kind: str, params: dict, title: str, client: str | None = None,
               resolved: dict | None = None) -> JobFolder:
        """A new job folder; `client` is an opaque key of the visitor who asked (quotas, cancel rights);
        `resolved` is the request's resolution at submit time, which the worker runs (jobs.tasks)."""
        if not kind.isalpha():  # the manager checks it against jobs.tasks.KINDS; this keeps ids parseable
            raise ValueError(f"a job kind is a word, got {kind!r}")
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1000):  # ids sort by creation time; the counter separates jobs of one second
            path = root / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{n:03d}-{secrets.token_hex(8)}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise RuntimeError("could not create a job folder: 1000 jobs started this second")
        job = cls(path)
        write_json(path / "job.json", {"kind": kind, "params": params, "title": title, "client": client,
                                       "created": time.strftime("%Y-%m-%d %H:%M:%S"), "resolved": resolved})
        job.set_state("queued")
        return job

    @property
    def record(self) -> dict:
        return json.loads((self.path / "job.json").read_text())

    @property
    def kind(self) -> str:
        return self.record["kind"]

    @property
    def owner(self) -> str | None:
        """The visitor key that started it; None for jobs made from Python or shipped (public, read-only)."""
        return self.record.get("client")

    def viewable_by(self, client: str | None) -> bool:
        """Python callers (None) see everything; a visitor sees its own jobs, public ones, and any job
        whose id it holds when that id carries a random part (a shared link)."""
        match = JOB_ID.match(self.id)
        return client is None or self.owner in (None, client) or bool(match and match.group(1))

    def changeable_by(self, client: str | None) -> bool:
        """Cancel, resume, rerun, delete: Python callers, or the visitor who started it."""
        return client is None or (self.owner is not None and self.owner == client)

    @property
    def run_path(self) -> Path:
        return self.path / "run"

    @property
    def spectrum_path(self) -> Path:
        return self.path / "spectrum"

    @property
    def quick_erasure_path(self) -> Path:
        """Spectrum jobs: the quick erasure's run folder (when the job names no erase job)."""
        return self.path / "erasure"

    def save_error(self, text: str) -> None:
        """The traceback of a failed job (error.txt), for whoever runs the server."""
        (self.path / "error.txt").write_text(text)

    def state(self) -> dict:
        try:
            return json.loads((self.path / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "interrupted", "step": 0, "total": 0, "message": "state file missing"}

    def set_state(self, state: str, step: int = 0, total: int = 0, message: str = "", run_s: float | None = None,
                  phase: str | None = None, eta_s: float | None = None) -> None:
        """Write the state; `run_s` (time spent running) and `phase` carry over from the last state when not
        given; `eta_s`: the seconds left when the job measured them."""
        last = self.state()
        run_s = last.get("run_s", 0.0) if run_s is None else run_s
        phase = last.get("phase", "") if phase is None else phase
        write_json(self.path / "state.json", {"state": state, "step": step, "total": total, "message": message,
                                              "run_s": round(run_s, 1), "phase": phase, "pid": os.getpid(),
                                              "eta_s": None if eta_s is None else round(eta_s, 1),
                                              "updated": time.time()})

    def info(self, live: bool) -> JobInfo:
        """`live`: a worker of this process owns the job (queued or running); otherwise an unfinished
        job is reported as interrupted."""
        rec, st = self.record, self.state()
        state = st["state"]
        if state not in FINAL and not live:
            state = "interrupted"
        step, total = st.get("step", 0), st.get("total", 0)
        if rec["kind"] == "erase":  # the erasure loop keeps its own step count, checkpoint by checkpoint
            from erasure import RunFolder

            step = max(step, RunFolder(self.run_path).status().get("step", 0))
        return JobInfo(self.id, rec["kind"], rec["title"], state, step, total, st.get("message", ""),
                       rec["created"], str(self.path), st.get("run_s", 0.0), st.get("phase", ""),
                       st.get("updated", 0.0), st.get("eta_s"))


def job_folders(root: Path) -> list[JobFolder]:
    """Every job under root, newest first: ids are <kind>-<date>-<time>-<counter>, so the part after the
    kind sorts by creation time whatever the kind."""
    if not root.exists():
        return []
    paths = [p for p in root.iterdir() if p.is_dir() and JOB_ID.match(p.name) and (p / "job.json").exists()]
    return [JobFolder(p) for p in sorted(paths, key=lambda p: p.name.split("-", 1)[1], reverse=True)]


def find_job(root: Path, job_id: str) -> JobFolder:
    """The job of that id; the message never names the jobs folder (it is a server path)."""
    if job_id is not None and not isinstance(job_id, str):
        raise KeyError(f"a job id is text like 'erase-20261201-120000-000', got a {type(job_id).__name__}; "
                       "pick one from the job list")
    job_id = (job_id or "").strip()
    if not job_id:
        raise KeyError("no job chosen; pick one from the job list")
    if not JOB_ID.match(job_id) or not (root / job_id / "job.json").exists():
        shown = job_id if len(job_id) <= 40 else job_id[:40] + "…"
        raise KeyError(f"no job {shown!r}; pick one from the job list")
    return JobFolder(root / job_id)
