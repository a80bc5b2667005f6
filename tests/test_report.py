"""The report's aggregation and README rendering (pure functions over saved rows)."""

import pytest

from benchmarks.protocols import summarize
from benchmarks.report_render import END, START, render_readme, section, verdict


def _rows():
    return [{"split": s, "method": m, "esr1": e, "psr1": p, "clip_kept": 60.0, "wall_s": w}
            for s, (m, e, p, w) in enumerate([("AP", 90.0, 98.0, 10.0), ("UCE", 100.0, 20.0, 0.1),
                                              ("AP", 94.0, 96.0, 12.0), ("UCE", 100.0, 30.0, 0.1)])]


def test_summarize_gives_mean_and_sample_std_per_group_in_first_seen_order():
    out = summarize(_rows(), "method", ("esr1", "psr1"))
    assert [r["method"] for r in out] == ["AP", "UCE"] and out[0]["n"] == 2
    assert out[0]["esr1"] == pytest.approx(92.0) and out[0]["esr1_std"] == pytest.approx(2 ** 0.5 * 2)
    assert out[1]["psr1"] == pytest.approx(25.0) and out[1]["psr1_std"] == pytest.approx(50 ** 0.5)


def test_verdict_says_where_ap_wins_and_where_it_does_not():
    summary = summarize(_rows(), "method", ("esr1", "psr1", "clip_kept", "wall_s"))
    lines = verdict({"table1": {"summary": summary}})
    assert len(lines) == 1 and lines[0].startswith("- Table 1, AP vs UCE")
    assert "ESR-1 worse (92.0 vs 100.0)" in lines[0] and "PSR-1 better (97.0 vs 25.0)" in lines[0]
    assert "CLIP on kept level" in lines[0] and "wall time worse" in lines[0]
    robust = [{"method": "SD (base)", "esr1": 0.0, "psr1": 99.0, "paraphrase_asr": 100.0, "adversarial_asr": 100.0},
              {"method": "AP", "esr1": 98.0, "psr1": 98.0, "paraphrase_asr": 5.0, "adversarial_asr": 90.0},
              {"method": "ESD", "esr1": 98.0, "psr1": 80.0, "paraphrase_asr": 10.0, "adversarial_asr": 20.0}]
    both = verdict({"table1": {"summary": summary}, "robustness": {"rows": robust}})
    assert both[0] == lines[0] and len(both) == 2  # the base model is never a baseline
    assert both[1].startswith("- One shape, AP vs ESD") and "paraphrase ASR better (5.0 vs 10.0)" in both[1]
    assert "adversarial ASR worse (90.0 vs 20.0)" in both[1]
    assert "ESR-1 level (98.0 vs 98.0);" in both[1]  # one run each: no std to be within
    multi = verdict({"multi": {"summary": summary}})  # the multi-target rule's table gets its own lines
    assert multi == [lines[0].replace("- Table 1,", "- Table 1, every target its own budget,")]


def test_readme_section_is_replaced_between_the_markers_only():
    rows = [{**r, "esr5": 1.0, "psr5": 2.0, "clip_erased": 3.0} for r in _rows()]
    summary = summarize(rows, "method", ("esr1", "esr5", "psr1", "psr5", "clip_erased", "clip_kept", "wall_s"))
    results = {"table1": {"rows": rows, "summary": summary, "seeds": 4, "wall_s": 12.0}}
    text = f"intro\n{START}\nold numbers\n{END}\noutro\n"
    out = render_readme(text, results)
    assert out.startswith("intro\n" + START) and out.endswith(END + "\noutro\n") and "old numbers" not in out
    assert "| AP | 92.0 ± 2.8 |" in out and section(results) in out
    assert render_readme(out, results) == out  # re-rendering the same results changes nothing
    with pytest.raises(ValueError, match="markers"):
        render_readme("no markers here", results)


