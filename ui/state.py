"""What the app's handlers share: the machine's limits, the jobs folder and its manager, the one loaded
pipeline, and the cancel tokens of running Generate / Compare calls, per browser session.

Handlers read these through the module (`state.manager()`, `state.PIPELINES`), so a test swaps one by
patching this module. Environment variables: CSE_JOBS_DIR, CSE_MODEL_DIRS, CSE_DTYPE, CSE_MAX_* (jobs.limits).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from backends import PRESETS, SamplerSettings, check_device
from backends.cancel import PRIORITY, CancelToken, FairTurns
from backends.pipeline_cache import PipelineCache
from jobs import JobManager, Limits, QuotaError
from jobs.store import JobFolder

from . import inputs, visitors
from .guard import register_root

LIMITS = Limits.from_env()
JOBS_DIR = os.environ.get("CSE_JOBS_DIR", str(Path(__file__).resolve().parent.parent / "runs" / "jobs"))
register_root(JOBS_DIR, "the jobs folder")
# Local diffusers folders the app may open (os.pathsep-separated); none by default: on a public Space a
# typed server path must not be a way to probe the file system.
MODEL_DIRS = [Path(os.path.realpath(p)) for p in os.environ.get("CSE_MODEL_DIRS", "").split(os.pathsep) if p]
# Hub repo ids a visitor may name (comma- or space-separated), each downloaded on first use; by default
# the presets' own: an online Space must not download whatever a visitor types.
ALLOWED_MODELS = set(os.environ.get("CSE_ALLOWED_MODELS", "").replace(",", " ").split()) or {
    source for name, source in PRESETS.items() if name != "embedded"}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # jobs and grids run here (a GPU Space: cuda)
# Weights' dtype of erasure and spectrum jobs; a FLUX Space sets CSE_DTYPE=bfloat16 (float32 weights: ~67 GB);
# trained tensors stay float32 whatever it is (erasure.master)
JOB_DTYPE = os.environ.get("CSE_DTYPE", "float32")
PIPELINES = PipelineCache()  # one loaded pipeline, keyed by (model, device, dtype) chosen in the Model tab
_manager: JobManager | None = None
_manager_lock = threading.Lock()
_sampling: dict[str, set[CancelToken]] = {}  # browser session -> cancel tokens of its running generate/compare


def manager() -> JobManager:
    """The job manager of JOBS_DIR, started on first use (its worker runs the queued jobs), with the shipped
    examples copied in first: it is published only once they are all there, so no request of a first visit
    looks an example up mid-copy."""
    global _manager
    with _manager_lock:
        if _manager is None:
            from jobs import examples

            examples.install(Path(JOBS_DIR))
            _manager = JobManager(JOBS_DIR, limits=LIMITS)
    return _manager


def pipeline(model: str, device: str = DEVICE, dtype: str = "float32"):
    """The pipeline for the Model tab's choice; the device is checked here, the dtype by the cache
    (torch_dtype), both before anything loads."""
    return PIPELINES.get(model, check_device(inputs.choice(device, "Device", ("cpu", "cuda"))), dtype)


def model_name(value) -> str:
    """A preset, an allowed hub id or an allowed local folder (ui.inputs.model_name)."""
    return inputs.model_name(value, PRESETS, MODEL_DIRS, ALLOWED_MODELS)


def sampler(steps, guidance, label: str = "Sampler steps") -> SamplerSettings:
    return SamplerSettings(steps=inputs.whole(steps, label, 1, LIMITS.max_sampler_steps),
                           guidance=inputs.real(guidance, "Guidance", 0.0, 50.0))


def enlarge(image: np.ndarray, size: int = 256) -> np.ndarray:
    scale = max(1, size // image.shape[0])  # 32-px images are shown enlarged, pixel-exact
    return image.repeat(scale, 0).repeat(scale, 1)


def session(request: gr.Request | None) -> str:
    """The browser session a request came from ("local" for calls from Python)."""
    return getattr(request, "session_hash", None) or "local"


@contextlib.contextmanager
def cancellable(request: gr.Request | None, background: bool = False):
    """A cancel token for one generate/compare of this browser session, which `cancel_sampling` sets;
    `background` (Compare, the Results grid): it also gives way to visitors' Generate and Load; otherwise
    (Generate) it passes TURNS to a waiting visitor at each sampler step."""
    key = session(request)
    token = CancelToken(background=True) if background else CancelToken(turns=TURNS)
    _sampling.setdefault(key, set()).add(token)
    try:
        yield token
    finally:
        _sampling[key].discard(token)


TURNS = FairTurns()  # Load and Generate of every visitor take turns on the one pipeline, step by step
INTERACTIVE_SLOTS = 8  # Load/Generate requests in their handlers at once (they take turns there)
CHUNK_IMAGES = 2  # a Generate samples this many images per call: a step costs about what another visitor's does
_in_flight: dict[str, int] = {}  # visitor or address key -> its Load/Generate requests under way
_in_flight_lock = threading.Lock()


@contextlib.contextmanager
def interactive(request: gr.Request | None):
    """One Load or Generate in flight per visitor (two per address), refused at once beyond; while it runs,
    background work (jobs, Compare) gives way at its next step (backends.cancel.PRIORITY)."""
    visitor, address = who(request)
    with _in_flight_lock:
        if visitor is not None and _in_flight.get(visitor, 0) >= 1:
            raise QuotaError("you already have a Load or Generate under way; wait for it, or press Stop")
        if address is not None and _in_flight.get(address, 0) >= 2:
            raise QuotaError("your network address already has 2 Loads or Generates under way; wait for one")
        for key in (visitor, address):
            if key is not None:
                _in_flight[key] = _in_flight.get(key, 0) + 1
    try:
        with PRIORITY.interactive():
            yield
    finally:
        with _in_flight_lock:
            for key in (visitor, address):
                if key is not None:
                    _in_flight[key] -= 1


class StepBudget:
    """A token bucket of image-steps (images x sampler steps) per visitor (`per_minute` big, refilled at
    `per_minute` a minute) and per network address (twice that); a request that would overdraw either is
    refused with the wait."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._level: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def spend(self, request, cost: int) -> None:
        """Take `cost` from the visitor's and the address's buckets. A request larger than a bucket still
        runs when the bucket is full; the bucket then goes below zero and refills before the next one."""
        visitor, address = who(request)
        sizes = {k: size for k, size in ((visitor, self.per_minute), (address, 2 * self.per_minute)) if k is not None}
        now = time.monotonic()
        with self._lock:
            levels = {k: min(size, tokens + (now - at) * size / 60)
                      for k, size in sizes.items() for tokens, at in [self._level.get(k, (size, now))]}
            for k, size in sizes.items():
                need = min(cost, size)  # a request larger than the bucket needs it full
                if levels[k] < need:
                    wait = math.ceil(60 * (need - levels[k]) / size)
                    raise QuotaError(f"you sampled more than your budget of {self.per_minute:,} image-steps (images x "
                                     f"sampler steps) per minute; this asks for {cost:,}: try again in {wait} s, "
                                     "or ask for fewer images or steps")
            for k, v in levels.items():
                self._level[k] = (v - cost, now)


