"""Prompt sets (docs/design.md §4): shipped files valid and deterministic, world prompts in the world's words,
fetched sets (I2P, COCO) fail offline with a message saying what to download. No network."""

import json

import pytest

from evaluation import prompts as P
from evaluation.errors import MetricUnavailableError
from shapesworld.captions import prompt, world_words
from shapesworld.world import COLOURS, SHAPES

FRAME_WORDS = {"a", "an", "picture", "of", "image", "drawing", "shape", "on", "background"}


def _world_prompts(w: dict) -> list[str]:
    out = [t.format(concept=s) for t in [w["concept_template"]] for s in w["classes"]]
    for t in w["erase_templates"] + w["keep_templates"]:
        out += [P.fill(t, shape=s, colour=c) for s in w["classes"] for c in w["colours"]]
    for t in w["styles"]["templates"]:
        out += [P.fill(t, style=st, shape=s, colour=c) for st in w["styles"]["words"] for s in w["classes"] for c in w["colours"]]
    return out + [p for ps in w["paraphrases"].values() for p in ps]


def test_world_file_is_rebuilt_exactly_and_loads_deterministically():
    shipped = json.loads((P.PROMPTS / "world.json").read_text())
    shipped.pop("_about")
    assert shipped == P.build_world_protocol()
    assert P.draw_splits(list(SHAPES)) == P.draw_splits(list(SHAPES))
    w = P.world_protocol()
    assert w == P.world_protocol() and w["classes"] == list(SHAPES) and w["colours"] == list(COLOURS)
    w["splits"].clear()  # callers get a copy
    assert len(P.world_protocol()["splits"]) == 4


def test_splits_are_five_five_disjoint_and_cover_every_shape():
    splits = P.world_protocol()["splits"]
    assert len(splits) == 4 and len({tuple(s["erased"]) for s in splits}) == 4
    for s in splits:
        assert len(s["erased"]) == len(s["kept"]) == 5
        assert not set(s["erased"]) & set(s["kept"]) and set(s["erased"]) | set(s["kept"]) == set(SHAPES)
    counts = {c: sum(c in s["erased"] for s in splits) for c in SHAPES}
    assert set(counts.values()) == {2}  # every shape erased, and equally often


def test_world_prompts_use_only_words_the_embedded_model_knows():
    known = set(world_words()) | FRAME_WORDS
    texts = _world_prompts(P.world_protocol())
    unknown = {w for t in texts for w in t.split()} - known
    assert not unknown, unknown
    assert P.fill("a {colour} {shape}", colour="orange", shape="star") == prompt("star", "orange") == "an orange star"
    assert P.fill("a {style} {shape}", style="outlined", shape="moon") == prompt("moon", style="outline")


def test_world_prompts_fit_the_embedded_text_context():
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(P.PROMPTS.parent / "embedded" / "pipeline" / "tokenizer"))
    longest = max(len(tok(t).input_ids) for t in _world_prompts(P.world_protocol()))
    assert longest <= tok.model_max_length


def test_paraphrases_name_the_shape_but_differ_from_the_canonical_prompts():
    for shape in SHAPES:
        ps = P.paraphrases(shape)
        canonical = {prompt(shape)} | {prompt(shape, c) for c in COLOURS}
        assert len(ps) >= 5 and len(set(ps)) == len(ps)
        assert all(shape in p.split() and p not in canonical for p in ps)
        assert not {s for p in ps for s in p.split()} & (set(SHAPES) - {shape})  # names no other shape
    with pytest.raises(ValueError, match="valid: circle"):
        P.paraphrases("hexagon")


def test_imagenette_and_artist_sets():
    classes = P.imagenette_classes()
    assert classes == ["tench", "English springer", "cassette player", "chain saw", "church", "French horn",
                       "garbage truck", "gas pump", "golf ball", "parachute"]
    from evaluation.imagenette import IMAGENETTE_CLASSES, imagenette_prompts

    assert tuple(classes) == IMAGENETTE_CLASSES  # the shipped set is the one the classifier maps
    assert imagenette_prompts(classes)[1] == "Image of English springer"
    erase, keep = P.artist_prompts("erase"), P.artist_prompts("keep")
    assert ("Van Gogh", "a painting in the style of Van Gogh") in erase
    assert len({a for a, _ in erase}) == len({a for a, _ in keep}) == 5
    assert not {a for a, _ in erase} & {a for a, _ in keep}
    assert all(a in p for a, p in erase + keep) and len(set(erase)) == len(erase)
    with pytest.raises(ValueError, match="valid: erase, keep"):
        P.artist_prompts("famous")


def test_i2p_offline_error_says_what_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(P.socket, "create_connection", lambda *a, **k: pytest.fail("network used"))
    with pytest.raises(P.PromptSetUnavailableError, match=r"huggingface-cli download AIML-TUDA/i2p") as e:
        P.load_i2p()
    assert str(tmp_path / "hub") in str(e.value) and "offline" in str(e.value)
    assert isinstance(e.value, MetricUnavailableError)
    with pytest.raises(ValueError, match="valid: hate"):
        P.load_i2p("nudity")


def test_i2p_reads_a_cached_copy(monkeypatch, tmp_path):
    csv_text = ("prompt,categories,hard,inappropriate_percentage,nudity_percentage,sd_seed,sd_guidance_scale\n"
                '"a nude figure","sexual, shocking",1,80.0,60.0,1234,7\n"a sad man",self-harm,0,10.0,0.0,42,10\n')
    (tmp_path / P.I2P_FILE).write_text(csv_text)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: str(tmp_path / P.I2P_FILE))
    rows = P.load_i2p()
    assert rows[0] == P.I2PPrompt("a nude figure", ("sexual", "shocking"), 1234, 7.0, 60.0, True)
    assert [r.prompt for r in P.load_i2p("self-harm")] == ["a sad man"]


def test_coco_offline_error_and_cached_captions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(P.socket, "create_connection", lambda *a, **k: pytest.fail("network used"))
    with pytest.raises(P.PromptSetUnavailableError, match="annotations_trainval2014.zip") as e:
        P.load_coco_captions(10)
    assert str(tmp_path / "coco" / "captions_val2014.json") in str(e.value)
    anns = [{"id": 9, "image_id": 2, "caption": "A  dog on a sofa. "}, {"id": 3, "image_id": 2, "caption": "A brown dog."},
            {"id": 5, "image_id": 1, "caption": "Two cats."}, {"id": 7, "image_id": 4, "caption": "A red bus."}]
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "captions_val2014.json").write_text(json.dumps({"annotations": anns}))
    assert P.load_coco_captions() == ["Two cats.", "A brown dog.", "A red bus."]
    two = P.load_coco_captions(2, seed=1)
    assert len(two) == 2 and two == P.load_coco_captions(2, seed=1)
    with pytest.raises(ValueError, match="asked for 5"):
        P.load_coco_captions(5)
    with pytest.raises(ValueError, match="valid: val2014"):
        P.load_coco_captions(2, split="test2015")
