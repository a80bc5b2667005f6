"""One spectrum request, as the CLI, a background job and the app ask for it (docs/design.md §2):
`SpectrumRequest.check` is the one validation and resolution; it returns a `ResolvedSpectrum` (the
resolved config, the concept rows and, when no run is named, the quick erasure's resolved request) that
`measure` carries out without resolving again.

    request = SpectrumRequest(model="embedded", targets=("star",), config={"vocab": "world", "k": 8}, run="runs/star")
    df = run(request, "results/star")     # measure(request.check(), ...): erases first when no run is given, saves

Both travel as JSON (a job's parameters and its resolution): `to_dict` / `from_dict`.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .rows import Progress, SpectrumConfig

if TYPE_CHECKING:
    from erasure import ResolvedErase

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

    def check(self) -> ResolvedSpectrum:
        """The resolved request, or a ValueError saying what to fix; nothing is loaded or written."""
        from backends import check_device
        from backends.vocab import check_known_concepts

        from .distributed import check_address
        from .spectrum import concept_list, quick_request
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
        concepts: list[str] | None
        if self.words is not None:
            concepts = validate_concepts(with_neutral(list(self.words), config.targets), source=config.vocab)
        else:
            concepts = None if config.vocab.startswith("nearest-") else concept_list(config)
        erasure = None
        if self.run is None:  # the quick erasure, phrased as the spectrum phrases the targets
            erasure = quick_request(self.model, config.targets, self.device, config.dtype, template=config.template,
                                    checkpoint_every=QUICK_CHECKPOINT).check()
        return ResolvedSpectrum(self, config, concepts, erasure)

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


@dataclass(frozen=True)
class ResolvedSpectrum:
    """A checked spectrum request and what was derived from it once (SpectrumRequest.check)."""

    request: SpectrumRequest  # what was asked, as asked
    config: SpectrumConfig  # resolved for the model and the device (what config.json records)
    concepts: list[str] | None  # the rows; None for nearest-K (the model picks them when it is loaded)
    erasure: ResolvedErase | None = None  # the quick erasure's resolved request when no run is named

    def to_dict(self) -> dict:
        return {"request": self.request.to_dict(), "config": dataclasses.asdict(self.config),
                "concepts": self.concepts, "erasure": None if self.erasure is None else self.erasure.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> ResolvedSpectrum:
        """The stored resolution, revalidated (not resolved again)."""
        from erasure import ResolvedErase

        config = SpectrumConfig(**values["config"])
        config.check()
        erasure = values.get("erasure")
        return cls(SpectrumRequest.from_dict(values["request"]), config, values["concepts"],
                   None if erasure is None else ResolvedErase.from_dict(erasure))


def run(request: SpectrumRequest, out: str | Path, progress: Progress | None = None, cancel=None,
        on_erasure=None, extra: dict | None = None, erasure_dir: str | Path | None = None) -> pd.DataFrame:
    """Check `request`, then `measure` it (the two in one)."""
    return measure(request.check(), out, progress, cancel, on_erasure, extra, erasure_dir)


def measure(resolved: ResolvedSpectrum, out: str | Path, progress: Progress | None = None, cancel=None,
            on_erasure=None, extra: dict | None = None, erasure_dir: str | Path | None = None) -> pd.DataFrame:
    """Make the quick erasure (ESD fast; MCE on FLUX) into `erasure_dir` (default <out>/erasure) when the
    request names no run, compute the spectrum and save it into `out` with its config, seeds and wall time
    (plus `extra`). The quick erasure reports its steps through `progress` ("quick ESD erasure: step i / n")
    and stops on `cancel`; a restarted job keeps a finished one and resumes a stopped one from its
    checkpoint. `on_erasure()` is called before the quick erasure starts (a progress line)."""
    from erasure import RunFolder

    from .results import SpectrumFolder, check_writable, save_spectrum
    from .spectrum import spectrum_of

    request, config = resolved.request, resolved.config
    out = check_writable(out)
    erased = request.run
    if erased is None:
        folder = Path(erasure_dir) if erasure_dir is not None else SpectrumFolder(out).quick_erasure_path
        if not RunFolder.finished(folder):
            assert resolved.erasure is not None, "a request without a run resolves its quick erasure (check)"
            if on_erasure is not None:
                on_erasure()
            _quick_erasure(resolved.erasure, folder, progress, cancel)
        erased = str(folder)
    t0 = time.perf_counter()
    df = spectrum_of(request.model, erased, config, device=request.device, address=request.address,
                     workers=request.workers, progress=progress, cancel=cancel, concepts=resolved.concepts)
    save_spectrum(df, out, config, request.model, erased, {"wall_s": round(time.perf_counter() - t0, 1), **(extra or {})})
    return df


QUICK_STEP = "quick {} erasure: step {} / {}"  # the progress line of the erasure before a spectrum (method, i, n)
QUICK_CHECKPOINT = 20  # steps between the quick erasure's checkpoints (a cancel loses at most this many)


def is_quick_step(message: str) -> bool:
    """Whether a progress line is the quick erasure's (its steps come before the spectrum's concepts)."""
    head, tail = QUICK_STEP.split("{}")[:2]
    return message.startswith(head) and tail in message


def _quick_erasure(resolved: ResolvedErase, folder: Path, progress, cancel) -> None:
    """The quick erasure (ESD fast; MCE on FLUX) on the request's device, reporting each step; a stopped one
    resumes from its checkpoint (its config.json is written when it starts), anything else there starts again."""
    from erasure import RunFolder, resume, train

    name = resolved.request.method.upper()

    def report(event) -> None:
        if progress is not None and event.kind in ("start", "step"):
            progress(event.step, event.total, QUICK_STEP.format(name, event.step, event.total))

    if RunFolder.holds_run(folder) and RunFolder(folder).checkpoints():
        resume(folder, callback=report, cancel=cancel, device=resolved.request.device)
        return
    shutil.rmtree(folder, ignore_errors=True)
    train(resolved, folder, callback=report, cancel=cancel)
