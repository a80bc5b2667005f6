"""One erasure request, as the CLI, a background job and the app ask for it (docs/design.md §3.1):
`EraseRequest.check` is the one validation and `run` the one way to carry a request out.

    request = EraseRequest(model="embedded", method="ap", targets=("star",), presets="object,fast")
    run(request, "runs/star")                     # checks, then erases (or resumes what is there)

A request travels as JSON (a job's parameters): `to_dict` / `from_dict`, which refuses unknown keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .config import EraseConfig
from .events import Callback, CancelToken
from .runs import RunFolder


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

    def check(self) -> EraseConfig:
        """The resolved config, or a ValueError saying what to fix; nothing is loaded or written."""
        from backends import check_device, torch_dtype
        from backends.vocab import check_known_concepts

        from .trainer import check_checkpoint_limit, resolve_config

        check_device(self.device)
        check_checkpoint_limit(self.checkpoints_total_limit)
        torch_dtype(self.dtype)
        if not isinstance(self.overrides, dict):
            raise ValueError(f"overrides must be a mapping of setting -> value, got {type(self.overrides).__name__}")
        own = sorted(set(self.overrides) & {"targets", "model", "method", "device", "dtype"})
        if own:  # the request's own fields, not settings: a second value would be ambiguous
            raise ValueError(f"{', '.join(own)} cannot be set as a setting; pass it as the request's own field "
                             f"(the CLI's --{own[0].rstrip('s')})")
        targets = [t.strip() for t in self.targets if isinstance(t, str)]
        if any(t and not any(ch.isalnum() for ch in t) for t in targets):  # ",,," (an empty one: resolve_config)
            raise ValueError(f"targets must be concepts with letters or digits, e.g. star; got {list(self.targets)!r}")
        config = resolve_config(self.method, self.model, self.presets, targets=targets, **self.overrides)
        if not self.force:
            check_known_concepts(self.model, config.targets)
        return config

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


def run(request: EraseRequest, out: str | Path, callback: Callback | None = None, cancel: CancelToken | None = None,
        pipe=None, resume_existing: bool = False) -> RunFolder:
    """Check `request`, then erase into the new folder `out`; with resume_existing, a folder that
    already holds the run continues from its last checkpoint (a restarted job)."""
    from .trainer import erase, resume

    request.check()
    if resume_existing and (Path(out) / "config.json").exists():
        return resume(out, callback=callback, cancel=cancel, device=request.device, pipe=pipe)
    return erase(request.model, request.method, list(request.targets), request.presets, out, callback=callback,
                 cancel=cancel, device=request.device, pipe=pipe, dtype=request.dtype,
                 checkpoints_total_limit=request.checkpoints_total_limit, **request.overrides)
