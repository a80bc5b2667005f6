"""The benchmark report (docs/design.md §4, issue 7): every protocol on the embedded world, one command.

    python -m benchmarks.report                          # every protocol, then the results page's section
    python -m benchmarks.report --protocols table1 robustness
    python -m benchmarks.report --render-only            # re-render docs/results.md from the saved results
    python -m benchmarks.report --protocols table1 --methods AGE   # measure one method's rows, merge them in
    python -m benchmarks.report --quick                  # smoke run: 1 seed, 5 % of the steps (not for the results page)

Each protocol writes benchmarks/results/report/<protocol>.json (raw rows, the mean ± std summary,
the environment) and a plotly figure <protocol>.html; the section between the report markers of docs/results.md
is regenerated from those JSON files, so every number there can be regenerated. Every finished row is
also kept in results/report/rows/: a run that is stopped resumes from there (delete the folder to
measure everything again).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from backends.storage import write_json, write_text
from benchmarks import protocols
from evaluation.robustness import AttackConfig

from .common import RESULTS, environment, print_table
from .report_render import FIGURES, render_readme

REPORT = RESULTS / "report"
RESULTS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "results.md"  # holds the generated section
PROTOCOLS = ("table1", "preservation", "ablation", "style", "robustness", "multi", "style-shadow", "colour", "pair")
METHOD_PROTOCOLS = ("table1", "style", "robustness", "multi", "style-shadow", "colour", "pair")  # one row per erasure method
# the method rows of the protocols measured after the search-space changes (the others keep METHODS: their
# stored rows' settings)
POOLS = {"multi": protocols.MULTI_METHODS, "pair": protocols.MULTI_METHODS,
         "style-shadow": (*protocols.CURRENT_METHODS, protocols.AP_ALL), "colour": protocols.CURRENT_METHODS}
SHAPE_METRICS = ("esr1", "esr5", "psr1", "psr5", "clip_erased", "clip_kept", "wall_s")
SEARCH_METRICS = ("search_entropy_ratio", "search_top_p", "search_switch_rate", "search_pi_l2_spearman")
# protocols summarised as mean ± std per group: (group key, metrics); pair: the mean over its pairs (the page also
# shows each pair's rows); reproduce.py compares these protocols within that std
SUMMARIES = {"table1": ("method", SHAPE_METRICS), "multi": ("method", SHAPE_METRICS), "pair": ("method", SHAPE_METRICS),
             "preservation": ("strategy", SHAPE_METRICS + SEARCH_METRICS)}


def pool_of(name: str) -> tuple[protocols.MethodSpec, ...]:
    """The method rows protocol `name` runs when no --methods narrows it."""
    return POOLS.get(name, protocols.METHODS)


def chosen_methods(names: list[str], methods: list[str] | None) -> tuple[protocols.MethodSpec, ...]:
    """The method rows to run for the protocols `names`: all for None, else `methods`, which only the
    protocols with one row per method accept."""
    bad = [n for n in names if n not in METHOD_PROTOCOLS] if methods is not None else []
    if bad:
        raise ValueError(f"{', '.join(bad)} has no method rows to choose; --methods works with {', '.join(METHOD_PROTOCOLS)}")
    return protocols.select_methods(methods, pool_of(names[0]) if len(names) == 1 else protocols.METHODS)


def run_protocol(name: str, budget: protocols.Budget, classifier, scorer, methods: list[str] | None = None,
                 strategies: list[str] | None = None) -> dict:
    """Rows and their summary for one protocol; `methods` keeps only those method rows (and the base row),
    `strategies` only those preservation strategies."""
    chosen = chosen_methods([name], methods)
    if name in ("table1", "multi"):  # multi: table 1 with every target its own step budget (MULTI_METHODS)
        rows = protocols.table1(classifier, scorer, budget, methods=chosen)
    elif name == "pair":
        rows = protocols.pairs(classifier, scorer, budget, methods=chosen)
    elif name == "preservation":
        rows = protocols.preservation(classifier, scorer, budget, strategies=strategies)
    elif name == "ablation":
        rows = protocols.ablation(classifier, scorer, budget)
    elif name == "style":
        rows = protocols.style(classifier, scorer, budget, methods=chosen)
    elif name == "style-shadow":
        rows = protocols.style(classifier, scorer, budget, erased_style="shadow", methods=chosen)
    elif name == "colour":
        rows = protocols.colour(classifier, scorer, budget, methods=chosen)
    elif name == "robustness":
        quick = AttackConfig(steps=8, n_train=4, n_eval=4) if budget.steps_scale < 1 else None  # smoke run
        rows = protocols.robustness(classifier, scorer, budget, methods=chosen, attack=quick)
    else:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    return {"rows": rows, "summary": summary_of(name, rows)}


def summary_of(name: str, rows: list[dict]) -> list[dict]:
    """The protocols of SUMMARIES: mean ± std per group; the others: the rows themselves."""
    if name in SUMMARIES:
        by, metrics = SUMMARIES[name]
        return protocols.summarize(rows, by, metrics)
    return rows


def merge(name: str, stored: dict, payload: dict, methods: list[str]) -> dict:
    """The stored protocol with the rows of `methods` replaced by (or added from) a new partial run,
    in METHODS' order; the base row and every other method's rows stay as stored. Each merged method
    keeps the environment it was measured in (`merged`)."""
    order = [protocols.BASE, *dict.fromkeys(m.name for pool in (protocols.METHODS, *POOLS.values()) for m in pool)]
    kept = [r for r in stored["rows"] if r["method"] not in methods]
    rows = sorted(kept + [r for r in payload["rows"] if r["method"] in methods],
                  key=lambda r: order.index(r["method"]))  # stable: each method's rows keep their order
    merged = {**stored.get("merged", {}), **{m: {"environment": environment(), "wall_s": payload["wall_s"]}
                                              for m in methods}}
    measured = {**stored, "rows": rows, "summary": summary_of(name, rows), "merged": merged}
    if "methods" in stored:  # a protocol not yet measured whole: the record of its rows so far grows
        measured["methods"] = [m for m in order if m in stored["methods"] or m in methods]
        if {m.name for m in pool_of(name)} <= set(measured["methods"]):
            del measured["methods"]  # every row of the protocol is in: it is measured whole
    return measured


def save(name: str, payload: dict, budget: protocols.Budget, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    record = {"protocol": name, "environment": environment(), "seeds": budget.seeds,
              "sampler": vars(budget.settings), "steps_scale": budget.steps_scale, **payload}
    path = write_json(out / f"{name}.json", record)
    FIGURES[name](record).write_html(out / f"{name}.html", include_plotlyjs="cdn")
    return path


def measure(name: str, budget: protocols.Budget, classifier, scorer, out: Path,
            methods: list[str] | None = None, strategies: list[str] | None = None) -> tuple[dict, Path]:
    """Run one protocol (only the `methods` rows if given), time it, and save its JSON and figure under `out`."""
    t0 = time.perf_counter()
    payload = run_protocol(name, budget, classifier, scorer, methods, strategies)
    payload["wall_s"] = round(time.perf_counter() - t0, 1)
    if strategies is not None:
        payload["strategies"] = strategies  # a partial run: the preservation strategies it measured
    if methods is not None:
        payload["methods"] = [protocols.BASE, *methods]  # a partial re-run: the rows it re-measured
    return payload, save(name, payload, budget, out)


def measure_into(name: str, budget: protocols.Budget, classifier, scorer, out: Path,
                 methods: list[str]) -> tuple[dict, Path]:
    """Measure only `methods`' rows of a protocol and merge them into its stored JSON."""
    t0 = time.perf_counter()
    payload = run_protocol(name, budget, classifier, scorer, methods)
    payload["wall_s"] = round(time.perf_counter() - t0, 1)
    stored = json.loads((out / f"{name}.json").read_text())
    record = merge(name, stored, payload, methods)
    path = write_json(out / f"{name}.json", record)
    FIGURES[name](record).write_html(out / f"{name}.html", include_plotlyjs="cdn")
    return record | {"wall_s": payload["wall_s"]}, path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    p.add_argument("--seeds", type=int, default=4, help="seeds per prompt")
    p.add_argument("--render-only", action="store_true", help="only re-render docs/results.md from saved results")
    p.add_argument("--quick", action="store_true", help="1 seed and 5 %% of every method's steps; writes under "
                   "benchmarks/results/report_quick and leaves docs/results.md alone")
    p.add_argument("--methods", nargs="+", help="measure only these method rows (table1, style, robustness) and "
                   "merge them into the stored protocol, keeping every other row")
    p.add_argument("--strategies", nargs="+", choices=protocols.RUN_ORDER,
                   help="preservation: measure only these strategies (the rest of the protocol is hours on a CPU)")
    a = p.parse_args(argv)
    if a.methods is not None:
        chosen_methods(a.protocols, a.methods)  # an unknown row or protocol fails before anything runs
    out = RESULTS / "report_quick" if a.quick else REPORT
    if not a.render_only:
        from backends import load_classifier
        from evaluation.scorers import get_scorer

        torch.manual_seed(0)
        budget = protocols.Budget(seeds=1 if a.quick else a.seeds, steps_scale=0.05 if a.quick else 1.0,
                                  rows_dir=out / "rows")  # an interrupted run resumes from its finished rows
        classifier, scorer = load_classifier(), get_scorer("embedded")
        for name in a.protocols:
            if a.methods is not None and not a.quick and (out / f"{name}.json").exists():
                payload, path = measure_into(name, budget, classifier, scorer, out, a.methods)
            else:
                payload, path = measure(name, budget, classifier, scorer, out, methods=a.methods,
                                        strategies=a.strategies if name == "preservation" else None)
            print(f"\n{name} ({payload['wall_s']} s): wrote {path}")
            print_table(payload["summary"], [k for k in payload["summary"][0] if not k.endswith("_std")])
    if not a.quick:
        results = {n: json.loads((REPORT / f"{n}.json").read_text()) for n in PROTOCOLS if (REPORT / f"{n}.json").exists()}
        write_text(RESULTS_PAGE, render_readme(RESULTS_PAGE.read_text(), results))
        print(f"{RESULTS_PAGE.relative_to(RESULTS_PAGE.parent.parent)} regenerated from {sorted(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
