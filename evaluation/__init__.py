"""Evaluation metrics (SPEC 4): ESR-k / PSR-k so far; issue 7 adds the rest."""

from .classification import erasure_rates, world_erasure_report

__all__ = ["erasure_rates", "world_erasure_report"]
