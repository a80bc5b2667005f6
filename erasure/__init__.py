"""Concept erasure by fine-tuning (docs/design.md §3): one registry, one run-folder format, one loop.

    from erasure import erase
    run = erase("embedded", "ap", targets=["star"], presets="object,fast", out="runs/star")
"""

from .config import PARAM_GROUPS, EraseConfig
from .events import Cancelled, CancelToken, Event
from .registry import CONCEPT_PRESETS, SPEED_PRESETS, get_method, list_methods
from .request import EraseRequest, run
from .runs import RunFolder, apply, erased_copy, export, export_zip
from .trainer import config_sources, erase, resolve_config, resume

__all__ = [
    "CONCEPT_PRESETS", "PARAM_GROUPS", "SPEED_PRESETS", "CancelToken", "Cancelled", "EraseConfig", "EraseRequest",
    "Event", "RunFolder", "apply", "erase", "erased_copy", "export", "export_zip", "get_method", "list_methods",
    "config_sources", "resolve_config", "resume", "run",
]
