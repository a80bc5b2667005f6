"""One erasure request, as the CLI, a background job and the app ask for it (docs/design.md §3.1):
`EraseRequest.check` is the one validation and resolution, and returns a `ResolvedErase` that carries
everything derived from the request (config, the layer of each value, family, step total, checkpoint
cadence) to `train`, which resolves nothing again.

    request = EraseRequest(model="embedded", method="ap", targets=("star",), presets="object,fast")
    resolved = request.check()                    # a ValueError saying what to fix; nothing loaded or written
    train(resolved, "runs/star")                  # erases (run(request, out) is the two in one)

Both travel as JSON (a job's parameters and its resolved request): `to_dict` / `from_dict`, which refuse
unknown keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import EraseConfig
from .events import Callback, CancelToken
from .registry import get_method
from .runs import KEEP_CHECKPOINTS, RunFolder

MULTI = "multi"  # the preset of several targets sharing turns, each its one-target step budget (erasure.config)


@dataclass(frozen=True)
class EraseRequest:
    model: str = "embedded"  # preset, local diffusers folder or hub repo id
    method: str = "ap"  # a registered method (erasure.list_methods)
    targets: tuple[str, ...] = ()  # concepts to erase
    presets: str = ""  # comma-separated presets, e.g. "object,fast"
    overrides: dict = field(default_factory=dict)  # any config setting of the method
    device: str = "cpu"  # cpu, cuda or cuda:N
    dtype: str = "float32"  # the weights' dtype when the pipeline is loaded
    force: bool = False  # erase concepts the model may not know (the embedded model knows only its world)
    checkpoints_total_limit: int = 2  # checkpoints kept on disk (the oldest are deleted)
    # checkpoints over the run when no checkpoint_every is set (a job: 10, so a restart loses at most a
    # tenth of it); 0: the config's own checkpoint_every
    checkpoints_per_run: int = 0

    def check(self, max_steps: int | None = None) -> ResolvedErase:
        """The resolved request, or a ValueError saying what to fix; nothing is loaded or written. The one
        place a request is validated and its config resolved; `max_steps` is a server's bound on the run's
        step total (jobs.Limits)."""
        from backends import check_device, torch_dtype
        from backends.loader import model_family
        from backends.vocab import check_known_concepts

        from .trainer import check_checkpoint_limit, resolve_with_sources

        check_device(self.device)
        check_checkpoint_limit(self.checkpoints_total_limit)
        torch_dtype(self.dtype)
        if not isinstance(self.overrides, dict):
            raise ValueError(f"overrides must be a mapping of setting -> value, got {type(self.overrides).__name__}")
        own = sorted(set(self.overrides) & {"targets", "model", "method", "device", "dtype"})
        if own:  # the request's own fields, not settings: a second value would be ambiguous
            raise ValueError(f"{', '.join(own)} cannot be set as a setting; pass it as the request's own field "
                             f"(the CLI's --{own[0].rstrip('s')})")
        if isinstance(self.checkpoints_per_run, bool) or not isinstance(self.checkpoints_per_run, int) \
                or not 0 <= self.checkpoints_per_run <= 1000:
            raise ValueError(f"checkpoints_per_run must be a whole number from 0 to 1000, got {self.checkpoints_per_run!r}")
        targets = [t.strip() for t in self.targets if isinstance(t, str)]
        if any(t and not any(ch.isalnum() for ch in t) for t in targets):  # ",,," (an empty one: the resolution's)
            raise ValueError(f"targets must be concepts with letters or digits, e.g. star; got {list(self.targets)!r}")
        config, sources = resolve_with_sources(self.method, self.model, self.presets, targets=targets, **self.overrides)
        if not self.force:
            check_known_concepts(self.model, config.targets)
        check_step_total(config, sources, max_steps)
        if self.checkpoints_per_run and "checkpoint_every" not in self.overrides:
            config = dataclasses.replace(config, checkpoint_every=max(1, config.steps // self.checkpoints_per_run))
            sources = {**sources, "checkpoint_every": f"request ({self.checkpoints_per_run} per run)"}
        return ResolvedErase(self, config, sources, model_family(self.model).name)

    def with_overrides(self, **values) -> EraseRequest:
        """The same request with more settings (those given win)."""
        return dataclasses.replace(self, overrides={**self.overrides, **values})

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, values: dict) -> EraseRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown erase request field(s) {sorted(unknown)}; valid: {', '.join(sorted(names))}")
        targets = values.get("targets", ())
        if isinstance(targets, str) or not isinstance(targets, (list, tuple)):
            raise ValueError("targets must be a list of concepts, e.g. ['star']")
        return cls(**{**values, "targets": tuple(targets)})


def with_targets(presets: str, method: str, targets: tuple[str, ...] | list[str]) -> str:
    """`presets` with `multi` added when several targets share the run and the method's steps scale with
    them (the app's rule: Steps counts each concept's steps, the concepts take turns; docs/design.md §3.1)."""
    several = len(targets) > 1 and get_method(method).Config.SCALE_STEPS
    return f"{presets},{MULTI}" if several and MULTI not in presets.split(",") else presets


def check_step_total(config: EraseConfig, sources: dict[str, str], max_steps: int | None) -> None:
    """The run's step total within a server's bound, refused with what to lower."""
    if max_steps is None or config.steps <= max_steps:
        return
    n = len(config.targets)
    if "targets" in sources.get("steps", ""):  # steps_per_target: each target brought its own budget
        raise ValueError(f"{config.steps // n} steps per concept x {n} concepts = {config.steps} steps, more than "
                         f"this app's limit of {max_steps}; lower Steps or erase fewer concepts")
    raise ValueError(f"this erase job has {config.steps:,} steps; the limit on this server is {max_steps:,}: "
                     "use fewer steps")


@dataclass(frozen=True)
class ResolvedErase:
    """A checked request and what was derived from it once (EraseRequest.check): what `train` carries out."""

    request: EraseRequest  # what was asked, as asked
    config: EraseConfig  # the resolved, validated config (steps: the total over every target)
    sources: dict[str, str]  # the layer each config value came from (recorded as config_sources)
    family: str  # the model's family ("sd", "sdxl", "flux")

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.config.targets)

    @property
    def steps(self) -> int:
        return self.config.steps

    def title(self) -> str:
        """One line for a job list."""
        return f"{self.request.method} erases {', '.join(self.targets)} from {self.request.model} ({self.steps} steps)"

    def to_dict(self) -> dict:
        return {"request": self.request.to_dict(), "config": self.config.to_dict(), "sources": self.sources,
                "family": self.family}

    @classmethod
    def from_dict(cls, values: dict) -> ResolvedErase:
        """The stored resolution, revalidated (not resolved again: the layers are not re-applied)."""
        request = EraseRequest.from_dict(values["request"])
        config = get_method(request.method).Config(**values["config"])
        config.validate()
        return cls(request, config, dict(values["sources"]), values["family"])


def erase(model: str = "embedded", method: str = "ap", targets: Sequence[str] | str = (), presets: Sequence[str] | str = "",
          out: str | Path = "runs/erasure", callback: Callback | None = None, cancel: CancelToken | None = None,
          device: str = "cpu", pipe=None, dtype: str = "float32", checkpoints_total_limit: int = KEEP_CHECKPOINTS,
          **overrides) -> RunFolder:
    """Erase `targets` from `model` with `method`; returns the finished run folder. The Python door to
    `train(EraseRequest(...).check(), out)`, without the unknown-word guard (force).

    The config is validated before anything is written; `pipe` may be passed to reuse a
    loaded pipeline (its denoiser is modified in place). `dtype` is the weights' dtype when the
    pipeline is loaded here ("bfloat16" halves FLUX.1-schnell's ~67 GB of float32 weights); it is
    recorded, and `resume` loads the same. `checkpoints_total_limit` is how many checkpoints stay on disk
    (the oldest go first; on SD a full-UNet checkpoint is ~10 GB)."""
    names = (targets,) if isinstance(targets, str) else tuple(targets)
    presets = presets if isinstance(presets, str) else ",".join(presets)
    request = EraseRequest(model, method, names, presets, overrides, device, dtype, force=True,
                           checkpoints_total_limit=checkpoints_total_limit)
    return train(request.check(), out, callback=callback, cancel=cancel, pipe=pipe)


def train(resolved: ResolvedErase, out: str | Path, callback: Callback | None = None, cancel: CancelToken | None = None,
          pipe=None, resume_existing: bool = False) -> RunFolder:
    """Carry out a checked request (EraseRequest.check) into the new folder `out`, resolving nothing
    again; with resume_existing, a folder that already holds the run continues from its last checkpoint
    (a restarted job). `pipe` reuses a loaded pipeline (its denoiser is trained in place)."""
    from backends import load_pipeline, torch_dtype
    from backends.precision import resolve_precision

    from .trainer import check_trainable, preset_names, resume, train_loop

    request = resolved.request
    if resume_existing and RunFolder.holds_run(out):
        return resume(out, callback=callback, cancel=cancel, device=request.device, pipe=pipe)
    if pipe is None:
        pipe = load_pipeline(request.model, device=request.device, dtype=torch_dtype(request.dtype), offload="none")
    check_trainable(pipe)
    config = dataclasses.replace(resolved.config, precision=resolve_precision(resolved.config.precision, pipe.device))
    record = {"method": request.method, "model": request.model, "presets": preset_names(request.presets),
              "config": config.to_dict(), "config_sources": resolved.sources, "seed": config.seed,
              "result_kind": get_method(request.method).SPEC.trains,
              "dtype": str(pipe.dtype).removeprefix("torch."), "trained_dtype": "float32",
              "checkpoints_total_limit": request.checkpoints_total_limit}
    run = RunFolder.create(out, record)
    return train_loop(run, pipe, request.method, config, None, callback, cancel)


def run(request: EraseRequest, out: str | Path, callback: Callback | None = None, cancel: CancelToken | None = None,
        pipe=None, resume_existing: bool = False) -> RunFolder:
    """Check `request`, then erase into the new folder `out` (`train(request.check(), out)`); with
    resume_existing, a folder that already holds the run continues from its last checkpoint (a restarted job)."""
    return train(request.check(), out, callback=callback, cancel=cancel, pipe=pipe, resume_existing=resume_existing)