def test_finished_rows_are_kept_so_a_stopped_report_resumes(tmp_path):
    from benchmarks.protocols import Budget

    calls = []

    def compute():
        calls.append(1)
        return {"method": "AP", "esr1": 97.5}

    budget = Budget(seeds=4, rows_dir=tmp_path / "rows", workdir=tmp_path)  # created on the first row
    assert budget.cached("table1|AP|star,heart", compute) == {"method": "AP", "esr1": 97.5}
    assert budget.cached("table1|AP|star,heart", compute) == {"method": "AP", "esr1": 97.5}
    assert len(calls) == 1  # the second call read the stored row
    Budget(seeds=8, rows_dir=tmp_path / "rows", workdir=tmp_path).cached("table1|AP|star,heart", compute)
    assert len(calls) == 2  # other seeds: another row
    assert Budget(rows_dir=None, workdir=tmp_path).cached("x", compute) and len(calls) == 3


def test_row_keys_follow_the_resolved_config_so_a_changed_setting_is_recomputed(tmp_path):
    from benchmarks.protocols import Budget, MethodSpec, config_tag

    budget = Budget(workdir=tmp_path)
    mce = MethodSpec("MCE", "mce", "object,fast")
    assert config_tag(mce, ["star"], budget) == config_tag(MethodSpec("MCE", "mce", "object,fast"), ["star"], budget)
    assert config_tag(mce, ["star"], budget) != config_tag(mce, ["heart"], budget)
    assert config_tag(mce, ["star"], budget) != config_tag(MethodSpec("MCE", "mce", "object,fast", {"beta": 1.0}),
                                                           ["star"], budget)
    assert config_tag(mce, ["star"], budget) != config_tag(mce, ["star"], Budget(steps_scale=0.5, workdir=tmp_path))
    uce = MethodSpec("UCE (kept list)", "uce", "object", preserve_kept=True)
    assert config_tag(uce, ["star"], budget, ["heart"]) != config_tag(uce, ["star"], budget, ["moon"])


def test_reproduction_check_compares_each_metric_with_the_reported_std():
    from benchmarks.reproduce import compare

    rows = [{"split": 0, "method": "AP", "esr1": 90.0, "psr1": 99.0, "wall_s": 10.0},
            {"split": 1, "method": "AP", "esr1": 100.0, "psr1": 97.0, "wall_s": 11.0}]
    stored = {"rows": rows, "summary": summarize(rows, "method", ("esr1", "psr1"))}  # std 7.07 and 1.41
    rerun = {"rows": [{**rows[0], "esr1": 96.0, "wall_s": 50.0}, {**rows[1], "psr1": 95.0}]}
    lines = {(line["row"], line["metric"]): line for line in compare("table1", stored, rerun)}
    assert len(lines) == 4  # wall time is not a reproduced number
    assert lines[("method=AP, split=0", "esr1")]["within"]  # 6 points, within the std of 7.07
    assert lines[("method=AP, split=1", "psr1")]["diff"] == -2.0
    assert not lines[("method=AP, split=1", "psr1")]["within"]  # 2 points, beyond the std of 1.41
    single = compare("ablation", {"rows": rows}, rerun)  # no std reported: the README's rounding
    assert [line["within"] for line in single] == [False, True, True, False]
    with pytest.raises(ValueError, match="has no row"):
        compare("table1", stored, {"rows": rerun["rows"][:1]})


def test_a_partial_rerun_compares_only_the_methods_it_measured_again():
    from benchmarks.reproduce import compare

    rows = [{"method": "SD (base)", "esr1": 0.0}, {"method": "AP", "esr1": 97.5}, {"method": "MCE", "esr1": 80.0}]
    rerun = {"rows": [rows[0], {"method": "MCE", "esr1": 100.0}], "methods": ["SD (base)", "MCE"]}
    lines = compare("style", {"rows": rows}, rerun)
    assert [(line["row"], line["within"]) for line in lines] == [("method=SD (base)", True), ("method=MCE", False)]
    with pytest.raises(ValueError, match="has no row"):  # without the record of its methods: every row is due
        compare("style", {"rows": rows}, {"rows": rerun["rows"]})


