"""The proxy-guided spectrum (docs/design.md §2, "Proxy-guided"): delta(c) for the concepts the proxy
points at, D(c) for all, so a 5,000- or 49,408-concept vocabulary costs the sampling of a few hundred.

    rows = guided_rows(rows_fn, concepts, config)    # config.delta_top > 0

Pass 1 computes D(c) and text_sim for every concept (no images). Pass 2 samples delta(c) for the
targets, the neutral concepts, the `delta_top` concepts of largest D(c), the `delta_text` others of largest
text similarity to the targets (D(c) on random latents can miss what the erasure hits: the target's own
phrases) and `delta_random` others drawn at random (the calibration sample). With `delta_near` > 0,
pass 3 samples the `delta_near` unsampled concepts whose text lies nearest to the most damaged concepts
pass 2 found ("near"): damage spreads to look-alikes of what it hit, which a proxy on random latents can
under-rank. Rows not sampled keep delta = NaN and `sampled` = "". The
calibration sample is an unbiased look at the concepts the proxy passed over: if none of them is
damaged as much as the 10th most damaged sampled concept, the top-10 is unlikely to hide outside the
sampled set; `calibration()` reports that estimate (with pass 3 it counts the "near" concepts as unsampled
when it scales up, so it errs high).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable

import torch

from .rows import SpectrumConfig

RowsFn = Callable[[list[str], SpectrumConfig], list[dict]]  # (concepts, config) -> one row per concept
FeaturesFn = Callable[[list[str]], torch.Tensor]  # concepts -> [n, d] unit text features
TOP = 10  # the top-k whose recovery the calibration estimates


def choose(rows: list[dict], config: SpectrumConfig) -> dict[int, str]:
    """Row index -> why it gets delta: "always" (targets, null, neutral), "top" (largest D(c)), "text"
    (largest text_sim of the rest) or "random" (the seeded calibration sample of the rest)."""
    picked = {i: "always" for i, r in enumerate(rows) if r["kind"] != "concept"}
    rest = sorted((i for i in range(len(rows)) if i not in picked), key=lambda i: -rows[i]["proxy"])
    picked |= {i: "top" for i in rest[: config.delta_top]}
    if config.delta_text:
        by_text = sorted(rest[config.delta_top :], key=lambda i: -rows[i]["text_sim"])
        picked |= {i: "text" for i in by_text[: config.delta_text]}
    others = [i for i in rest if i not in picked]
    picked |= {i: "random" for i in random.Random(config.seed).sample(others, min(config.delta_random, len(others)))}
    return picked


def near(rows: list[dict], picked: dict[int, str], features: torch.Tensor, n: int, hits: int = TOP) -> dict[int, str]:
    """Pass 3: row index -> "near" for the n unsampled rows whose features [len(rows), d] (unit rows) are
    most similar (max cosine) to the `hits` sampled concepts of largest delta."""
    hit = sorted((i for i in picked if rows[i]["kind"] == "concept"), key=lambda i: -rows[i]["delta"])[:hits]
    rest = [i for i in range(len(rows)) if i not in picked]
    if not hit or not rest or n < 1:
        return {}
    closeness = (features[rest] @ features[hit].T).max(1).values  # [r]
    return {rest[j]: "near" for j in closeness.argsort(descending=True)[:n].tolist()}


def guided_rows(rows_fn: RowsFn, concepts: list[str], config: SpectrumConfig,
                features_fn: FeaturesFn | None = None) -> list[dict]:
    """Every concept's row: D(c) for all, delta(c) for those `choose` picks (config.delta_top > 0) and, with
    config.delta_near, for the concepts `near` picks next (features_fn gives their text features)."""
    plain = dataclasses.replace(config, delta_top=0, delta_random=0, delta_near=0, delta_text=0)
    rows = rows_fn(concepts, dataclasses.replace(plain, proxy_only=True))
    picked = choose(rows, config)
    _sample(rows_fn, rows, concepts, sorted(picked), plain)
    if config.delta_near:
        if features_fn is None:
            raise ValueError("delta_near needs the concepts' text features: run the spectrum in this process "
                             "(without a Ray address), or set delta_near to 0")
        more = near(rows, picked, features_fn(concepts), config.delta_near)
        _sample(rows_fn, rows, concepts, sorted(more), plain)
        picked |= more
    for i, row in enumerate(rows):
        row["sampled"] = picked.get(i, "")
    return rows


def _sample(rows_fn: RowsFn, rows: list[dict], concepts: list[str], order: list[int], config: SpectrumConfig) -> None:
    """Replace rows[i] for i in `order` by its sampled row (delta and the scores)."""
    for i, row in zip(order, rows_fn([concepts[i] for i in order], config) if order else []):
        rows[i] = row


def calibration(rows: list[dict], top: int = TOP) -> dict:
    """How far the sampled set can be trusted: the `top`-th largest sampled delta, how many calibration
    concepts exceed it, and the number of unsampled concepts expected to exceed it (that fraction of the
    calibration sample times the unsampled count)."""
    sampled = [r for r in rows if r["sampled"]]
    deltas = sorted((r["delta"] for r in sampled if r["kind"] == "concept"), reverse=True)
    cut = deltas[min(top, len(deltas)) - 1] if deltas else math.nan
    calib = [r["delta"] for r in sampled if r["sampled"] == "random"]
    above = sum(d >= cut for d in calib)
    unsampled = len(rows) - len(sampled)
    return {"concepts": len(rows), "sampled": len(sampled), "calibration": len(calib), "top": top,
            "top_cut_delta": cut, "calibration_above_cut": above,
            "expected_missed": round(above / len(calib) * unsampled, 2) if calib else None}
