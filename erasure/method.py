"""The method contract (docs/design.md §3.1): what a method file defines and what the loop calls.

A method file defines a config dataclass, its presets, its per-model profiles, a `SPEC` and one class
with the methods of `Method` (or `ClosedForm`) and those its spec adds; its `METHOD` is annotated with
that protocol, so the type checker (CI: mypy) checks the class against it. `registry._MODULES` names
the file. The loop reads the spec, never
probes the class: what it trains decides who owns the optimiser and what the result holds.

    kind      the loop trains            the result holds              applied by
    weights   ctx.trained (Adam)         the changed tensors           runs.RESULT_KINDS["weights"]
    masks     method.optimizer()         method.result(): bool masks   runs.RESULT_KINDS["masks"]
    adapters  method.optimizer()         method.result(): new tensors  (a new kind adds its handler there)
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import torch

from backends.family import Cond

RESULT_KINDS = ("weights", "masks", "adapters")


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the registry name ("esd", "ap", ...)
    summary: str  # one line for `python -m erasure list-methods`
    trains: str = "weights"  # "weights" | "masks" | "adapters" (the table above)
    families: tuple[str, ...] = ("sd",)  # model families it is defined on (backends.families)
    closed_form: bool = False  # one `solve()` instead of an optimisation loop (UCE)
    searches: bool = False  # searches over a concept space (AP, AGE): search_spaces() and centre_losses() feed the trajectory

    def __post_init__(self):
        if self.trains not in RESULT_KINDS:
            raise ValueError(f"{self.name}: trains must be one of {', '.join(RESULT_KINDS)}, got {self.trains!r}")


class Snapshots(Protocol):
    """What every method defines, built on a trainer Context (`ctx`) once per run or resume."""

    def snapshot_inputs(self) -> Mapping[str, str | Cond]:
        """Trajectory images to draw at each snapshot: name -> a prompt, or a conditioning."""

    def state_dict(self) -> dict:
        """The method's own state beyond the trained tensors (search variables ...), for exact resume."""

    def load_state_dict(self, state: dict) -> None: ...


class Method(Snapshots, Protocol):
    """One erasure method trained by the loop, a loss per step."""

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        """This step's loss and its event fields: "losses" {name: float}, "message", optionally
        "metrics" {name: float}, "extra" {name: JSON value}, and for searches over concepts
        "concept" (the current pick), "top5" [(word, p)] and "sampled" (erasure.events.Event)."""


class TrainsOwnParameters(Method, Protocol):
    """Methods whose spec trains "masks" or "adapters": they bring their parameters and the result."""

    def optimizer(self) -> torch.optim.Optimizer: ...

    def result(self) -> dict[str, torch.Tensor]: ...

    def finish(self) -> None:
        """Leave the pipeline as the result describes (masks baked in, adapters merged)."""

    def snapshot_model(self) -> AbstractContextManager:
        """The model snapshots are drawn with (MCE: binarised masks rather than relaxed ones)."""

    def memory_estimate(self) -> tuple:
        """(erasure.memory.MemoryEstimate of what the run adds, the settings that shrink it): checked
        against the GPU before the first step (fine-tuning methods get memory.fine_tune_estimate)."""


class SearchesConcepts(Method, Protocol):
    """Methods whose spec `searches`: the trajectory (erasure.trajectory) shows their search space, the
    step events' softmax(pi) ("extra": {"probs": [n]}) and, at snapshots, every centre's preservation loss."""

    def search_spaces(self) -> dict[str, list[str]]:
        """target prompt -> the words of its centres, in R's row order (written to the start event)."""

    def centre_losses(self) -> dict[str, list[float]]:
        """target prompt -> the preservation loss of every centre under the current theta' (no training draws)."""

    def excluded_words(self) -> dict[str, list[str]]:
        """target prompt -> the vocabulary words kept out of its search space: the target's own words, their
        inflections, words too near it (written to the start event and the run's search.json)."""


class ClosedForm(Snapshots, Protocol):
    """Methods whose spec is closed_form: one solve edits ctx.trained in place (and no `loss`)."""

    def solve(self) -> dict: ...


def required_methods(spec: MethodSpec) -> list[str]:
    """The names a method class with this spec must define (a test checks every registered one)."""
    names = ["solve" if spec.closed_form else "loss", "snapshot_inputs", "state_dict", "load_state_dict"]
    if spec.trains != "weights":
        names += ["optimizer", "result", "finish", "snapshot_model", "memory_estimate"]
    if spec.searches:
        names += ["search_spaces", "centre_losses", "excluded_words"]
    return names
