"""Search diagnostics of a concept search (AP, AGE): does the adversary concentrate, and on what?
(docs/design.md §3.3, "Is the adversary adversarial").

From a run's search history (erasure.trajectory.search_history: softmax(pi) and the sampled concept per
step, every centre's preservation loss at snapshots) and the centres' losses at the end, per target:

    entropy       H(softmax(pi)) per step, <= log n (n centres); log n means uniform, 0 one concept
    top_p         the largest probability per step (1/n uniform)
    switch_rate   how often the sampled concept differs from the previous step's
    pi_l2_spearman  rank correlation of the final softmax(pi) with the final centre losses: > 0 when the
                  search favours the centres the erasure damages most; None when pi is uniform
    top_l2_rank   where the final argmax concept ranks by its loss (1 = the most damaged centre)

The trainer writes them to <run>/search.json when a searching run finishes.
"""

from __future__ import annotations

import math

import numpy as np


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row of p [S, n]; rows are renormalised first (step events round each
    probability to 5 decimals, so a stored row can sum to 1 +- 1e-5 and a uniform one would exceed log n)."""
    p = np.clip(p, 1e-12, 1.0)
    p = p / p.sum(-1, keepdims=True)
    return -(p * np.log(p)).sum(-1)


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = x.argsort(kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # ties share their mean rank
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def target_diagnostics(history: dict, final_l2: list[float] | None) -> dict:
    """The diagnostics of one target's search (see the module docstring); `history` is one value of
    search_history, `final_l2` every centre's loss at the end (or None)."""
    words, probs = history["words"], np.asarray(history["probs"], float)  # [S, n]
    n = len(words)
    out = {"words": words, "n": n, "log_n": math.log(n), "steps": history["steps"]}
    if not len(probs):
        return out | {"entropy": [], "top_p": [], "top": [], "switch_rate": None, "final": None}
    h, top = entropy(probs), probs.argmax(1)
    sampled = history["sampled"]
    # the "all" control samples no single concept (None): no switch rate
    switches = [a != b for a, b in zip(sampled, sampled[1:]) if a is not None and b is not None]
    l2_steps = list(history["snap_steps"]) + ([history["steps"][-1]] if final_l2 is not None else [])
    l2 = list(history["centre_l2"]) + ([final_l2] if final_l2 is not None else [])
    last = probs[-1]
    final = {"entropy": round(float(h[-1]), 5), "entropy_ratio": round(float(h[-1]) / math.log(n), 5),
             "top_p": round(float(last.max()), 5), "top": words[int(last.argmax())],
             "top5": [[words[i], round(float(last[i]), 5)] for i in np.argsort(-last)[:5]]}
    if final_l2 is not None:
        final["pi_l2_spearman"] = spearman(last.tolist(), final_l2)
        by_loss = np.argsort(-np.asarray(final_l2, float), kind="stable").tolist()
        final["top_l2_rank"] = None if final["pi_l2_spearman"] is None else by_loss.index(int(last.argmax())) + 1
        final["most_damaged"] = [[words[i], final_l2[i]] for i in by_loss[:5]]
    return out | {"entropy": [round(float(v), 5) for v in h], "top_p": [round(float(v), 5) for v in probs.max(1)],
                  "top": [words[i] for i in top], "switch_rate": round(float(np.mean(switches)), 4) if switches else None,
                  "centre_l2": {"steps": l2_steps, "values": l2}, "final": final}


def search_diagnostics(history: dict[str, dict], final_l2: dict[str, list[float]], excluded: dict[str, list[str]]) -> dict:
    """{prompt: target_diagnostics(...) | {"excluded": [...]}} for every searched target."""
    return {p: target_diagnostics(h, final_l2.get(p)) | {"excluded": excluded.get(p, [])} for p, h in history.items()}


CONCENTRATED = 2.0  # a search "concentrated" when its most likely concept is at least this many times uniform (1/n)


def concentrated(final: dict, n: int) -> bool:
    """Whether a target's final search distribution picked a concept out: top p >= CONCENTRATED / n. Below
    that the search stayed near uniform, and its argmax is noise that no view should present as a finding."""
    return final["top_p"] * n >= CONCENTRATED


def summary(diagnostics: dict) -> dict:
    """The numbers a report row keeps: means over targets of the final entropy ratio, top-p, switch rate,
    and the pi-loss rank correlation (None when every target's pi stayed uniform)."""
    finals = [(d["final"], d["switch_rate"]) for d in diagnostics.values() if d.get("final")]
    if not finals:
        return {}

    def mean(values):
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 4) if values else None

    return {"entropy_ratio": mean(f["entropy_ratio"] for f, _ in finals), "top_p": mean(f["top_p"] for f, _ in finals),
            "switch_rate": mean(s for _, s in finals), "pi_l2_spearman": mean(f.get("pi_l2_spearman") for f, _ in finals),
            "top": [f["top"] for f, _ in finals],
            "concentrated": [concentrated(d["final"], d["n"]) for d in diagnostics.values() if d.get("final")],
            "top_ratio": mean(d["final"]["top_p"] * d["n"] for d in diagnostics.values() if d.get("final"))}
