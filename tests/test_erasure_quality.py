"""Integration: AP with the default object preset erases a shape and keeps the others (docs/design.md §7).

Bar: ESR-1 >= 95 % on the erased shape and PSR-1 on the other shapes within 10 points of the
base model, judged by the world classifier on 8 seeds per "a {colour} {shape}" prompt.
"""

import pytest

from backends import SamplerSettings, load_classifier, load_pipeline
from erasure import apply
from evaluation import world_erasure_report

SETTINGS = SamplerSettings(steps=20, guidance=5.0)


@pytest.mark.slow
def test_ap_erases_star_and_keeps_the_other_shapes(ap_star_run):
    from evaluation.scorers import get_scorer

    classifier, scorer = load_classifier(), get_scorer("embedded")
    base = world_erasure_report(load_pipeline("embedded"), classifier, ["star"], seeds=8, settings=SETTINGS,
                                scorer=scorer)
    after = world_erasure_report(apply(load_pipeline("embedded"), ap_star_run), classifier, ["star"], seeds=8,
                                 settings=SETTINGS, scorer=scorer)
    assert after["esr1"] >= 95.0, after
    assert after["psr1"] >= base["psr1"] - 10.0, (base["psr1"], after)
    # CLIP agrees with the classifier: star prompts lose their alignment, the other prompts keep theirs
    assert after["clip_erased"] < base["clip_erased"] - 5.0, (base["clip_erased"], after["clip_erased"])
    assert abs(after["clip_kept"] - base["clip_kept"]) < 2.0, (base["clip_kept"], after["clip_kept"])
