"""The method registry: a new erasure method is one new file (erasure.method's contract: a config, presets,
profiles, a SPEC and the class) plus one line in `_MODULES`."""

from __future__ import annotations

import importlib

_MODULES = {
    "esd": "erasure.methods.esd",
    "ap": "erasure.methods.ap",
    "uce": "erasure.methods.uce",
    "ca": "erasure.methods.ca",
    "mce": "erasure.methods.mce",
    "age": "erasure.methods.age",
}


# Presets every method defines: what kind of concept (the parameter group and search-space sizes), and
# which settings (the published ones, or our faster ones). A run names one of each, e.g. "object,fast".
CONCEPT_PRESETS = ("object", "style", "nudity")
SPEED_PRESETS = ("fast", "reference")


def list_methods() -> list[str]:
    return list(_MODULES)


def get_method(name: str):
    """The method class registered under `name` (each module defines `METHOD`)."""
    if name not in _MODULES:
        raise ValueError(f"unknown erasure method {name!r}; valid: {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name]).METHOD
