"""The sensitivity spectrum (docs/design.md §2; AP paper section 3.2): how much erasing a target hurt every concept.

    from sensitivity import SpectrumConfig, compute_spectrum
    df = compute_spectrum("embedded", run="runs/star", config=SpectrumConfig(targets=["star"], vocab="world"))

For each concept c: delta(c) = mean_i [S(G(theta, c, z_i), c) - S(G(theta', c, z_i), c)] over k seeds,
the *same* z_i for both models (backends.generate draws z_T per seed on the CPU). Per concept the
table also holds delta_std, the scores before/after, the paired-image CLIP similarity, the text
similarity to the target, and the proxy D(c). The original model's samples come from a disk cache.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd

# the unit of work lives in rows.py (shared with the Ray actors of distributed.py); re-exported here
from .guided import calibration, guided_rows
from .rows import Models, Progress, SpectrumConfig, chunk_rows, load_models
from .vocab import resolve_vocabulary, validate_concepts, with_neutral

__all__ = ["COLUMNS", "Models", "Progress", "SpectrumConfig", "chunk_rows", "compute_spectrum", "concept_list",
           "load_models", "quick_erasure", "quick_method", "quick_request", "spearman", "spectrum_of", "spectrum_rows",
           "to_frame"]

COLUMNS = ["concept", "kind", "prompt", "delta", "delta_std", "score_before", "score_after", "image_sim",
           "proxy", "text_sim", "rank", "proxy_rank"]


def concept_list(config: SpectrumConfig, pipe=None) -> list[str]:
    """Neutral concepts, targets, then the vocabulary: the spectrum's rows in order."""
    words = resolve_vocabulary(config.vocab, config.size, pipe=pipe, target=config.targets[0],
                               template=config.template or "{concept}", dedupe=config.dedupe,
                               pool=config.nearest_pool or "clip-words")
    return validate_concepts(with_neutral(words, config.targets), source=f"vocabulary {config.vocab!r}")


def spectrum_rows(models: Models, concepts: list[str], config: SpectrumConfig, progress: Progress | None = None,
                  cancel=None) -> list[dict]:
    """Rows for every concept, chunk by chunk; `cancel` (erasure.CancelToken) stops at the next sampler step."""
    from erasure import Cancelled

    rows: list[dict] = []
    for start in range(0, len(concepts), config.chunk):
        if cancel is not None and cancel.cancelled:
            raise Cancelled(f"spectrum cancelled after {len(rows)} of {len(concepts)} concepts")
        try:
            rows += chunk_rows(models, concepts[start : start + config.chunk], config, cancel)
        except Cancelled:
            raise Cancelled(f"spectrum cancelled after {len(rows)} of {len(concepts)} concepts") from None
        if progress:
            progress(len(rows), len(concepts), rows[-1]["concept"])
    return rows


