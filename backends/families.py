"""The family registry (docs/design.md §1): one line per family; the protocol and the conditioning
helpers are in backends.family."""

from __future__ import annotations

from .family import Denoiser, Family
from .flux import FLUX
from .sd import SD
from .sdxl import SDXL

FAMILIES: tuple[Family, ...] = (SD, SDXL, FLUX)


def family_named(pipeline_class: str | None) -> Family:
    """The family of a diffusers pipeline class name; an unknown class is an error, not a guess."""
    for family in FAMILIES:
        if pipeline_class in family.pipeline_classes:
            return family
    known = ", ".join(c for f in FAMILIES for c in f.pipeline_classes)
    raise ValueError(f"{pipeline_class} is not a supported pipeline; supported: {known}")


def family_of(pipe) -> Family:
    """The family of a loaded pipeline (by its class; erased copies keep their base's class)."""
    return family_named(type(pipe).__name__)


def denoiser(pipe) -> Denoiser:
    return family_of(pipe).denoiser(pipe)
