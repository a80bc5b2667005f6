"""EmojiWorld in the product (docs/design.md §6): the `emoji` preset loads a pipeline exported from the
committed kept state (the trained one ships when its bars are met), the unknown-word guard knows its
concept names, and AP searches the paper's setting over them (100 centres among the 1,000 names nearest
the target; AGE its own published sizes), names of several words included."""

from pathlib import Path

import pytest
import torch

from backends import loader
from backends.paths import EMOJI

KEPT = Path(__file__).resolve().parent.parent / "assets" / "emoji" / "training" / "unet_kept"


@pytest.fixture(scope="module")
def emoji_folder(tmp_path_factory):
    """The kept state as a pipeline folder, standing in for assets/emoji/pipeline (the preset's folder)."""
    from emojiworld.export import export

    folder = export(KEPT, tmp_path_factory.mktemp("emoji") / "pipeline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(loader.PRESETS, EMOJI, str(folder))
        yield folder


def test_the_emoji_preset_loads_the_exported_pipeline_and_draws(emoji_folder):
    from backends import generate, load_pipeline
    from backends.generate import SamplerSettings

    pipe = load_pipeline(EMOJI)
    images = generate(pipe, ["a dog face", "a hamburger"], [0, 0], SamplerSettings(steps=4, guidance=5.0))
    assert images.shape == (2, 32, 32, 3) and images.std() > 5  # pictures, not a flat field
    assert (emoji_folder / "concepts.txt").read_text().count("\n") == 654  # what this model learnt
    assert EMOJI in loader.listed_presets()  # a picker offers it once its pipeline is there


def test_without_a_shipped_pipeline_the_preset_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setitem(loader.PRESETS, EMOJI, str(tmp_path / "pipeline"))
    with pytest.raises(loader.ModelUnavailableError, match="still in training .*python -m emojiworld.export"):
        loader.resolve_model(EMOJI)
    assert EMOJI not in loader.listed_presets()


def test_the_unknown_word_guard_knows_the_models_concept_names(emoji_folder):
    from backends.vocab import UnknownConceptError, check_known_concepts

    check_known_concepts(EMOJI, ["dog face", "Hamburger", "red  apple", "grayscale", "striped"])
    for unknown in ("cat face", "unicorn horn", "face"):  # a catalogue name it did not learn, nonsense, a part
        with pytest.raises(UnknownConceptError, match=f"does not know '{unknown}'.*concept names"):
            check_known_concepts(EMOJI, [unknown])


def test_ap_and_age_search_100_centres_among_the_1000_nearest_names(emoji_folder):
    from backends import load_pipeline
    from backends.vocab import get_vocabulary
    from erasure import resolve_config
    from erasure.methods.search import build_search_space, excluded_words

    cfg = resolve_config("ap", EMOJI, "object,fast", targets=["tiger"])
    assert (cfg.vocab, cfg.k_closest, cfg.n_centres, cfg.template) == ("emoji", 1000, 100, "{a} {concept}")
    assert cfg.prompts() == ["a tiger"] and resolve_config("ap", EMOJI, "object,fast", targets=["otter"]).prompts() == \
        ["an otter"]  # the captions' article (backends.prompts.fill), not "a otter"
    age = resolve_config("age", EMOJI, "object,fast", targets=["tiger"])  # AGE's own published sizes
    assert (age.vocab, age.template) == ("emoji", "{a} {concept}")
    vocab = get_vocabulary("emoji", 10000)
    words, R, dist, _ = build_search_space(load_pipeline(EMOJI), vocab, "a tiger", "{a} {concept}", 1000, 100,
                                           excluded_words(vocab, ["tiger"], True))
    assert len(words) == 100 and R.shape[0] == 100 and "tiger" not in words
    assert any(" " in w for w in words)  # names of several words are concepts too ("dog face")


def test_the_app_offers_the_emoji_words_and_prompts_when_it_is_chosen(emoji_folder):
    from backends.vocab import unknown_prompt_words
    from ui.model_tab import concept_prompt, world_pickers
    from ui.results_tab import default_prompts

    buttons, names = world_pickers(EMOJI)  # gradio updates: the components' new settings
    assert buttons.visible is False and names.visible is True
    assert len(names.choices) == 654 + 9 and ("dog face", "dog face") in names.choices  # and 9 styles, backgrounds
    shapes, none = world_pickers("embedded")
    assert shapes.visible is True and none.visible is False and none.choices == []
    assert concept_prompt("ice cream", "a red star") == "an ice cream" and concept_prompt(None, "x") == "x"
    assert unknown_prompt_words(EMOJI, "a sketched dog face on a striped background") == []
    assert unknown_prompt_words(EMOJI, "a dog face wearing zorblats") == ["wearing", "zorblats"]
    rows = default_prompts(EMOJI, ["tiger"], adversarial="lion").splitlines()
    assert rows[:3] == ["a tiger", "a grayscale tiger", "a lion"] and "a hamburger" in rows


def test_a_spectrum_on_the_emoji_model_says_its_scorer_is_not_trained_yet(tmp_path, monkeypatch):
    import backends.paths
    from evaluation.errors import MetricUnavailableError
    from evaluation.scorers import default_scorer_for, get_scorer

    monkeypatch.setattr(backends.paths, "EMOJI_ASSETS", tmp_path)  # no clip/ folder: as before it ships

    assert default_scorer_for(EMOJI) == "emoji" and default_scorer_for("embedded") == "embedded"
    with pytest.raises(MetricUnavailableError, match="not trained yet .* proxy-only spectrum"):
        get_scorer(default_scorer_for(EMOJI))


@pytest.mark.slow
def test_ap_erases_an_emoji_concept_searching_its_named_neighbours(emoji_folder, tmp_path):
    import json

    from erasure import erase

    run = erase(EMOJI, "ap", ["tiger"], "object,fast", tmp_path / "run", steps=2, checkpoint_every=0)
    start = next(e for e in run.events() if e["kind"] == "start")
    centres = start["extra"]["search"]["a tiger"]
    assert len(centres) == 100 and "tiger" not in centres and any(" " in c for c in centres)
    assert json.loads((run.path / "config.json").read_text())["config"]["vocab"] == "emoji"
    assert run.status()["state"] == "done" and run.result()  # the changed cross-attention tensors


def test_a_trained_emoji_clip_becomes_the_emoji_models_scorer(tmp_path, monkeypatch):
    """Once emojiworld.train_clip's folder is in assets/emoji/clip, `emoji` spectra score with it."""
    import backends.paths
    from emojiworld import train_clip
    from evaluation.scorers import get_scorer

    train_clip.main(["--work", str(tmp_path / "w"), "--concepts", "6", "--per-concept", "2", "--batch", "8",
                     "--steps", "1", "--threads", "1"])
    (tmp_path / "assets").mkdir()
    (tmp_path / "w" / "clip").rename(tmp_path / "assets" / "clip")
    monkeypatch.setattr(backends.paths, "EMOJI_ASSETS", tmp_path / "assets")
    scorer = get_scorer("emoji")
    images = (torch.rand(2, 32, 32, 3) * 255).to(torch.uint8).numpy()
    assert scorer.name == "emoji" and scorer.score(images, ["a dog face", "a hamburger"]).shape == (2,)
