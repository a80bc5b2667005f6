"""What each job kind does: check its parameters (at submit time, before anything is queued or
written) and run it (in the worker), reporting progress through `report(step, total, message)`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .store import JobFolder, find_job

Report = Callable[[int, int, str], None]
CHECKPOINTS_PER_JOB = 10


# ---------------------------------------------------------------- erasure
def check_erase(params: dict, root: Path) -> tuple[str, int]:
    """Validate an erasure request (erasure.EraseRequest, as JSON); returns (title, step budget).
    Raises ValueError with a fix. Fills in the job's checkpoint cadence."""
    from erasure import EraseRequest

    request = EraseRequest.from_dict(params)
    config = request.check()  # a bad dtype, device, setting or unknown word fails at submit time
    if "checkpoint_every" not in request.overrides:
        # a job checkpoints ten times per run: a restart loses at most a tenth of it
        params["overrides"] = {**request.overrides, "checkpoint_every": max(1, config.steps // CHECKPOINTS_PER_JOB)}
    title = f"{request.method} erases {', '.join(config.targets)} from {request.model} ({config.steps} steps)"
    return title, config.steps


def run_erase(job: JobFolder, cancel, report: Report) -> None:
    """Start the erasure, or resume it from its latest checkpoint when the run folder exists."""
    import erasure

    throttle = _Throttle(report)

    def on_event(event) -> None:
        throttle(event.step, event.total, event.concept or "", force=event.kind != "step")

    request = erasure.EraseRequest.from_dict(job.record["params"])
    erasure.run(request, job.run_path, callback=on_event, cancel=cancel, resume_existing=True)


# ---------------------------------------------------------------- spectrum
def spectrum_request(params: dict, root: Path):
    """The job's sensitivity.SpectrumRequest: its `run` names an erase job here, which must be finished."""
    from sensitivity import SpectrumRequest

    run = params.get("run")
    return SpectrumRequest.from_dict({**params, "run": str(_erasure_run_of(root, run)) if run else None})


def check_spectrum(params: dict, root: Path) -> tuple[str, int]:
    """Validate a spectrum request; returns (title, number of concepts or 0 when only known later)."""
    from sensitivity.spectrum import quick_method

    request = spectrum_request(params, root)
    config, concepts = request.check()  # a bad setting, word or vocabulary fails here
    if params.get("run"):
        ran_on = find_job(root, params["run"]).record["params"]["model"]
        if ran_on != request.model:
            raise ValueError(f"job {params['run']} erased {ran_on!r}, not {request.model!r}: pick an erasure of "
                             f"{request.model!r}, or choose {ran_on!r} as the model")
    what = f"job {params['run']}" if params.get("run") else f"a quick {quick_method(request.model).upper()} erasure"
    return f"spectrum of {', '.join(config.targets)} ({config.vocab}, k={config.k}) after {what}", len(concepts or [])


def vocabulary_words(params: dict, total: int) -> int:
    """The words of a spectrum's vocabulary among its `total` rows (the neutral concepts and the targets
    are added to every spectrum): what the concept limit bounds."""
    from sensitivity.vocab import NEUTRAL

    return max(0, total - len(set(NEUTRAL) | set(params.get("targets") or ())))


def run_spectrum(job: JobFolder, cancel, report: Report) -> None:
    """Compute and save a spectrum; with no run given, erase the targets with the quick method first (ESD
    fast; MCE on FLUX; a resumed job keeps a finished quick erasure)."""
    import sensitivity
    from sensitivity.request import is_quick_step
    from sensitivity.spectrum import quick_method

    throttle = _Throttle(report)

    def progress(done: int, total: int, message: str) -> None:
        if is_quick_step(message):  # the erasure's steps are in the message; the job counts concepts
            done, total = 0, 0
        throttle(done, total, message, force=bool(total) and done == total)

    request = spectrum_request(job.record["params"], job.path.parent)
    first = f"erasing with {quick_method(request.model).upper()} (fast) first"
    sensitivity.run(request, job.spectrum_path, progress=progress, cancel=cancel,
                    on_erasure=lambda: report(0, 0, first), extra={"job": job.id},
                    erasure_dir=job.path / "erasure")


def _erasure_run_of(root: Path, job_id: str) -> Path:
    """The finished erasure run of an erase job (a spectrum needs the erased weights)."""
    job = find_job(root, job_id)
    if job.kind != "erase":
        raise ValueError(f"job {job_id} is a {job.kind} job; choose a finished erase job")
    if not (job.run_path / "result.safetensors").exists():
        raise ValueError(f"erase job {job_id} has not finished; resume it or choose a finished one")
    return job.run_path


class _Throttle:
    """Forward progress at most twice a second (and always when forced), so a fast GPU loop
    does not spend its time rewriting state.json."""

    def __init__(self, report: Report, every_s: float = 0.5):
        self.report, self.every_s, self.last = report, every_s, 0.0

    def __call__(self, step: int, total: int, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            self.report(step, total, message)


CHECKS = {"erase": check_erase, "spectrum": check_spectrum}
RUNNERS = {"erase": run_erase, "spectrum": run_spectrum}
