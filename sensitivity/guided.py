"""The proxy-guided spectrum (docs/design.md §2, "Proxy-guided"): delta(c) for the concepts the proxy
points at, D(c) for all, so a 5,000- or 49,408-concept vocabulary costs the sampling of a few hundred.

    rows = guided_rows(rows_fn, concepts, config)    # config.delta_top > 0

Pass 1 computes D(c) and text_sim for every concept (no images). Pass 2 samples delta(c) for the
targets, the neutral concepts, the `delta_top` concepts of largest D(c) and `delta_random` others drawn
at random (the calibration sample). Rows not sampled keep delta = NaN and `sampled` = "". The
calibration sample is an unbiased look at the concepts the proxy passed over: if none of them is
damaged as much as the 10th most damaged sampled concept, the top-10 is unlikely to hide outside the
sampled set; `calibration()` reports that estimate.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable

from .rows import SpectrumConfig

RowsFn = Callable[[list[str], SpectrumConfig], list[dict]]  # (concepts, config) -> one row per concept
TOP = 10  # the top-k whose recovery the calibration estimates


def choose(rows: list[dict], config: SpectrumConfig) -> dict[int, str]:
    """Row index -> why it gets delta: "always" (targets, null, neutral), "top" (largest D(c)) or
    "random" (the seeded calibration sample of the rest)."""
    picked = {i: "always" for i, r in enumerate(rows) if r["kind"] != "concept"}
    rest = sorted((i for i in range(len(rows)) if i not in picked), key=lambda i: -rows[i]["proxy"])
    picked |= {i: "top" for i in rest[: config.delta_top]}
    others = rest[config.delta_top :]
    picked |= {i: "random" for i in random.Random(config.seed).sample(others, min(config.delta_random, len(others)))}
    return picked


def guided_rows(rows_fn: RowsFn, concepts: list[str], config: SpectrumConfig) -> list[dict]:
    """Every concept's row: D(c) for all, delta(c) for those `choose` picks (config.delta_top > 0)."""
    plain = dataclasses.replace(config, delta_top=0, delta_random=0)
    rows = rows_fn(concepts, dataclasses.replace(plain, proxy_only=True))
    picked = choose(rows, config)
    order = sorted(picked)
    sampled = rows_fn([concepts[i] for i in order], plain)
    for i, row in zip(order, sampled):
        rows[i] = row
    for i, row in enumerate(rows):
        row["sampled"] = picked.get(i, "")
    return rows


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
