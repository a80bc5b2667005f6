"""What each job kind does: check its parameters (at submit time, before anything is queued or
written), resolving them once into what the job stores (job.json's "resolved"), and run that (in the
worker) without resolving again, reporting progress through `report(step, total, message, phase)`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .store import JobFolder, find_job

Report = Callable[..., None]  # report(step, total, message, phase="", eta_s=None) -> None
ERASING = "erasing"  # a spectrum job's phase while its quick erasure runs (steps, not concepts, in its message)
JUDGING = "judging"  # an erase job's phase after training: its world's concepts drawn and judged (evaluation.damage)
# Seeds per concept when a finished erasure on a world model is judged over every concept of its world
# (evaluation.damage: 2 models x 23 ShapesWorld concepts x this many images); 0 skips the judging
JUDGE_SEEDS = int(os.environ.get("CSE_JUDGE_SEEDS", "4"))
CHECKPOINTS_PER_JOB = 10  # a job checkpoints ten times per run: a restart loses at most a tenth of it


class Checked(NamedTuple):
    """A request checked at submit time: its job-list title, its work budget (steps, concepts; 0 when only
    known later) and its resolution as JSON, which the worker runs."""

    title: str
    total: int
    resolved: dict


# ---------------------------------------------------------------- erasure
def check_erase(params: dict, root: Path, limits=None) -> Checked:
    """Validate and resolve an erasure request (erasure.EraseRequest, as JSON) against the server's step
    limit (`limits`: jobs.Limits, None for no bound). Raises ValueError with a fix."""
    import dataclasses

    from erasure import EraseRequest

    request = EraseRequest.from_dict(params)
    request = dataclasses.replace(request, checkpoints_per_run=request.checkpoints_per_run or CHECKPOINTS_PER_JOB)
    # a bad dtype, device, setting, unknown word or too many steps fails at submit time
    resolved = request.check(max_steps=limits.max_erase_steps if limits is not None else None)
    return Checked(resolved.title(), resolved.steps, resolved.to_dict())


def run_erase(job: JobFolder, cancel, report: Report) -> None:
    """Start the erasure, or resume it from its latest checkpoint when the run folder exists."""
    import erasure

    throttle = _Throttle(report)

    def on_event(event) -> None:
        throttle(event.step, event.total, event.concept or "", force=event.kind != "step")

    resolved = _resolved_erase(job)
    erasure.train(resolved, job.run_path, callback=on_event, cancel=cancel, resume_existing=True)
    judge_erasure(job.run_path, resolved.request, cancel, lambda message: report(resolved.steps, resolved.steps,
                                                                                  message, phase=JUDGING))


def judge_erasure(run: Path, request, cancel, say: Callable[[str], None]) -> None:
    """A world model's finished run judged over every concept of its world (evaluation.damage), once, and
    kept in the run folder: what the Results headline says and which concepts its grid adds. Models with no
    world classifier (hub models) are not judged."""
    from backends import load_classifier, load_pipeline, torch_dtype
    from backends.prompts import model_traits
    from erasure import RunFolder, erased_copy
    from evaluation import damage

    folder = RunFolder(run)
    if not JUDGE_SEEDS or model_traits(request.model).world != "shapes" or folder.damage() is not None:
        return
    say("judging every concept of the world: 0 %")
    base = load_pipeline(request.model, device=request.device, dtype=torch_dtype(request.dtype))
    progress = _Throttle(lambda done, total, message, phase="": say(message))
    rows = damage.measure_damage(base, erased_copy(base, run), load_classifier(), request.targets, JUDGE_SEEDS,
                                 cancel=cancel,
                                 progress=lambda done, total: progress(
                                     done, total, f"judging every concept of the world: {100 * done // total} %"))
    folder.save_damage(damage.to_json(rows))


def _resolved_erase(job: JobFolder):
    """The job's stored resolution; a job stored before jobs kept one is checked now (its only resolution)."""
    from erasure import ResolvedErase

    stored = job.record.get("resolved") or check_erase(job.record["params"], job.path.parent).resolved
    return ResolvedErase.from_dict(stored)


