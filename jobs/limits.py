"""Limits for a shared machine (a public Space): how much work one request may ask for.

Every limit has a documented default and an environment variable the Space owner sets to change it
(README, "Limits on a shared machine"). The app checks each request against these before any work
starts; the job manager enforces the job quotas. The libraries and CLIs keep their own, wider bounds.

    limits = Limits.from_env()        # CSE_MAX_ERASE_STEPS=5000 ... override the defaults
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from backends.generate import MAX_SAMPLER_STEPS
from erasure.config import MAX_STEPS as MAX_ERASE_STEPS
from evaluation.compare import MAX_MODELS, MAX_PROMPTS, MAX_SEEDS
from sensitivity.rows import MAX_K
from sensitivity.vocab import MAX_CONCEPTS


def _limit(default: int, env: str, doc: str, ceiling: int | None = None):
    """A limit; `ceiling` is the libraries' own bound on the same quantity, which no setting can raise."""
    return field(default=default, metadata={"env": env, "doc": doc, "ceiling": ceiling})


@dataclass(frozen=True)
class Limits:
    max_sampler_steps: int = _limit(100, "CSE_MAX_SAMPLER_STEPS", "sampler steps of one image (generate, compare, spectrum)",
                                    MAX_SAMPLER_STEPS)
    max_images: int = _limit(16, "CSE_MAX_IMAGES", "images of one Generate")
    max_prompts: int = _limit(12, "CSE_MAX_PROMPTS", "prompts of one Compare", MAX_PROMPTS)
    max_seeds: int = _limit(8, "CSE_MAX_SEEDS", "seeds per prompt of one Compare", MAX_SEEDS)
    max_compare_runs: int = _limit(4, "CSE_MAX_COMPARE_RUNS", "erased models in one Compare", MAX_MODELS)
    max_compare_images: int = _limit(240, "CSE_MAX_COMPARE_IMAGES", "prompts x seeds x models of one Compare")
    max_erase_steps: int = _limit(2000, "CSE_MAX_ERASE_STEPS", "optimisation steps of one erasure job", MAX_ERASE_STEPS)
    max_concepts: int = _limit(5000, "CSE_MAX_CONCEPTS", "concepts (vocabulary size) of one spectrum job", MAX_CONCEPTS)
    max_k: int = _limit(16, "CSE_MAX_K", "samples per concept of one spectrum job", MAX_K)
    max_image_steps_per_minute: int = _limit(6000, "CSE_MAX_IMAGE_STEPS_PER_MINUTE",
                                             "images x sampler steps one visitor (and one address) may sample per "
                                             "minute in Generate, Compare and Results grids; a larger request runs "
                                             "on a full budget, then it refills")
    max_job_image_steps: int = _limit(200_000, "CSE_MAX_JOB_IMAGE_STEPS",
                                      "images x sampler steps of one spectrum job (concepts x k x steps x 2 models); "
                                      "one visitor's queued and running jobs: twice that")
    max_upload_bytes: int = _limit(1_000_000, "CSE_MAX_UPLOAD_BYTES", "bytes of an uploaded vocabulary file")
    max_active_erase: int = _limit(4, "CSE_MAX_ACTIVE_ERASE", "erasure jobs queued or running at once (all visitors)")
    max_active_spectrum: int = _limit(4, "CSE_MAX_ACTIVE_SPECTRUM", "spectrum jobs queued or running at once (all visitors)")
    max_jobs_per_client: int = _limit(2, "CSE_MAX_JOBS_PER_CLIENT",
                                      "jobs one visitor may have queued or running (one network address: twice that)")
    max_jobs_per_hour: int = _limit(20, "CSE_MAX_JOBS_PER_HOUR",
                                    "jobs one visitor may ask for in an hour, refused and failed ones included "
                                    "(one network address: twice that)")
    max_job_folders_per_client: int = _limit(30, "CSE_MAX_JOB_FOLDERS_PER_CLIENT", "jobs one visitor may keep on the server")
    max_job_folders: int = _limit(500, "CSE_MAX_JOB_FOLDERS",
                                  "jobs kept on the server; beyond it a new job expires visitors' oldest finished ones")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Defaults, overridden by each limit's CSE_MAX_* variable; a bad value stops the app at start."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None:
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ValueError(f"{f.metadata['env']} must be a whole number, got {raw!r}") from None
            if values[f.name] < 1:
                raise ValueError(f"{f.metadata['env']} must be >= 1, got {raw!r}")
            ceiling = f.metadata["ceiling"]
            if ceiling is not None and values[f.name] > ceiling:
                raise ValueError(f"{f.metadata['env']} must be <= {ceiling:,} (the libraries' own bound), got {raw!r}")
        return cls(**values)

    def active_cap(self, kind: str) -> int:
        return getattr(self, f"max_active_{kind}")  # a limit per job kind (jobs.tasks.KINDS; test)

    @classmethod
    def table(cls) -> str:
        """The README's table of limits (variable, default, what it bounds)."""
        rows = [f"| `{f.metadata['env']}` | {f.default} | {f.metadata['doc']} |" for f in dataclasses.fields(cls)]
        return "| variable | default | bounds |\n|---|---|---|\n" + "\n".join(rows)
