"""Concept erasure by fine-tuning (docs/design.md §3): one registry, one run-folder format, one loop.

    from erasure import erase
    run = erase("embedded", "ap", targets=["star"], presets="object,fast", out="runs/star")
"""

from .config import MAX_STEPS, PARAM_GROUPS, EraseConfig
from .events import Cancelled, CancelToken, Event
from .registry import CONCEPT_PRESETS, SPEED_PRESETS, get_method, list_methods
from .request import EraseRequest, ResolvedErase, erase, run, train, with_targets
from .runs import RunFolder, apply, erased_copy, export, export_zip
from .trainer import config_sources, resolve_config, resume

__all__ = [
    "CONCEPT_PRESETS", "MAX_STEPS", "PARAM_GROUPS", "SPEED_PRESETS", "CancelToken", "Cancelled", "EraseConfig", "EraseRequest",
    "Event", "ResolvedErase", "RunFolder", "apply", "erase", "erased_copy", "export", "export_zip", "get_method", "list_methods",
    "config_sources", "resolve_config", "resume", "run", "train", "with_targets",
]