# ---------------------------------------------------------------- spectrum
def spectrum_request(params: dict, root: Path):
    """The job's sensitivity.SpectrumRequest: its `run` names an erase job here, which must be finished."""
    from sensitivity import SpectrumRequest

    run = params.get("run")
    return SpectrumRequest.from_dict({**params, "run": str(_erasure_run_of(root, run)) if run else None})


def check_spectrum(params: dict, root: Path, limits=None) -> Checked:
    """Validate and resolve a spectrum request; its total is the number of concepts (0 when only known
    later: nearest-K). The server's concept limit is the manager's (it counts vocabulary words only)."""
    request = spectrum_request(params, root)
    resolved = request.check()  # a bad setting, word or vocabulary fails here
    config = resolved.config
    if params.get("run"):
        ran_on = find_job(root, params["run"]).record["params"]["model"]
        if ran_on != request.model:
            raise ValueError(f"job {params['run']} erased {ran_on!r}, not {request.model!r}: pick an erasure of "
                             f"{request.model!r}, or choose {ran_on!r} as the model")
    # the erasure by its title, not its id: typing an erase job's id in a picker must match that job alone
    what = (find_job(root, params["run"]).record["title"] if params.get("run")
            else f"a quick {resolved.erasure.request.method.upper()} erasure")
    return Checked(f"spectrum of {', '.join(config.targets)} ({config.vocab}, k={config.k}) after {what}",
                   len(resolved.concepts or []), resolved.to_dict())


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

    throttle, rate = _Throttle(report), Rate()

    def progress(done: int, total: int, message: str) -> None:
        phase = ERASING if is_quick_step(message) else ""
        if phase:  # the erasure's steps are in the message; the job counts concepts
            done, total = 0, 0
        throttle(done, total, message, force=bool(total) and done == total, phase=phase,
                 eta_s=None if phase else rate.left(done, total))

    stored = job.record.get("resolved") or check_spectrum(job.record["params"], job.path.parent).resolved
    resolved = sensitivity.ResolvedSpectrum.from_dict(stored)  # a job stored before jobs kept it: checked now
    first = f"erasing with {resolved.erasure.request.method.upper()} (fast) first" if resolved.erasure else ""
    sensitivity.measure(resolved, job.spectrum_path, progress=progress, cancel=cancel,
                        on_erasure=lambda: report(0, 0, first, phase=ERASING), extra={"job": job.id},
                        erasure_dir=job.quick_erasure_path)


def _erasure_run_of(root: Path, job_id: str) -> Path:
    """The finished erasure run of an erase job (a spectrum needs the erased weights)."""
    from erasure import RunFolder

    job = find_job(root, job_id)
    if job.kind != "erase":
        raise ValueError(f"job {job_id} is a {job.kind} job; choose a finished erase job")
    if not RunFolder.finished(job.run_path):
        raise ValueError(f"erase job {job_id} has not finished; resume it or choose a finished one")
    return job.run_path


class Rate:
    """Seconds left of a count of work, measured from the first report of it: (total - done) x the time per
    unit since then (the quick erasure before it and the set-up are not counted in)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.first: tuple[int, float] | None = None  # (units done, time) at the first report

    def left(self, done: int, total: int) -> float | None:
        now = self.clock()
        if self.first is None or done < self.first[0]:
            self.first = (done, now)
            return None
        units, seconds = done - self.first[0], now - self.first[1]
        return (total - done) * seconds / units if units > 0 else None


class _Throttle:
    """Forward progress at most twice a second (and always when forced), so a fast GPU loop
    does not spend its time rewriting state.json."""

    def __init__(self, report: Report, every_s: float = 0.5):
        self.report, self.every_s, self.last = report, every_s, 0.0

    def __call__(self, step: int, total: int, message: str, force: bool = False, phase: str = "", **more) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            self.report(step, total, message, phase=phase, **more)


class JobKind(NamedTuple):
    """What a job kind does: check (and resolve) a request at submit time, run it in the worker."""

    check: Callable[..., Checked]
    run: Callable[[JobFolder, object, Report], None]


# the one table of job kinds: the manager, the job list's filter and the limits read it
KINDS = {"erase": JobKind(check_erase, run_erase), "spectrum": JobKind(check_spectrum, run_spectrum)}