def test_method_rows_are_chosen_by_name_and_only_where_a_protocol_has_them(tmp_path):
    from benchmarks.protocols import METHODS, Budget, select_methods
    from benchmarks.report import run_protocol

    assert select_methods(None) == METHODS
    assert [m.name for m in select_methods(["MCE", "UCE (kept list)"])] == ["UCE (kept list)", "MCE"]
    with pytest.raises(ValueError, match="valid: 'ESD', 'UCE'"):
        select_methods(["esd"])
    with pytest.raises(ValueError, match="valid"):
        select_methods([])
    with pytest.raises(ValueError, match="--methods works with table1, style, robustness"):
        run_protocol("ablation", Budget(workdir=tmp_path), None, None, methods=["AP"])


def test_a_partial_run_merges_its_method_rows_into_the_stored_protocol(monkeypatch):
    from benchmarks import protocols
    from benchmarks.report import merge

    monkeypatch.setattr(protocols, "METHODS", (protocols.MethodSpec("ESD", "esd"), protocols.MethodSpec("AP", "ap"),
                                               protocols.MethodSpec("NEW", "new")))

    def row(method, split, esr1):
        return {"method": method, "split": split, "esr1": esr1, "esr5": 0, "psr1": 0, "psr5": 0, "clip_erased": 0,
                "clip_kept": 0, "wall_s": 1.0}

    stored = {"protocol": "table1", "wall_s": 10.0, "rows": [row(protocols.BASE, 0, 0.0), row("ESD", 0, 50.0),
                                                             row("AP", 0, 80.0), row("AP", 1, 90.0)]}
    new = {"wall_s": 3.0, "rows": [row(protocols.BASE, 0, 1.0), row("NEW", 0, 60.0), row("NEW", 1, 70.0)]}
    out = merge("table1", stored, new, ["NEW"])
    assert [(r["method"], r["esr1"]) for r in out["rows"]] == [(protocols.BASE, 0.0), ("ESD", 50.0), ("AP", 80.0),
                                                               ("AP", 90.0), ("NEW", 60.0), ("NEW", 70.0)]
    assert {s["method"]: s["esr1"] for s in out["summary"]} == {protocols.BASE: 0.0, "ESD": 50.0, "AP": 85.0, "NEW": 65.0}
    assert out["wall_s"] == 10.0 and out["merged"]["NEW"]["wall_s"] == 3.0  # the stored run's time is its own
    again = merge("table1", out, {"wall_s": 4.0, "rows": [row("NEW", 0, 20.0)]}, ["NEW"])  # re-measured: replaced
    assert [r["esr1"] for r in again["rows"] if r["method"] == "NEW"] == [20.0]
    assert "methods" not in again  # a protocol measured whole says nothing about rows so far
    partial = merge("table1", {**stored, "methods": [protocols.BASE, "AP"]}, new, ["NEW"])
    assert partial["methods"] == [protocols.BASE, "AP", "NEW"]  # a first partial run's record grows with each merge
    whole = merge("table1", {**stored, "methods": [protocols.BASE, "ESD", "AP"]}, new, ["NEW"])
    assert "methods" not in whole  # the last method's rows make it a protocol measured whole

@pytest.mark.slow

def test_the_colour_row_scores_the_base_model_as_drawing_every_colour():
    """The base model draws red when asked: almost no red image counts as erased, the other colours and the
    shapes are recognised, and no kept colour comes out red. (An erased model is what the protocol measures.)"""
    from backends import load_classifier, load_pipeline
    from benchmarks.protocols import Budget, colour_row
    from evaluation.scorers import get_scorer

    row = colour_row(load_pipeline("embedded"), load_classifier(), get_scorer("embedded"), "red", Budget(seeds=1))
    assert row["esr1"] <= 20 and row["psr1"] >= 80 and row["leak"] <= 10 and row["shape_kept"] >= 80
    assert row["clip_erased"] > 30 and row["clip_kept"] > 30


