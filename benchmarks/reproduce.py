"""Does the report reproduce? Measure protocols again from scratch and compare with the stored report.

    python -m benchmarks.reproduce --protocols ablation
    python -m benchmarks.reproduce --compare-only        # compare an earlier re-run again
    python -m benchmarks.reproduce --protocols style --methods MCE   # only the rows a change touched

Each protocol runs with an empty row cache into benchmarks/results/report_check/ (the stored report
and the README are left alone); then every metric of every row is compared with
benchmarks/results/report/<protocol>.json. A metric reproduces when the difference is within the std
the report gives for it (table 1 and preservation: the std over splits or targets of the row's method
or strategy); protocols of single runs report no std, so there the tolerance is the README's rounding
(0.05). Wall time is not compared. `--methods` re-measures only those method rows (and the base row)
of table1, style or robustness, and only they are compared. Writes benchmarks/results/reproduce.json
and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shutil

import torch

from benchmarks import protocols

from .common import RESULTS, print_table, write_result
from .report import PROTOCOLS, REPORT, SUMMARIES, chosen_methods, measure

CHECK = RESULTS / "report_check"
GROUP_BY = {name: by for name, (by, _) in SUMMARIES.items()}  # the summaries that carry a std
ROUNDING = 0.05  # the README prints one decimal
UNCOMPARED = {"wall_s", "n"}


def identity(row: dict) -> tuple:
    """What a row is about (method, split, target, K ...): its fields that are not measurements."""
    return tuple(sorted((k, v) for k, v in row.items() if not isinstance(v, float) and k not in UNCOMPARED))


def stds(stored: dict, protocol: str) -> dict[tuple[str, str], float]:
    """(group value, metric) -> the std the stored report gives for it."""
    by = GROUP_BY.get(protocol)
    if by is None:
        return {}
    return {(r[by], k[:-4]): v for r in stored["summary"] for k, v in r.items() if k.endswith("_std")}


def compare(protocol: str, stored: dict, rerun: dict) -> list[dict]:
    """One line per (row, metric) of the stored report (of the re-run's methods, for a partial re-run):
    stored and re-run values, difference, tolerance."""
    again = {identity(r): r for r in rerun["rows"]}
    std = stds(stored, protocol)
    chosen = rerun.get("methods")
    lines = []
    for row in stored["rows"]:
        if chosen is not None and row["method"] not in chosen:
            continue
        new = again.get(identity(row))
        if new is None:
            raise ValueError(f"{protocol}: the re-run has no row {dict(identity(row))}; did the protocol change?")
        for metric, old in row.items():
            if not isinstance(old, float) or metric in UNCOMPARED:
                continue
            tol = max(std.get((row.get(GROUP_BY.get(protocol, "")), metric), 0.0), ROUNDING)
            diff = float(new[metric]) - old
            lines.append({"protocol": protocol, "row": ", ".join(f"{k}={v}" for k, v in identity(row)),
                          "metric": metric, "stored": old, "rerun": float(new[metric]), "diff": diff,
                          "tolerance": tol, "within": abs(diff) <= tol})
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocols", nargs="+", default=["ablation"], choices=PROTOCOLS)
    p.add_argument("--methods", nargs="+", help="re-measure only these method rows (table1, style, robustness)")
    p.add_argument("--compare-only", action="store_true", help="compare the re-run already in report_check/")
    a = p.parse_args(argv)
    try:
        chosen_methods(a.protocols, a.methods)  # a bad --methods fails here, before any model is loaded
    except ValueError as e:
        raise SystemExit(str(e)) from None
    missing = [n for n in a.protocols if not (REPORT / f"{n}.json").exists()]
    if missing:
        raise SystemExit(f"no stored report for {missing}; run python -m benchmarks.report --protocols {' '.join(missing)}")
    stored = {n: json.loads((REPORT / f"{n}.json").read_text()) for n in a.protocols}
    if not a.compare_only:
        from backends import load_classifier
        from evaluation.scorers import get_scorer

        classifier, scorer = load_classifier(), get_scorer("embedded")
        for name in a.protocols:
            rows = CHECK / "rows" / name
            shutil.rmtree(rows, ignore_errors=True)  # from scratch: no cached row
            torch.manual_seed(0)
            budget = protocols.Budget(seeds=stored[name]["seeds"], steps_scale=stored[name]["steps_scale"],
                                      rows_dir=rows)
            measure(name, budget, classifier, scorer, CHECK, a.methods)
    lines = [line for name in a.protocols
             for line in compare(name, stored[name], json.loads((CHECK / f"{name}.json").read_text()))]
    print_table(lines, ["protocol", "row", "metric", "stored", "rerun", "diff", "tolerance", "within"])
    within = sum(line["within"] for line in lines)
    print(f"\n{within} of {len(lines)} metrics reproduce within their tolerance")
    write_result("reproduce", {"protocols": a.protocols, "within": within, "total": len(lines),
                               "threads_stored": {n: r["environment"]["torch_threads"] for n, r in stored.items()},
                               "lines": lines})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
