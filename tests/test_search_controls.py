"""Issue 21's seams: config precedence with recorded sources, the search space never holding the target under
another name, AP's random / all controls, and the search diagnostics every searching run writes."""

import json
import math

import numpy as np
import pytest

from backends import load_pipeline
from erasure import RunFolder, config_sources, erase, resolve_config
from erasure.diagnostics import entropy, spearman, summary, target_diagnostics
from erasure.methods.search import excluded_words, stem


@pytest.fixture()
def pipe():
    return load_pipeline("embedded")  # fresh: erasure modifies the UNet in place


def test_the_profile_beats_a_preset_and_the_user_beats_both():
    # `object` sets K 1000 / n 100 for SD-sized vocabularies; the embedded profile's 100 / 16 must win
    cfg = resolve_config("ap", "embedded", "object", targets=["star"])
    assert (cfg.k_closest, cfg.n_centres, cfg.param_group) == (100, 16, "xattn")
    assert resolve_config("ap", "embedded", "object", targets=["star"], n_centres=8).n_centres == 8
    # a hub model has no AP profile: there the preset's values stand
    assert resolve_config("ap", "sd-1.4", "object", targets=["church"]).n_centres == 100
    src = config_sources("ap", "embedded", "object,fast", targets=["star"], n_centres=8)
    assert src["n_centres"] == "user" and src["k_closest"] == "profile:embedded" and src["vocab"] == "profile:embedded"
    assert src["param_group"] == "preset:object" and src["bank_codes"] == "preset:fast"
    assert src["template"] == "model" and src["tau"] == "default" and src["targets"] == "user"
    assert src["lr"].startswith("default x 100")  # the embedded model's lr scale, applied to the published lr


def test_a_run_records_where_each_setting_came_from(pipe, tmp_path):
    run = erase("embedded", "esd", ["star"], "object", tmp_path / "run", pipe=pipe, steps=1, ddim_steps=2,
                checkpoint_every=0, lr=2e-3)
    record = json.loads((run.path / "config.json").read_text())
    assert record["config_sources"]["lr"] == "user" and record["config_sources"]["param_group"] == "preset:object"
    assert set(record["config_sources"]) == set(record["config"])


@pytest.mark.parametrize("word, same, other", [
    ("shadowed", ["shadow", "shadows", "Shadowed"], ["star", "striped"]),
    ("outline", ["outlined", "outlines"], ["orange", "out"]),
    ("star", ["stars", "starred"], ["start", "stripe"]),
    ("filled", ["fill", "fills"], ["film", "file"]),
])
def test_a_targets_inflections_share_its_stem_and_other_words_do_not(word, same, other):
    assert all(stem(w) == stem(word) for w in same), [(w, stem(w)) for w in same]
    assert all(stem(w) != stem(word) for w in other), [(w, stem(w)) for w in other]


def test_inflections_are_excluded_only_when_asked():
    vocab = ["shadow", "shadows", "star", "circle", "outlined"]
    assert excluded_words(vocab, ["shadowed"], inflections=False) == {"shadowed"}
    assert excluded_words(vocab, ["shadowed"], inflections=True) == {"shadowed", "shadow", "shadows"}


def test_erasing_shadowed_never_searches_shadow(pipe, tmp_path):
    run = erase("embedded", "ap", ["shadowed"], "style,fast", tmp_path / "run", pipe=pipe, steps=2, ddim_steps=4,
                bank_codes=2, checkpoint_every=0)
    start = next(e for e in run.events() if e["kind"] == "start")
    words = start["extra"]["search"]["a shadowed"]
    assert "shadow" not in words and "shadowed" not in words and len(words) >= 2
    assert "shadow" in start["extra"]["excluded"]["a shadowed"]
    # the negative control: the old rule (literal words only) lets "shadow" in
    old = erase("embedded", "ap", ["shadowed"], "style,fast", tmp_path / "old", pipe=load_pipeline("embedded"),
                steps=1, ddim_steps=4, bank_codes=2, checkpoint_every=0, exclude_inflections=False, n_centres=24)
    assert "shadow" in next(e for e in old.events() if e["kind"] == "start")["extra"]["search"]["a shadowed"]


