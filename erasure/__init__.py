"""Concept erasure by fine-tuning (docs/design.md §3): one registry, one run-folder format, one loop.

    from erasure import erase
    run = erase("embedded", "ap", targets=["star"], presets="object,fast", out="runs/star")
"""

from .config import PARAM_GROUPS, EraseConfig
from .events import Cancelled, CancelToken, Event
from .registry import get_method, list_methods
from .runs import RunFolder, apply, erased_copy, export
from .trainer import erase, resolve_config, resume

__all__ = [
    "PARAM_GROUPS", "CancelToken", "Cancelled", "EraseConfig", "Event", "RunFolder", "apply", "erase", "erased_copy",
    "export", "get_method", "list_methods", "resolve_config", "resume",
]
