"""The sensitivity spectrum of a target concept (docs/design.md §2): erase it, then measure for every concept
of a vocabulary how much the model's ability to draw it dropped.

    from sensitivity import SpectrumConfig, compute_spectrum
    df = compute_spectrum("embedded", run="runs/star", config=SpectrumConfig(targets=["star"]))
"""

from evaluation.scorers import get_scorer

from .request import ResolvedSpectrum, SpectrumRequest, measure, run
from .results import load_spectrum, save_spectrum, summary
from .spectrum import COLUMNS, SpectrumConfig, compute_spectrum, load_models, quick_erasure, spectrum_rows
from .vocab import NEUTRAL, VocabularyError, resolve_vocabulary

__all__ = [
    "COLUMNS", "NEUTRAL", "ResolvedSpectrum", "SpectrumConfig", "SpectrumRequest", "VocabularyError",
    "compute_spectrum", "get_scorer", "load_models", "load_spectrum", "measure", "quick_erasure", "resolve_vocabulary",
    "run", "save_spectrum", "spectrum_rows", "summary",
]