def test_exclude_near_drops_the_words_nearest_the_target(pipe, tmp_path):
    run = erase("embedded", "ap", ["star"], "object,fast", tmp_path / "run", pipe=pipe, steps=1, ddim_steps=4,
                bank_codes=2, checkpoint_every=0, exclude_near=0.9)
    start = next(e for e in run.events() if e["kind"] == "start")
    near = set(start["extra"]["excluded"]["a star"]) - {"star"}
    assert near and not near & set(start["extra"]["search"]["a star"])
    with pytest.raises(ValueError, match="exclude_near"):
        resolve_config("ap", "embedded", "object", targets=["star"], exclude_near=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("preserve", ["adversarial", "random", "all"])
def test_searching_runs_write_sane_diagnostics(pipe, tmp_path, preserve):
    run = erase("embedded", "ap", ["star"], "object,fast", tmp_path / "run", pipe=pipe, steps=6, ddim_steps=4,
                bank_codes=2, checkpoint_every=0, n_centres=6, all_batch=3, preserve=preserve, search_lr=0.5)
    diag = json.loads((run.path / "search.json").read_text())["a star"]
    n = len(diag["words"])
    assert n == 6 and len(diag["entropy"]) == 6 and diag["log_n"] == pytest.approx(math.log(n))
    assert all(0 <= h <= math.log(n) + 1e-6 for h in diag["entropy"])
    assert all(1 / n - 1e-6 <= p <= 1 for p in diag["top_p"])
    assert len(diag["final"]["top5"]) == 5 and len(diag["centre_l2"]["values"][-1]) == n
    steps = [e for e in run.events() if e["kind"] == "step"]
    if preserve == "adversarial":  # the ascent moves pi off uniform
        assert diag["entropy"][-1] < math.log(n) - 1e-4
    else:  # the controls never touch pi: it stays exactly uniform
        assert diag["entropy"][-1] == pytest.approx(math.log(n), abs=1e-6)
    if preserve == "random":
        assert {e["sampled"] for e in steps} <= set(diag["words"]) and 0 <= diag["switch_rate"] <= 1
    if preserve == "all":  # every step preserves a batch of 3 centres: no single sampled concept
        assert diag["switch_rate"] is None and {e["concept"] for e in steps} == {"all (3)"}
    assert "l2" in steps[-1]["losses"]
    from ui.results_tab import search_line  # the Results view's sentence about the search

    line, adversarial = search_line(run.search(), steps[-1])  # RunFolder reads its search.json
    assert "of uniform (1 = uniform)" in line and ("changed on" in line) == (preserve != "all")
    if preserve != "adversarial":  # pi never moves: the view must say so and single out no concept
        assert "stayed near uniform" in line and adversarial is None and "**" not in line
    assert search_line(RunFolder(tmp_path).search()) == ("", None)  # no search.json yet: no sentence


def test_random_control_draws_many_centres(pipe, tmp_path):
    run = erase("embedded", "ap", ["star"], "object,fast", tmp_path / "run", pipe=pipe, steps=12, ddim_steps=4,
                bank_codes=2, checkpoint_every=0, n_centres=8, preserve="random")
    sampled = [e["sampled"] for e in run.events() if e["kind"] == "step"]
    assert len(set(sampled)) >= 4  # 12 uniform draws over 8 centres: fewer than 4 distinct has p < 1e-3


def test_diagnostics_arithmetic():
    uniform = np.full((1, 4), 0.25)
    assert entropy(uniform)[0] == pytest.approx(math.log(4)) and entropy(np.eye(4)[:1])[0] == pytest.approx(0, abs=1e-9)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1) and spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # a uniform pi ranks nothing
    history = {"words": ["a", "b", "c"], "steps": [1, 2, 3], "probs": [[1 / 3] * 3, [0.2, 0.3, 0.5], [0.1, 0.2, 0.7]],
               "sampled": ["a", "a", "c"], "snap_steps": [], "centre_l2": []}
    d = target_diagnostics(history, [0.1, 0.2, 0.9])
    assert d["switch_rate"] == 0.5 and d["final"]["top"] == "c" and d["final"]["top_l2_rank"] == 1
    assert d["final"]["pi_l2_spearman"] == pytest.approx(1.0) and d["final"]["top_p"] == pytest.approx(0.7)
    assert summary({"a x": d})["top"] == ["c"] and summary({"a x": d})["concentrated"] == [True]  # 0.7 = 2.1x uniform