BUDGET = StepBudget(LIMITS.max_image_steps_per_minute)


def cancel_session(request: gr.Request | None) -> int:
    """Set every cancel token of this browser session; how many there were."""
    tokens = list(_sampling.get(session(request)) or ())
    for token in tokens:
        token.cancel()
    return len(tokens)


def who(request) -> tuple[str | None, str | None]:
    """(visitor, address) keys of a request (ui.visitors); (None, None) for calls from Python."""
    return visitors.visitor(request), visitors.address(request)


def job(job_id, request, label: str = "Job", kind: str | None = None) -> JobFolder:
    """A checked job id's folder, if the request's visitor may view it (JobManager.view); `kind`: it
    must be of that kind."""
    found = manager().view(inputs.job_id(job_id, label), visitors.visitor(request))
    if kind is not None and found.kind != kind:
        raise ValueError(f"{found.id} is a {found.kind} job; pick {'an' if kind[0] in 'aeiou' else 'a'} {kind} job")
    return found


def erase_job(job_id, request=None) -> JobFolder:
    """A checked erase job id's folder (any state) that the request's visitor may view."""
    return job(job_id, request, "Erase job", "erase")


def done_run(job_id, request=None) -> Path:
    """The run folder of a finished erase job that the request's visitor may view."""
    found = erase_job(job_id, request)
    from erasure import RunFolder

    if not RunFolder.finished(found.run_path):
        raise ValueError(f"{found.id} is not a finished erase job; pick one whose state is done")
    return found.run_path


def run_label(job_id: str, request=None) -> str:
    """What an erased model is, for labels: "AP · star · 120 steps" (the job id only if it has no record)."""
    from erasure import RunFolder

    job = erase_job(job_id, request)
    params = job.record["params"]
    steps = params.get("overrides", {}).get("steps")
    steps = RunFolder(job.run_path).record_or_empty().get("config", {}).get("steps", steps)
    return " · ".join([params["method"].upper(), ", ".join(params["targets"])] + ([f"{steps} steps"] if steps else []))


def run_spectrum(job_id: str, done: bool = False, request=None) -> str:
    """The newest spectrum job of a finished erase job's run that the request's visitor sees ("" if none;
    `done`: only a finished one)."""
    for info in manager().jobs("spectrum", client=visitors.visitor(request)):
        if manager().folder(info.id).record["params"].get("run") == job_id and (not done or info.state == "done"):
            return info.id
    return ""
