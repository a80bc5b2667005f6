"""What each job kind does: check its parameters (at submit time, before anything is queued or
written) and run it (in the worker), reporting progress through `report(step, total, message)`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from backends.vocab import check_known_concepts
from sensitivity import SpectrumConfig

from .store import JobFolder

Report = Callable[[int, int, str], None]
CHECKPOINTS_PER_JOB = 10
SPECTRUM_FIELDS = {f.name for f in dataclasses.fields(SpectrumConfig)} - {"targets"}


# ---------------------------------------------------------------- erasure
def check_erase(params: dict, root: Path) -> tuple[str, int]:
    """Validate an erasure request; returns (title, step budget). Raises ValueError with a fix."""
    from backends import torch_dtype
    from erasure import resolve_config

    torch_dtype(params.get("dtype", "float32"))  # a bad dtype fails at submit time, not in the worker
    targets = [t.strip() for t in params.get("targets", []) if isinstance(t, str)]
    config = resolve_config(params["method"], params["model"], params.get("presets", ""), targets=targets,
                            **params.get("overrides", {}))
    check_known_concepts(params["model"], config.targets)
    # a job checkpoints ten times per run unless asked otherwise: a restart loses at most a tenth of it
    params.setdefault("overrides", {}).setdefault("checkpoint_every", max(1, config.steps // CHECKPOINTS_PER_JOB))
    title = f"{params['method']} erases {', '.join(config.targets)} from {params['model']} ({config.steps} steps)"
    return title, config.steps


def run_erase(job: JobFolder, cancel, report: Report) -> None:
    """Start the erasure, or resume it from its latest checkpoint when the run folder exists."""
    from erasure import erase, resume

    p = job.record["params"]
    throttle = _Throttle(report)

    def on_event(event) -> None:
        throttle(event.step, event.total, event.concept or "", force=event.kind != "step")

    if (job.run_path / "config.json").exists():
        resume(job.run_path, callback=on_event, cancel=cancel, device=p.get("device", "cpu"))
    else:
        erase(p["model"], p["method"], p["targets"], p.get("presets", ""), job.run_path, callback=on_event,
              cancel=cancel, device=p.get("device", "cpu"), dtype=p.get("dtype", "float32"), **p.get("overrides", {}))


# ---------------------------------------------------------------- spectrum
def spectrum_config(params: dict) -> SpectrumConfig:
    unknown = set(params.get("config", {})) - SPECTRUM_FIELDS
    if unknown:
        raise ValueError(f"unknown spectrum setting(s) {sorted(unknown)}; valid: {sorted(SPECTRUM_FIELDS)}")
    targets = [t.strip() for t in params.get("targets", []) if isinstance(t, str)]
    return SpectrumConfig(targets=targets, **params.get("config", {})).resolved(params["model"])


def spectrum_concepts(params: dict, config: SpectrumConfig) -> list[str] | None:
    """The spectrum's rows: from the request's own word list (an upload the app read) or the named
    vocabulary; None for nearest-K, which needs the model first."""
    from sensitivity.spectrum import concept_list
    from sensitivity.vocab import validate_concepts, with_neutral

    if params.get("words") is not None:
        return validate_concepts(with_neutral(list(params["words"]), config.targets), source=config.vocab)
    return None if config.vocab.startswith("nearest-") else concept_list(config)


def check_spectrum(params: dict, root: Path) -> tuple[str, int]:
    """Validate a spectrum request; returns (title, number of concepts or 0 when only known later)."""
    config = spectrum_config(params)
    check_known_concepts(params["model"], config.targets)
    run = params.get("run")
    if run:
        _erasure_run_of(root, run)
    n = len(spectrum_concepts(params, config) or [])  # a bad vocabulary fails here
    what = f"job {run}" if run else "a quick ESD erasure"
    return f"spectrum of {', '.join(config.targets)} ({config.vocab}, k={config.k}) after {what}", n


def run_spectrum(job: JobFolder, cancel, report: Report) -> None:
    """Compute and save a spectrum; with no run given, erase the targets with ESD (fast) first."""
    import sensitivity
    from sensitivity.spectrum import quick_erasure

    p = job.record["params"]
    config = spectrum_config(p)
    root = job.path.parent
    if p.get("run"):
        run = _erasure_run_of(root, p["run"])
    elif (job.path / "erasure" / "result.safetensors").exists():
        run = job.path / "erasure"  # a resumed job keeps its finished quick erasure
    else:
        import shutil

        shutil.rmtree(job.path / "erasure", ignore_errors=True)  # a half-done quick erasure restarts
        report(0, 0, "erasing with ESD (fast) first")
        run = quick_erasure(p["model"], config.targets, job.path / "erasure", template=config.template).path
    t0 = time.perf_counter()
    throttle = _Throttle(report)
    df = sensitivity.compute_spectrum(p["model"], run, config, device=p.get("device", "cpu"), cancel=cancel,
                                      progress=lambda done, total, msg: throttle(done, total, msg, force=done == total),
                                      concepts=spectrum_concepts(p, config))
    sensitivity.save_spectrum(df, job.spectrum_path, config, p["model"], str(run),
                              {"wall_s": round(time.perf_counter() - t0, 1), "job": job.id})


def _erasure_run_of(root: Path, job_id: str) -> Path:
    """The finished erasure run of an erase job (a spectrum needs the erased weights)."""
    from .store import find_job

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