def test_a_uniform_search_is_reported_as_uniform_and_names_no_concept():
    """Issue 42: a search whose distribution ended near uniform (top p 0.080 of 16 centres: 1.28x) must read
    as such: no bold concept, no adversarial row in the grid, and the heatmap pale (a fixed 1/4x..4x scale)."""
    from ui.plots import search_heatmap
    from ui.results_tab import default_prompts, search_line

    words = [f"w{i}" for i in range(16)]
    near = [0.080] + [(1 - 0.080) / 15] * 15
    history = {"words": words, "steps": [1, 2], "probs": [[1 / 16] * 16, near], "sampled": ["w3", "w0"],
               "snap_steps": [], "centre_l2": []}
    diagnostics = {"a star": target_diagnostics(history, None)}
    line, adversarial = search_line(diagnostics, {"concept": "w0", "top5": [["w0", 0.08]]})
    assert "stayed near uniform" in line and "**" not in line and adversarial is None
    assert "w0" not in default_prompts("embedded", ["star"], adversarial)
    z = np.asarray(search_heatmap(history).data[0].z)
    assert np.abs(z).max() < 0.4  # log2(1.28) = 0.36 on a scale that spans +-2: pale, not a red band
    peaked = [0.5] + [0.5 / 15] * 15  # 8x uniform: the same view calls it a concentration and bolds it
    history["probs"][-1] = peaked
    line, adversarial = search_line({"a star": target_diagnostics(history, None)}, {"concept": "w0", "top5": [["w0", 0.5]]})
    assert "concentrated on **w0**" in line and adversarial == "w0"


def test_multi_gives_every_target_its_budget_and_leaves_single_targets_alone():
    two = resolve_config("ap", "embedded", "object,fast,multi", targets=["star", "heart"])
    assert two.steps == 2 * 600 and two.balanced_targets and two.steps_per_target
    src = config_sources("ap", "embedded", "object,fast,multi", targets=["star", "heart"], steps=50)
    assert src["steps"] == "user x 2 targets (steps_per_target)"
    assert resolve_config("ap", "embedded", "object,fast,multi", targets=["star"]).steps == 600
    assert resolve_config("esd", "embedded", "object,multi", targets=["a", "b", "c"], steps=10).steps == 30
    assert resolve_config("uce", "embedded", "object,multi", targets=["star", "heart"]).steps == 1  # one solve
    # the stored rows' cache keys do not change: the new settings are left out at their defaults
    assert "steps_per_target" not in resolve_config("esd", "embedded", "object", targets=["star"]).result_dict()


def test_balanced_targets_take_turns_in_shuffled_rounds(pipe, tmp_path):
    targets = ["star", "heart", "moon"]
    run = erase("embedded", "esd", targets, "object,multi", tmp_path / "run", pipe=pipe, steps=3, ddim_steps=2,
                checkpoint_every=0)
    order = [e["message"] for e in run.events() if e["kind"] == "step"]
    assert len(order) == 9 and all(sorted(order[i:i + 3]) == [f"a {t}" for t in sorted(targets)] for i in (0, 3, 6))
    assert len({tuple(order[i:i + 3]) for i in (0, 3, 6)}) > 1  # shuffled, not one fixed cycle
    # the negative control: independent draws over 9 steps leave some target short (the seed-0 draw does)
    free = erase("embedded", "esd", targets, "object", tmp_path / "free", pipe=load_pipeline("embedded"), steps=9,
                 ddim_steps=2, checkpoint_every=0)
    counts = [sum(e["message"] == f"a {t}" for e in free.events() if e["kind"] == "step") for t in targets]
    assert counts != [3, 3, 3]


def test_the_app_erases_several_concepts_with_the_multi_preset(monkeypatch):
    from ui import erase_tab, state

    submitted = []
    monkeypatch.setattr(state, "manager", lambda: type("M", (), {"submit": lambda self, *a: submitted.append(a) or "j1"})())
    erase_tab.erase_start("embedded", "esd", "star, heart", "object", "fast", "xattn", 10, 1e-3, 0)
    erase_tab.erase_start("embedded", "esd", "star", "object", "fast", "xattn", 10, 1e-3, 0)
    assert [s[1]["presets"] for s in submitted] == ["object,fast,multi", "object,fast"]


def test_probe_search_points_pi_at_the_most_damaged_centres(pipe):
    import torch

    from erasure import get_method
    from erasure.trainer import Context

    cfg = resolve_config("ap", "embedded", "object,fast", targets=["star"], ddim_steps=4, bank_codes=2, n_centres=6,
                         search="probe", probe_every=3, probe_beta=2.0)
    ctx = Context(pipe, cfg)
    with torch.no_grad():  # theta' != theta, so the centres' losses differ
        for p in ctx.trained.values():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    method = get_method("ap")(ctx)
    space = method.spaces["a star"]
    method.loss(0)  # step 0 measures
    l2 = method.probe.values("a star", space)
    torch.testing.assert_close(space.pi.detach().cpu(), 2.0 * (l2 - l2.mean()) / l2.std())
    assert int(space.pi.argmax()) == int(l2.argmax()) and space.top(1)[0][1] > 1 / 6
    before = space.pi.detach().clone()
    method.loss(1)  # between measurements pi stays as measured (no gradient ascent)
    assert torch.equal(space.pi.detach(), before)
    with pytest.raises(ValueError, match="unknown search"):
        resolve_config("ap", "embedded", "object", targets=["star"], search="psychic")