def to_frame(rows: list[dict], config: SpectrumConfig) -> pd.DataFrame:
    """The spectrum table: ranks (1 = most damaged) and the proxy's Spearman correlation in attrs."""
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df:
            df[col] = float("nan")
    if not config.proxy_only:  # a proxy-guided spectrum ranks the sampled concepts only (the rest: <NA>)
        df["rank"] = df["delta"].rank(ascending=False, method="min").astype("Int64" if config.delta_top else int)
    df["proxy_rank"] = df["proxy"].rank(ascending=False, method="min").astype(int)
    df = df[COLUMNS + (["sampled"] if config.delta_top else [])]
    if not config.proxy_only and df["delta"].notna().sum() > 2:
        has = df["delta"].notna()
        df.attrs["spearman_proxy_delta"] = spearman(df["proxy"][has], df["delta"][has])
    if config.delta_top:
        df.attrs["guided"] = calibration(rows)
    return df


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho: Pearson's r of the average ranks (pandas' own method needs scipy)."""
    return float(a.rank().corr(b.rank()))


def compute_spectrum(model: str = "embedded", run=None, config: SpectrumConfig | None = None, *,
                     device: str = "cpu", pipe=None, cache_root=None, address: str | None = None,
                     workers: int = 1, progress: Progress | None = None, cancel=None,
                     concepts: list[str] | None = None) -> pd.DataFrame:
    """The spectrum of `run` (an erasure run folder) against `model`; sharded over Ray when
    `address` is given ("local" starts a local cluster of `workers` processes). `concepts` is the
    row list from concept_list() when the caller already resolved it (otherwise resolved here)."""
    config = (config or SpectrumConfig()).resolved(model).on_device(device)
    return spectrum_of(model, run, config, device=device, pipe=pipe, cache_root=cache_root, address=address,
                       workers=workers, progress=progress, cancel=cancel, concepts=concepts)


def spectrum_of(model: str, run, config: SpectrumConfig, *, device: str = "cpu", pipe=None, cache_root=None,
                address: str | None = None, workers: int = 1, progress: Progress | None = None, cancel=None,
                concepts: list[str] | None = None) -> pd.DataFrame:
    """compute_spectrum for a config resolved already (SpectrumConfig.resolved + on_device: a checked
    request's), resolving nothing again."""
    if run is None:
        raise ValueError("give the erasure run folder of the sanitized model (erase one with `python -m erasure "
                         "erase ...` or use quick_erasure())")
    needs_model = config.vocab.strip().startswith("nearest-")
    if concepts is None and not needs_model:
        concepts = concept_list(config)  # a bad vocabulary fails before any loading
    features_fn = None  # the "near" pass of a proxy-guided spectrum needs text features: local only
    if address is not None:
        from .distributed import sharded_rows

        if concepts is None:
            from backends import load_pipeline

            concepts = concept_list(config, pipe if pipe is not None else load_pipeline(model, device=device))

        def rows_fn(cs, cfg):
            return sharded_rows(model, str(run), cs, cfg, address, workers, device, cache_root, progress, cancel)
    else:
        models = load_models(model, run, config, device, cache_root, pipe)
        concepts = concepts or concept_list(config, models.base)

        def rows_fn(cs, cfg):
            return spectrum_rows(models, cs, cfg, progress, cancel)

        def features_fn(cs):
            return models.concept_features(cs, config)
    rows = guided_rows(rows_fn, concepts, config, features_fn) if config.delta_top else rows_fn(concepts, config)
    return to_frame(rows, config)


QUICK_METHODS = ("esd", "mce")  # the quick erasure's method: the first whose families include the model's


def quick_method(model: str) -> str:
    """The method of the quick erasure on `model`, known without loading it: ESD, or MCE on a family ESD is
    not defined on (FLUX; docs/design.md §2)."""
    from backends.loader import model_family
    from erasure import get_method

    family = model_family(model).name
    return next(m for m in QUICK_METHODS if family in get_method(m).SPEC.families)


def quick_request(model: str, targets: list[str] | tuple[str, ...], device: str = "cpu", dtype: str = "float32",
                  **overrides):
    """The quick erasure's request (erasure.EraseRequest): quick_method(model) with its `fast` preset, no
    checkpoints unless asked (docs/design.md §2). The spectrum has checked the targets (force)."""
    from erasure import EraseRequest

    return EraseRequest(model, quick_method(model), tuple(targets), "object,fast",
                        {"checkpoint_every": 0, **overrides}, device, dtype, force=True)


def quick_erasure(model: str, targets: list[str], out: str | Path, pipe=None, callback=None, cancel=None,
                  device: str = "cpu", dtype: str = "float32", **overrides):
    """The default sanitized model when none is given: `quick_request`'s erasure, trained into `out`. Pass
    the spectrum's `template=` so that targets are phrased the same way in both."""
    from erasure import train

    base = copy.deepcopy(pipe) if pipe is not None else None  # training changes the denoiser in place
    return train(quick_request(model, targets, device, dtype, **overrides).check(), out, callback=callback,
                 cancel=cancel, pipe=base)
