"""EmojiWorld: the concept catalogue (names people use, groups, only glyphs the font draws) and the
renderer (deterministic, every style and background a visible change), as shapesworld's tests do for it."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emojiworld import catalogue
from emojiworld.captions import prompt, sample_caption
from emojiworld.glyphs import FONT_PATH, FontMissing, GlyphFont
from emojiworld.subsets import chosen
from emojiworld.world import BACKGROUNDS, STYLES, Scene, by_name, concepts, render, sample_scene

HAVE_FONT = FONT_PATH.is_file()
needs_font = pytest.mark.skipif(not HAVE_FONT and not os.environ.get("CI"),
                                reason="the emoji font is missing: apt-get install fonts-noto-color-emoji")


def test_the_catalogue_names_real_concepts_in_groups():
    cs = concepts()
    names = [c.name for c in cs]
    assert len(cs) >= 1000 and len(set(names)) == len(names)
    assert all(n == n.lower() and n.isascii() and n.strip() == n and "  " not in n for n in names)
    assert {c.group for c in cs} == set(catalogue.GROUPS)
    expect = {"cat face": "animal", "dog face": "animal", "tiger face": "animal", "pizza": "food",
              "hamburger": "food", "bus": "vehicle", "police car": "vehicle", "automobile": "vehicle",
              "castle": "building", "house": "building", "red apple": "food", "grinning face": "face"}
    assert {n: by_name()[n].group for n in expect} == expect
    assert not any(n.endswith("o'clock") or n.startswith("flag:") or "keycap" in n for n in names)


def test_subgroups_map_to_one_group_or_are_left_out_on_purpose():
    assert catalogue.group_of("animal-mammal") == "animal" and catalogue.group_of("face-smiling") == "face"
    assert catalogue.group_of("country-flag") is None
    with pytest.raises(ValueError, match="add it to GROUPS or SKIP_SUBGROUPS"):
        catalogue.group_of("a-new-subgroup")
    assert catalogue.plain_name("Woman\u2019s Hat") == "woman's hat" and catalogue.plain_name("pi\u00f1ata") == "pinata"


@needs_font
@pytest.mark.skipif(not catalogue.EMOJI_TEST.is_file() and not os.environ.get("CI"),
                    reason="emoji-test.txt is missing: apt-get install unicode-data")
def test_the_committed_catalogue_is_what_the_sources_give():
    committed = json.loads(catalogue.CONCEPTS.read_text())
    assert catalogue.build(FONT_PATH) == committed  # the font and Unicode data it records, rebuilt


@needs_font
def test_rendering_is_deterministic_and_every_axis_shows():
    rng = np.random.default_rng(0)
    scene = sample_scene(rng, ("cat face", "pizza"))
    a, b = np.asarray(render(scene)), np.asarray(render(scene))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    base = Scene("cat face", "plain", "colour")
    img = lambda **kw: np.asarray(render(Scene(**{**base.to_dict(), **kw}))).astype(int)  # noqa: E731
    ref = img()
    for style in STYLES[1:]:
        assert np.abs(img(style=style) - ref).mean() > 5, style
    for bg in BACKGROUNDS[1:]:
        assert np.abs(img(background=bg) - ref).mean() > 3, bg
    assert np.abs(img(concept="dog face") - ref).mean() > 5
    gray = img(style="grayscale")
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1  # grayscale really has no colour


def test_a_missing_font_says_how_to_install_it(tmp_path):
    with pytest.raises(FontMissing, match="apt-get install fonts-noto-color-emoji"):
        GlyphFont(tmp_path / "none.ttf")


@needs_font
def test_the_font_draws_every_concept_and_not_a_missing_code_point():
    font = GlyphFont()
    assert font.has("\U0001F431") and not font.has("\U000E0FFF")  # cat face; an unassigned code point


def test_captions_name_only_what_the_scene_shows():
    assert prompt("cat face") == "a cat face" and prompt("automobile") == "an automobile"
    assert prompt("cat face", "sketch", "striped") == "a sketched cat face on a striped background"
    rng = np.random.default_rng(0)
    scene = Scene("pizza", "checkered", "pixelated")
    caps = {sample_caption(scene, rng) for _ in range(200)}
    assert all("pizza" in c for c in caps)
    assert any("pixelated" in c for c in caps) and any("checkered" in c for c in caps)
    assert not any(w in c for c in caps for w in ("sketched", "striped", "grayscale", "inverted"))


def test_a_subset_is_deterministic_and_spread_over_groups():
    a, b = chosen(100), chosen(100)
    assert a == b and len(a) == 100 and len(set(a)) == 100
    groups = {by_name()[n].group for n in a}
    assert groups == set(catalogue.GROUPS)
    assert chosen(0) == tuple(c.name for c in concepts()) and chosen(100, seed=1) != a


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="no fontconfig")
def test_glyph_font_records_what_identifies_the_artwork():
    if not HAVE_FONT:
        pytest.skip("no emoji font")
    record = GlyphFont().record()
    assert record["family"].startswith("Noto Color Emoji") and len(record["sha256"]) == 64


def test_a_narrower_draw_pins_pose_and_weights_styles():
    rng = np.random.default_rng(0)
    still = [sample_scene(rng, ("cat face",), pose=0.0, style_p=[1, 0, 0, 0, 0]) for _ in range(20)]
    assert {(round(s.scale, 9), s.dx, s.dy, s.rotation, s.style) for s in still} == {(0.82, 0.0, 0.0, 0.0, "colour")}
    rng = np.random.default_rng(0)
    half = [sample_scene(rng, ("cat face",), pose=0.5) for _ in range(200)]
    assert max(abs(s.rotation) for s in half) <= 5 and max(abs(s.rotation) for s in half) > 4
    assert max(abs(s.dx) for s in half) <= 1 and 0.77 <= min(s.scale for s in half) < 0.78


@needs_font
def test_unet_training_resumes_on_a_new_machine_from_the_small_kept_state(tmp_path, monkeypatch, capsys):
    """A segment writes the committable state (bf16 EMA weights, step, random states); a fresh work folder
    (a new machine) with --resume continues from its step with those weights."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    from emojiworld import data, train_unet

    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8, latent_channels=4)
    vae.save_pretrained(tmp_path / "vae")

    def run(work: str, steps: int, *extra: str) -> None:
        monkeypatch.setattr("sys.argv", ["train_unet", "--work", str(tmp_path / work), "--vae", str(tmp_path / "vae"),
                                         "--concepts", "3", "--per-concept", "2", "--widths", "16", "16", "16",
                                         "--batch", "2", "--steps", str(steps), "--save-every", "2", "--eval-every", "0",
                                         "--keep", str(tmp_path / "kept"), "--pose", "0.3", "--colour-p", "0.6", *extra])
        train_unet.main()

    run("first", 4)
    assert json.loads((tmp_path / "kept" / "meta.json").read_text())["step"] == 4
    kept = load_file(tmp_path / "kept" / "ema_unet.safetensors")
    run("second", 4, "--resume")  # nothing left to do: the weights it saves are the kept ones
    assert "resumed from the kept state at step 4" in capsys.readouterr().out
    shipped = load_file(tmp_path / "second" / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(shipped[k].float(), kept[k].float()) for k in kept)
    run("second", 6, "--resume")  # (that segment trained no step, so wrote no full state: the kept one again)
    assert "resumed from the kept state at step 4" in capsys.readouterr().out
    assert json.loads((tmp_path / "kept" / "meta.json").read_text())["step"] == 6
    assert '"step": 0,' in (tmp_path / "first" / "unet.jsonl").read_text()  # a start from scratch logs step 0 ...
    assert not (tmp_path / "second" / "unet.jsonl").exists()  # ... and the resumed machine never ran it


