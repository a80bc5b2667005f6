"""One spectrum request, as the CLI, a background job and the app ask for it (docs/design.md §2):
`SpectrumRequest.check` is the one validation and `run` the one way to carry a request out.

    request = SpectrumRequest(model="embedded", targets=("star",), config={"vocab": "world", "k": 8}, run="runs/star")
    df = run(request, "results/star")     # checks, erases with ESD first when no run is given, saves

A request travels as JSON (a job's parameters): `to_dict` / `from_dict`, which refuses unknown keys.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .rows import Progress, SpectrumConfig

CONFIG_FIELDS = {f.name for f in dataclasses.fields(SpectrumConfig)} - {"targets"}


@dataclass(frozen=True)
class SpectrumRequest:
    model: str = "embedded"  # preset, local diffusers folder or hub repo id
    targets: tuple[str, ...] = ()  # the erased concept(s)
    config: dict = field(default_factory=dict)  # SpectrumConfig settings (vocab, k, steps, ...), targets aside
    run: str | None = None  # the erasure run folder; None: a quick erasure (ESD; MCE on FLUX) is made first
    words: tuple[str, ...] | None = None  # the rows themselves (e.g. an uploaded list) instead of config's vocab
    device: str = "cpu"  # cpu, cuda or cuda:N
    address: str | None = None  # Ray cluster address, or "local"; None: in-process
    workers: int = 2  # Ray workers (with address)
    force: bool = False  # score targets the model may not know

    def check(self) -> tuple[SpectrumConfig, list[str] | None]:
        """The resolved config and the concept rows (None for nearest-K, which needs the model first),
        or a ValueError saying what to fix; nothing is loaded or written."""
        from backends import check_device
        from backends.vocab import check_known_concepts

        from .distributed import check_address
        from .spectrum import concept_list
        from .vocab import validate_concepts, with_neutral

        check_device(self.device)
        if self.address is not None:
            check_address(self.address)  # an unreachable cluster fails in seconds, not in a retry loop
        unknown = set(self.config) - CONFIG_FIELDS
        if unknown:
            raise ValueError(f"unknown spectrum setting(s) {sorted(unknown)}; valid: {sorted(CONFIG_FIELDS)}")
        targets = [t.strip() for t in self.targets if isinstance(t, str)]
        config = SpectrumConfig(targets=targets, **self.config).resolved(self.model).on_device(self.device)
        if not self.force:
            check_known_concepts(self.model, config.targets)
        if self.words is not None:
            return config, validate_concepts(with_neutral(list(self.words), config.targets), source=config.vocab)
        return config, None if config.vocab.startswith("nearest-") else concept_list(config)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        return {**out, "targets": list(self.targets), "words": None if self.words is None else list(self.words)}

    @classmethod
    def from_dict(cls, values: dict) -> SpectrumRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown spectrum request field(s) {sorted(unknown)}; valid: {', '.join(sorted(names))}")
        for name in ("targets", "words"):
            value = values.get(name)
            if isinstance(value, str) or (value is not None and not isinstance(value, (list, tuple))):
                raise ValueError(f"{name} must be a list of concepts, e.g. ['star']")
        words = values.get("words")
        return cls(**{**values, "targets": tuple(values.get("targets", ())),
                      "words": None if words is None else tuple(words)})


def run(request: SpectrumRequest, out: str | Path, progress: Progress | None = None, cancel=None,
        on_erasure=None, extra: dict | None = None, erasure_dir: str | Path | None = None) -> pd.DataFrame:
    """Check `request`, make the quick erasure (ESD fast; MCE on FLUX) into `erasure_dir` (default <out>/erasure) when it
    names no run, compute the spectrum and save it into `out` with its config, seeds and wall time (plus
    `extra`). The quick erasure reports its steps through `progress` ("quick ESD erasure: step i / n") and
    stops on `cancel`; a restarted job keeps a finished one and resumes a stopped one from its checkpoint.
    `on_erasure()` is called before the quick erasure starts (a progress line)."""
    from .results import check_writable, save_spectrum
    from .spectrum import compute_spectrum

    config, concepts = request.check()
    out = check_writable(out)
    erased = request.run
    if erased is None:
        folder = Path(erasure_dir) if erasure_dir is not None else out / "erasure"
        if not (folder / "result.safetensors").exists():
            if on_erasure is not None:
                on_erasure()
            _quick_erasure(request, config, folder, progress, cancel)
        erased = str(folder)
    t0 = time.perf_counter()
    df = compute_spectrum(request.model, erased, config, device=request.device, address=request.address,
                          workers=request.workers, progress=progress, cancel=cancel, concepts=concepts)
    save_spectrum(df, out, config, request.model, erased, {"wall_s": round(time.perf_counter() - t0, 1), **(extra or {})})
    return df


QUICK_STEP = "quick {} erasure: step {} / {}"  # the progress line of the erasure before a spectrum (method, i, n)
QUICK_CHECKPOINT = 20  # steps between the quick erasure's checkpoints (a cancel loses at most this many)


def is_quick_step(message: str) -> bool:
    """Whether a progress line is the quick erasure's (its steps come before the spectrum's concepts)."""
    head, tail = QUICK_STEP.split("{}")[:2]
    return message.startswith(head) and tail in message


def _quick_erasure(request: SpectrumRequest, config, folder: Path, progress, cancel) -> None:
    """The quick erasure (ESD fast; MCE on FLUX) on the request's device, reporting each step; a stopped one
    resumes from its checkpoint (its config.json is written when it starts), anything else there starts again."""
    from erasure import resume

    from .spectrum import quick_erasure, quick_method

    name = quick_method(request.model).upper()

    def report(event) -> None:
        if progress is not None and event.kind in ("start", "step"):
            progress(event.step, event.total, QUICK_STEP.format(name, event.step, event.total))

    kwargs = dict(callback=report, cancel=cancel, device=request.device)
    if (folder / "config.json").exists() and (folder / "checkpoints").exists():
        resume(folder, **kwargs)
        return
    shutil.rmtree(folder, ignore_errors=True)
    quick_erasure(request.model, config.targets, folder, template=config.template, dtype=config.dtype,
                  checkpoint_every=QUICK_CHECKPOINT, **kwargs)

