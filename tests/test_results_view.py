"""The Results view's data: the concept search's history (softmax(pi) per step, every centre's loss at
snapshots), its figures, and the view's default prompts."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from erasure import RunFolder, erase
from erasure.trajectory import search_history, snapshot_strips
from ui.plots import centre_loss_heatmap, search_heatmap, strip_sheet


@pytest.fixture(scope="module")
def runs(tmp_path_factory, embedded_pipe):
    """Two AP runs from the same seed, 8 steps: one with snapshots (and the centre probe) every 4 steps,
    one with none."""
    from backends import load_pipeline

    root = tmp_path_factory.mktemp("results")
    out = {}
    for name, every in (("probed", 4), ("plain", 0)):
        out[name] = erase("embedded", "ap", ["star"], "object,fast", root / name, pipe=load_pipeline("embedded"),
                          steps=8, lr=3e-3, snapshot_every=every, checkpoint_every=0)
    return out


def test_the_centre_probe_draws_nothing_from_the_training_sources(runs):
    """Snapshots measure every centre on their own generator: with or without them, the same result."""
    a, b = (load_file(runs[n].path / "result.safetensors") for n in ("probed", "plain"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_search_history_holds_pi_per_step_and_every_centre_at_snapshots(runs):
    events = runs["probed"].events()
    history = search_history(events)
    assert list(history) == ["a star"]
    h = history["a star"]
    n = len(h["words"])
    assert n > 5 and "star" not in h["words"]
    assert h["steps"] == list(range(1, 9)) and all(len(p) == n and abs(sum(p) - 1) < 1e-3 for p in h["probs"])
    # step 1 runs before any update: theta' = theta, so L2 is 0 up to kernel rounding; then it grows
    assert all(w in h["words"] for w in h["sampled"]) and h["l2"][0] < 1e-6 and all(v > 0 for v in h["l2"][1:])
    assert h["snap_steps"] == [1, 4, 8] and all(len(v) == n for v in h["centre_l2"])
    first, last = np.mean(h["centre_l2"][0]), np.mean(h["centre_l2"][-1])
    assert last > 1.5 * first  # the erasure damages the centres as it goes: the probe sees it
    # the last step's top 5 is the top of its logged distribution (ties aside: compare probabilities)
    top = [e for e in events if e["kind"] == "step"][-1]["top5"]
    assert sorted(h["probs"][-1], reverse=True)[:5] == pytest.approx([p for _, p in top], abs=1e-4)
    assert all(h["probs"][-1][h["words"].index(w)] == pytest.approx(p, abs=1e-4) for w, p in top)
    assert search_history(RunFolder.open(runs["plain"].path).events())["a star"]["snap_steps"] == []


def test_heatmap_shows_the_ratio_to_uniform_of_the_concepts_ever_in_the_top_5(runs):
    h = search_history(runs["probed"].events())["a star"]
    data = search_heatmap(h).data[0]
    probs = np.asarray(h["probs"])
    ever = set(np.argsort(-probs, axis=1)[:, :5].ravel().tolist())
    assert len(data.y) == len(ever) >= 5 and list(data.x) == h["steps"]
    z = np.asarray(data.z)
    assert z.shape == (len(ever), 8)
    ratio = np.asarray(data.customdata)  # p x n: 1 = uniform
    assert np.allclose(ratio, probs[:, sorted(ever, key=lambda i: -probs[-1, i])].T * len(h["words"]))
    assert np.allclose(z, np.clip(np.log2(ratio), -2, 2))  # log2 of the ratio, clipped to 1/4x .. 4x
    assert (np.abs(z) > 1e-4).any(axis=1).sum() >= 2  # the search moved away from uniform
    assert data.zmax == -data.zmin == 2  # a fixed scale: noise around uniform stays pale
    centres = centre_loss_heatmap(h, top=5).data[0]
    last = np.asarray(h["centre_l2"][-1])
    assert list(centres.y) == [h["words"][i] or "(empty prompt)" for i in np.argsort(-last)[:5]]  # most hurt first


def test_strip_sheet_lays_every_strip_out_by_step(runs):
    strips = snapshot_strips(runs["probed"].path)
    assert set(strips) == {"ce", "ca"} and [s for s, _ in strips["ce"]] == [1, 4, 8]
    sheet = strip_sheet(strips, tile=64)
    assert sheet.shape == (18 + 2 * 68, 150 + 3 * 66, 3)
    assert strip_sheet({}) is None
    labelled = strip_sheet(strips, tile=96, concepts={1: "cross", 4: "", 8: "a very long concept name indeed"})
    assert labelled.shape == (34 + 2 * 100, 150 + 3 * 98, 3)  # a second header line names the kept concept
    assert (labelled[18:30, 150:150 + 96] != 255).any()  # step 1's label is drawn under its step


def test_results_view_prompts_name_the_targets_the_adversary_and_kept_concepts():
    from ui.results_tab import default_prompts

    rows = default_prompts("embedded", ["star"], "cross").splitlines()
    assert rows[:3] == ["a red star", "a blue star", "a cross"]
    assert "a red heart" in rows and not any("star" in r for r in rows[3:])
    assert default_prompts("sd-1.4", ["Van Gogh"]).splitlines()[0] == "a photo of a Van Gogh"


def test_generate_reports_every_sampler_step_of_every_batch_and_draws_the_same_images(embedded_pipe):
    from backends import SamplerSettings, generate

    seen = []
    settings = SamplerSettings(steps=4)
    images = generate(embedded_pipe, ["a red star"] * 3, [0, 1, 2], settings, batch_size=2,
                      progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 8) for i in range(1, 9)]  # two batches x four steps
    assert np.array_equal(images, generate(embedded_pipe, ["a red star"] * 3, [0, 1, 2], settings, batch_size=2))


def test_the_grid_shows_an_erased_colour_background_or_style_on_shapes():
    from ui.results_tab import default_prompts

    red = default_prompts("embedded", ["red"]).splitlines()
    assert red[:2] == ["a red star", "a red heart"] and not any("red" in r for r in red[2:])  # kept rows: no red
    assert default_prompts("embedded", ["striped"]).splitlines()[:2] == [
        "a red star on a striped background", "a blue heart on a striped background"]
    assert default_prompts("embedded", ["outline"]).splitlines()[0] == "an outlined red star"
    rows = default_prompts("embedded", ["star"], None, ["arrow", "cross"]).splitlines()
    assert rows[:4] == ["a red star", "a blue star", "a red arrow", "a red cross"]  # the hardest-hit follow


def test_the_drill_down_is_a_grid_of_the_concepts_prompts():
    from ui.results_tab import drill_prompts

    assert drill_prompts("embedded", ["star"], "cross") == ["a cross", "a red cross", "a blue cross", "a green cross"]
    assert drill_prompts("embedded", ["star"], "red") == ["a red circle", "a red square", "a red triangle", "a red cross"]
    assert drill_prompts("embedded", ["star"], "") == [""]  # the empty prompt is drawn as it is