def test_a_model_set_holds_the_demo_concepts_and_its_spread():
    from emojiworld.subsets import DEMO, model_set

    big = model_set(600)
    assert set(chosen(DEMO)) <= set(big) and set(chosen(600)) <= set(big)
    assert len(big) == len(set(chosen(600)) | set(chosen(DEMO))) < 700
    assert [c.name for c in concepts() if c.name in set(big)] == list(big)  # catalogue order


def test_a_learning_curve_point_reads_the_kept_state_and_judges_by_class_name(tmp_path):
    """eval_kept loads the committed kept state (EMA weights) and concept_accuracy finds each drawn concept's
    class by name in a judge over more concepts: a judge that names each image's concept scores 1, the same
    judge read by position in the drawn list (the old rule) would not."""
    from emojiworld.eval_kept import load_kept
    from emojiworld.train_unet import concept_accuracy

    unet, text_encoder, tokenizer, vae, meta = load_kept(Path("assets/emoji/training/unet_kept"))
    assert meta["step"] > 0 and not unet.training and unet.dtype == torch.float32
    classes, names = chosen(0), ("cat face", "pizza")
    truth = [classes.index(n) for n in names]

    class Oracle:  # the judge of a perfect model: it names the concept each image was drawn for, in order
        def predict(self, x):
            return {"concept": torch.nn.functional.one_hot(torch.tensor(truth), len(classes)).float()}

    acc = concept_accuracy(unet, text_encoder, tokenizer, vae, names, Oracle(), 1, classes)
    assert acc == {"concept_top1": 1.0, "concepts_at_least_half": 1.0, "images": 2}
    by_position = concept_accuracy(unet, text_encoder, tokenizer, vae, names, Oracle(), 1)  # names as the classes
    assert by_position["concept_top1"] == 0.0


@pytest.mark.slow
@needs_font
def test_the_clip_trains_resumes_from_its_kept_state_and_reports_zero_shot_accuracy(tmp_path, capsys):
    from emojiworld import train_clip

    small = ["--concepts", "12", "--per-concept", "4", "--batch", "16", "--threads", "1", "--save-every", "3"]
    first = train_clip.main(["--work", str(tmp_path / "a"), "--steps", "3", "--keep", str(tmp_path / "keep"), *small])
    assert set(first["heldout_zero_shot_top1"]) == {"concept", "style", "background"}
    assert (tmp_path / "a" / "clip" / "open_clip_model.safetensors").is_file()
    assert json.loads((tmp_path / "keep" / "meta.json").read_text())["step"] == 3
    capsys.readouterr()
    train_clip.main(["--work", str(tmp_path / "b"), "--steps", "5", "--keep", str(tmp_path / "keep"), "--resume", *small])
    out = capsys.readouterr().out
    assert "resumed from the kept state at step 3" in out and "step=0 " not in out  # a new machine goes on
    assert "--resume" not in first["command"] and "--keep" in first["command"]
