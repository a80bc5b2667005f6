"""Progress events shared by every method, the CLI and the app (cancellation: backends.cancel)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

# Cancellation lives on the bottom floor (every layer's loops use it); re-exported for erasure's callers.
from backends.cancel import Cancelled, CancelToken


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

__all__ = ["Callback", "Cancelled", "CancelToken", "Event"]