def test_protocols_after_the_search_changes_run_the_methods_as_the_product_does():
    from benchmarks.protocols import CURRENT_METHODS, MULTI_METHODS
    from benchmarks.report import chosen_methods

    ap = {m.name: m for m in CURRENT_METHODS}["AP"]
    assert ap.presets == "object,fast" and ap.overrides == {}
    assert {m.name: m for m in MULTI_METHODS}["ESD"].presets == "object,fast,multi"
    assert [m.presets for m in chosen_methods(["colour"], ["AP"])] == ["object,fast"]
    assert [m.presets for m in chosen_methods(["style"], ["AP"])] == ["object,fast-v1"]  # the stored rows' settings
    ap_all = chosen_methods(["style-shadow"], ["AP (preserve all)"])  # the style bar's second try, its own row
    assert [(m.presets, m.overrides) for m in ap_all] == [("object,fast", {"preserve": "all"})]
    from benchmarks.protocols import Budget, resolved_overrides
    from erasure import resolve_config

    esd, five = {m.name: m for m in MULTI_METHODS}["ESD"], ["star", "heart", "moon", "cross", "arrow"]
    quick = resolved_overrides(esd, five, Budget(steps_scale=0.05))  # a smoke run scales each target's budget once
    full = resolve_config("esd", "embedded", esd.presets, targets=five).steps
    assert resolve_config("esd", "embedded", esd.presets, targets=five, **quick).steps == round(full * 0.05)


def test_a_first_partial_run_measures_only_the_methods_it_names(monkeypatch, tmp_path):
    """With no stored protocol yet, `--methods AP` measures AP's rows, not every method's (it once ran them all)."""
    from benchmarks import report

    calls = []

    def fake_measure(name, budget, classifier, scorer, out, methods=None, strategies=None):
        calls.append((name, methods))
        return {"summary": [{"method": "AP", "esr1": 1.0}], "wall_s": 0.0}, out / f"{name}.json"

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "measure", fake_measure)
    assert report.main(["--protocols", "multi", "--methods", "AP", "--quick"]) == 0
    assert calls == [("multi", ["AP"])]


def test_two_shapes_at_once_keeps_the_other_eight_and_labels_each_row_with_its_pair(monkeypatch, tmp_path):
    from benchmarks import protocols
    from benchmarks.report import chosen_methods

    seen = []

    def fake_table1(classifier, scorer, budget, methods, splits, progress):
        seen.extend(splits)
        return [{"split": i, "method": m.name} for i in range(len(splits)) for m in methods]

    monkeypatch.setattr(protocols, "table1", fake_table1)
    two = (("heart", "moon"), ("star", "cross"))
    rows = protocols.pairs(None, None, protocols.Budget(workdir=tmp_path), methods=chosen_methods(["pair"], ["AP"]),
                           shape_pairs=two)
    shapes = set(protocols.world_protocol()["classes"])
    assert [s["erased"] for s in seen] == [list(p) for p in two]
    assert all(len(s["kept"]) == len(shapes) - 2 and set(s["kept"]) | set(s["erased"]) == shapes for s in seen)
    assert [(r["erased"], r["method"]) for r in rows] == [("heart + moon", "AP"), ("star + cross", "AP")]
    assert [m.presets for m in chosen_methods(["pair"], ["AP"])] == ["object,fast,multi"]  # as the app runs 2 concepts
    from benchmarks.report import SHAPE_METRICS, summary_of

    measured = [{**r, **dict.fromkeys(SHAPE_METRICS, 90.0 + 10 * i)} for i, r in enumerate(rows)]
    (ap,) = summary_of("pair", measured)  # the verdict's row: the mean over the pairs
    assert ap["method"] == "AP" and ap["n"] == 2 and ap["esr1"] == pytest.approx(95.0)
