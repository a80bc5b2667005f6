"""Progress events and cancellation shared by every method, the CLI and the app."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Event:
    kind: str  # "start" | "step" | "snapshot" | "checkpoint" | "done" | "cancelled"
    step: int  # steps completed so far
    total: int  # step budget
    elapsed_s: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # a method's own per-step numbers (MCE: masked_pct)
    extra: dict = field(default_factory=dict)  # any other JSON value a method reports
    # methods that search over concepts (AP, AGE): the current pick, softmax(pi)'s top-5, this step's sample
    concept: str | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    sampled: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # snapshot name -> file in the run folder
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


Callback = Callable[[Event], None]


class Cancelled(RuntimeError):
    """Raised when a run was cancelled; the run folder holds a checkpoint to resume from."""


class CancelToken:
    """Thread-safe cancel flag: the app's worker sets it, the training loop polls it each step."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def cancel(self) -> None:
        self._flag.set()

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()
