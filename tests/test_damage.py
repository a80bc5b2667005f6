"""The Results headline (issue 42): who an erasure hurt, judged over every concept of the world."""

import pandas as pd
import pytest

from evaluation.damage import ConceptDamage, from_json, headline, measure_damage, rates, to_json, world_items, worst_hit


def _world(hurt: dict[str, tuple[int, dict]]) -> list[ConceptDamage]:
    """Every ShapesWorld concept at 4/4 in both models, except `hurt` (concept -> (erased hits, drawn as))."""
    rows = []
    for concept, attribute in dict.fromkeys((c, a) for c, a, _, _ in world_items(["star"])):
        erased, drawn = hurt.get(concept, (4, {concept: 4}))
        rows.append(ConceptDamage(concept, attribute, concept == "star", 4, erased, 4, drawn))
    return rows


def test_world_items_cover_every_concept_of_the_world_on_shared_seeds():
    items = world_items(["star"], seeds=4)
    concepts = {c for c, _, _, _ in items}
    assert len(concepts) == 10 + 6 + 4 + 3  # shapes, colours, backgrounds, styles
    assert all(sum(c == x for c, _, _, _ in items) == 4 for x in concepts)
    # a colour, background or style is drawn on shapes that are not erased: its damage is its own
    assert not any("star" in p for c, a, p, _ in items if a != "shape")


def test_headline_names_a_damaged_neighbour_the_kept_list_never_showed():
    damage = _world({"star": (0, {"cross": 3, "square": 1}), "arrow": (1, {"cross": 3, "arrow": 1}),
                     "moon": (3, {"moon": 3, "heart": 1})})
    text = headline(damage)
    assert text.startswith("star is now drawn as cross (3 of 4) and square (1).")
    assert "Erasure rate 100 %" in text and "over the 22 other concepts" in text
    assert "hit hardest: arrow (4/4 → 1/4)" in text and "moon" not in text  # one image in four is not "hit"
    r = rates(damage)
    assert r["preservation"] == pytest.approx(100 * (88 - 3 - 1) / 88)  # every other concept counts
    assert [d.concept for d in worst_hit(damage)] == ["arrow"]
    assert from_json(to_json(damage)) == damage


def test_headline_says_when_nothing_else_was_hurt_and_when_the_target_survived():
    text = headline(_world({"star": (3, {"star": 3, "cross": 1})}))
    assert "star is still drawn in 3 of 4 images" in text and "Erasure rate 25 %" in text
    assert "no other concept lost half its images" in text


def test_headline_adds_the_spectrums_ranking():
    df = pd.DataFrame({"concept": ["star", "arrow", "", "cross"], "delta": [21.3, 70.7, 1.0, 66.2]})
    text = headline(_world({"star": (0, {"cross": 4})}), df)
    assert "The spectrum (δ) ranks first among the others: arrow, cross, (empty prompt); star ranks 3 of 4." in text


@pytest.mark.slow
def test_an_erasure_that_breaks_an_unlisted_neighbour_is_named_in_the_headline(embedded_pipe, classifier, tmp_path):
    """Issue 42's bar: ESD erasing star (the shipped example's settings) turns arrows and crosses into other
    shapes, which the grid's kept list (heart, circle, moon, square) never shows; judged over the whole world,
    the headline names them, and preservation counts all 22 other concepts."""
    from erasure import erase, erased_copy
    from ui.results_tab import KEPT

    run = erase("embedded", "esd", ["star"], "object,fast", tmp_path / "run", steps=100, checkpoint_every=0)
    damage = measure_damage(embedded_pipe, erased_copy(embedded_pipe, run.path), classifier, ["star"])
    hit = worst_hit(damage)
    listed = {p.split()[-1] for p in KEPT["shapes"]}
    assert hit and hit[0].concept not in listed, [(d.concept, d.base, d.erased) for d in damage]
    text = headline(damage)
    assert f"hit hardest: {hit[0].concept} ({hit[0].base}/4 → {hit[0].erased}/4)" in text
    assert rates(damage)["kept_concepts"] == 22 and sum(d.n for d in damage if not d.targeted) == 88
    assert "star is now drawn as" in text  # the target itself is gone
